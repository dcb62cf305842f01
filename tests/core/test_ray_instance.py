"""The local Ray instance edgeport starts (search's executor, the device pool)."""

import os

import pytest

from edgeport.core.ray_instance import start_or_join


def test_a_local_instance_runs_its_tasks_at_the_callers_priority():
    """Ray starts its workers at nice 15, where other work on the machine starved a search's builds."""
    ray = pytest.importorskip("ray", reason="Ray is the optional extra edgeport[ray]")
    assert start_or_join(ray, None, num_cpus=1)
    try:

        @ray.remote(num_cpus=0)
        def niceness() -> int:
            return os.nice(0)

        assert ray.get(niceness.remote()) == os.nice(0)
    finally:
        ray.shutdown()
