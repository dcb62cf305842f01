"""The machine a measurement ran on (edgeport/benchmarks/fingerprint.py)."""

from edgeport.benchmarks import cpu_fingerprint, environment_fingerprint


def test_cpu_fingerprint_reads_the_host():
    cpu = cpu_fingerprint()
    assert cpu["logical_cores"] >= 1 and cpu["machine"]
    assert isinstance(cpu["isa"], list)
    assert environment_fingerprint()["cpu"] == cpu
