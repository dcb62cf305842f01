"""A device of another architecture in the pool: Debian's arm64 Python with numpy and onnxruntime's aarch64
wheel, run by qemu-user behind a real sshd on loopback (`make aarch64-device` builds it). The runner and an
int8 artifact work there; its timings are the emulator's, so bench says so and the gate refuses them."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgeport.cli import main
from edgeport.quantize import quant_config, quantize
from tests.sshd import devices_entry, start_sshd

pytestmark = pytest.mark.slow

DEVICE_PYTHON = Path(__file__).parents[2] / ".devices" / "aarch64" / "python"


@pytest.fixture(scope="module")
def arm_pool(tmp_path_factory):
    if not DEVICE_PYTHON.exists():
        pytest.skip("no emulated aarch64 device: `make aarch64-device` builds it (needs apt-get and root)")
    folder = tmp_path_factory.mktemp("arm")
    daemon = start_sshd(folder / "sshd")
    devices = folder / "devices.toml"
    devices.write_text(devices_entry("arm0", daemon, str(DEVICE_PYTHON), tags='arch = "aarch64"'))
    yield devices
    daemon.stop()


def test_an_int8_artifact_runs_on_the_emulated_aarch64_device_and_its_timings_are_not_the_boards(
    arm_pool, tmp_path, capsys, fp32_onnx, digits16
):
    int8 = tmp_path / "cnn.int8.onnx"
    quantize(fp32_onnx, {"input": digits16.train.x[:64]}, quant_config(), int8)
    # The device's own thermal zone (qemu's -L prefix serves it), which this machine does not have: the
    # sustained run's temperature is read on the device
    zone = DEVICE_PYTHON.parent / "root" / "sys" / "class" / "thermal" / "thermal_zone0"
    zone.mkdir(parents=True)
    budget = tmp_path / "budgets.toml"
    try:
        (zone / "temp").write_text("52000\n")
        code = main(
            ["bench", "--quiet", str(int8), "--pool", str(arm_pool), "--tags", "arch=aarch64", "--iterations", "30",
             "--warmup", "3", "--sustained", "2", "--json"]
        )  # fmt: skip
        captured = capsys.readouterr()
        # the gate's cool-down waits on the device's own temperature (52 C: within 5 of an idle 50 C); a size
        # budget alone judges no timing, so the emulated device may pass it
        budget.write_text("[targets.cool]\nmax_size_mb = 100.0\nidle_temperature_c = 50.0\n")
        gate = ["gate", "--budget", str(budget), "--artifact", str(int8), "--pool", str(arm_pool), "--json"]
        assert main([*gate, "--iterations", "30"]) == 0
        checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
        assert checks["cool_down"]["verdict"] == "pass" and checks["cool_down"]["measured"] == 52.0
    finally:
        shutil.rmtree(zone.parents[2])
    assert code == 0, captured.err
    (result,) = json.loads(captured.out)["results"]
    cpu = result["environment"]["cpu"]
    assert cpu["machine"] == "aarch64" and cpu["emulated"] is True and "neon" in cpu["isa"]
    assert result["device"] == "arm0" and len(result["samples_ms"]) == 3 * len(result["settings"]["round_sizes"])
    assert all(np.isfinite(result["samples_ms"])) and result["environment"]["onnxruntime"]
    assert any("under emulation" in w and "arm0" in w for w in json.loads(captured.out)["warnings"])
    assert result["sustained"]["temperature_c"]["before"] == 52.0 and result["sustained"]["drift"]["rounds"] >= 1

    budget.write_text("[targets.pi]\np50_ms = 1000.0\n[targets.pi.hardware]\nmachine = 'aarch64'\n")
    code = main(["gate", "--budget", str(budget), "--artifact", str(int8), "--pool", str(arm_pool), "--json"])
    err = capsys.readouterr().err
    assert code == 2 and "under emulation" in err and "p50_ms" in err
