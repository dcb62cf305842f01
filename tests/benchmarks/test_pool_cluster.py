"""A device pool on an existing Ray cluster (`--ray-address`): a real head node started with `ray start`,
whose resources declare the device it reaches; a device it does not declare is refused with the line that
would declare it."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgeport.cli import main
from tests.sshd import devices_entry, free_port, start_sshd

pytestmark = pytest.mark.slow

RAY = Path(sys.executable).parent / "ray"


@pytest.fixture
def cluster(tmp_path):
    if not RAY.exists():
        pytest.skip("Ray's command line is not installed (pip install 'edgeport[ray]')")
    port = free_port()
    start = [str(RAY), "start", "--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false"]
    resources = json.dumps({"edgeport-device:board0": 1})
    done = subprocess.run([*start, f"--resources={resources}", "--disable-usage-stats"], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"`ray start --head` failed: {done.stderr[-300:]}")
    try:
        # "auto": the cluster `ray start` left its address for (an explicit HOST:PORT failed to connect here with
        # Ray 2.60's token authentication, while "auto" found the cluster and its token)
        yield "auto"
    finally:
        subprocess.run([str(RAY), "stop", "--force"], capture_output=True)


def test_a_pool_measures_through_a_cluster_whose_node_declares_the_device(cluster, tmp_path, capsys, fp32_onnx):
    daemon = start_sshd(tmp_path / "sshd")
    try:
        devices = tmp_path / "devices.toml"
        devices.write_text(devices_entry("board0", daemon))
        args = ["bench", "--quiet", str(fp32_onnx), "--pool", str(devices), "--ray-address", cluster]
        code = main([*args, "--iterations", "20", "--warmup", "2", "--json"])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        (result,) = json.loads(captured.out)["results"]
        assert result["device"] == "board0" and len(result["samples_ms"]) == 20

        devices.write_text(devices_entry("board0", daemon) + devices_entry("board9", daemon, port=free_port()))
        code = main([*args, "--iterations", "20"])
        err = capsys.readouterr().err
        assert code == 2 and "no resource for device(s) board9" in err and "ray start --address" in err
    finally:
        daemon.stop()
        shutil.rmtree(tmp_path / "sshd", ignore_errors=True)
