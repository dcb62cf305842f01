"""The machine a measurement ran on (edgeport/benchmarks/fingerprint.py)."""

from edgeport.benchmarks import cpu_fingerprint, environment_fingerprint


def test_cpu_fingerprint_reads_the_host():
    cpu = cpu_fingerprint()
    assert cpu["logical_cores"] >= 1 and cpu["machine"]
    assert isinstance(cpu["isa"], list)
    assert environment_fingerprint()["cpu"] == cpu


def test_an_x86_cpu_is_named_with_its_family_and_model_numbers():
    """A virtual machine's CPU name ("AMD EPYC") can stand for CPUs whose int8 speeds differ threefold."""
    import platform
    from pathlib import Path

    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    numbers = {}
    for line in text.splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key in ("cpu family", "model") and value.isdigit():
            numbers.setdefault(key, value)
    family = cpu_fingerprint()["family"]
    if platform.machine() in ("x86_64", "AMD64") and len(numbers) == 2:
        assert family == f"family {numbers['cpu family']} model {numbers['model']}"
    else:
        assert family is None
