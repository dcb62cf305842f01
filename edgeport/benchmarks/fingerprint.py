"""What hardware and software a measurement was taken on.

The code lives in device_fingerprint.py, which the device runner imports too, so that host and device
fingerprints are computed by the same lines.
"""

from edgeport.benchmarks.device_fingerprint import ISA_FLAGS, cpu_fingerprint, environment_fingerprint

__all__ = ["ISA_FLAGS", "cpu_fingerprint", "environment_fingerprint"]
