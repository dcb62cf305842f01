"""A pool of edge devices measured in parallel through Ray: the devices file (devices.py), the dispatcher
with its failover (dispatch.py) and ``edgeport bench --pool`` (bench.py)."""
