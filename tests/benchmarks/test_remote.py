"""`edgeport bench --remote` against a real sshd on 127.0.0.1 with throwaway keys."""

import importlib.util
import json
import shutil
import subprocess
import sys

import pytest

from edgeport.benchmarks.telemetry import read_telemetry
from edgeport.cli import main
from tests.helpers import tiny_config
from tests.sshd import free_port, start_sshd


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    daemon = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield daemon
    daemon.stop()


def _args(sshd, *, known_hosts=None, key="user_key", port=None):
    folder = sshd.folder
    return [
        "--remote",
        f"ssh://{sshd.user}@127.0.0.1:{port or sshd.port}",
        "--ssh-option",
        f"IdentityFile={folder / key}",
        "--ssh-option",
        f"UserKnownHostsFile={known_hosts or folder / 'known_hosts'}",
        "--ssh-option",
        "IdentitiesOnly=yes",
    ]


def _bench(capsys, *args):
    code = main(["bench", "--quiet", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_remote_benchmark_end_to_end(sshd, capsys, fp32_onnx):
    code, out, err = _bench(
        capsys, fp32_onnx, *_args(sshd), "--remote-python", sys.executable, "--iterations", 100, "--warmup", 5, "--json"
    )
    assert code == 0, err
    result = json.loads(out)["results"][0]
    assert len(result["samples_ms"]) == 100 and result["stats"]["p50_ms"] > 0
    assert result["settings"]["remote"].startswith("ssh://") and result["environment"]["cpu"]["logical_cores"] >= 1
    assert result["model_sha256"] and result["session_create_ms"] > 0


def test_a_model_with_external_data_travels_with_it(sshd, capsys, fp32_onnx, tmp_path):
    """An exported transformer keeps its weights in MODEL.onnx.data (all-MiniLM-L6-v2 does): the device gets
    that file beside the model, or onnxruntime there cannot load it."""
    import onnx

    model = tmp_path / "external.onnx"
    onnx.save(onnx.load(str(fp32_onnx)), str(model), save_as_external_data=True, location="external.onnx.data",
              size_threshold=0)  # fmt: skip
    assert (tmp_path / "external.onnx.data").stat().st_size > model.stat().st_size
    args = ("--remote-python", sys.executable, "--iterations", 20, "--warmup", 2, "--json")
    code, out, err = _bench(capsys, model, *_args(sshd), *args)
    assert code == 0, err
    assert len(json.loads(out)["results"][0]["samples_ms"]) == 20


def test_remote_footprint_runs_its_cold_starts_on_the_device(sshd, capsys, fp32_onnx):
    """The device's own processes: the cold starts run there (through ssh, on the device's Python), each a
    fresh process, and their figures come back checked."""
    args = ("--remote-python", sys.executable, "--iterations", 40, "--warmup", 2, "--footprint", "--cold-starts", 2)
    code, out, err = _bench(capsys, fp32_onnx, *_args(sshd), *args, "--json")
    assert code == 0, err
    (result,) = json.loads(out)["results"]
    footprints = result["footprint"]
    assert [f["cpu_mem_arena"] for f in footprints] == [True, False]
    for footprint in footprints:
        assert len({s["pid"] for s in footprint["starts"]}) == 2 and footprint["peak_rss_mb"]["median"] > 0
        assert footprint["environment"]["cpu"]["logical_cores"] >= 1


def test_a_sustained_run_on_the_device_reads_the_devices_own_telemetry(sshd, capsys, fp32_onnx):
    """The heat that matters is the board's: the runner measures equal rounds for the time asked and reads
    the device's sensors between them (here the device is this machine, so they agree with a local read)."""
    args = ("--remote-python", sys.executable, "--sustained", 2, "--iterations", 100, "--warmup", 2, "--json")
    code, out, err = _bench(capsys, fp32_onnx, *_args(sshd), *args)
    assert code == 0, err
    (result,) = json.loads(out)["results"]
    record, sizes = result["sustained"], result["settings"]["round_sizes"]
    assert result["settings"]["remote"].startswith("ssh://") and record["seconds"] == 2
    assert set(sizes) == {10} and len(sizes) == record["drift"]["rounds"] >= 5  # iterations / rounds per round
    assert len(result["samples_ms"]) == sum(sizes) and record["not_exposed"] == read_telemetry()["missing"]


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino not installed")
def test_remote_benchmark_on_openvino_when_the_device_has_it(sshd, capsys, fp32_onnx):
    args = ("--remote-python", sys.executable, "--runtime", "openvino", "--precision", "f32", "--iterations", 50)
    code, out, err = _bench(capsys, fp32_onnx, *_args(sshd), *args, "--warmup", 5, "--json")
    assert code == 0, err
    result = json.loads(out)["results"][0]
    settings = result["settings"]
    assert settings["remote"].startswith("ssh://") and settings["runtime"] == "openvino"
    assert settings["precision_used"] == "f32" and result["environment"]["openvino"]
    assert len(result["samples_ms"]) == 50


def _python_without_onnxruntime() -> str | None:
    for candidate in ("/usr/bin/python3", shutil.which("python3")):
        if candidate and subprocess.run([candidate, "-c", "import onnxruntime"], capture_output=True).returncode:
            return candidate
    return None


def test_remote_failures_are_clear_and_exit_2(sshd, capsys, fp32_onnx, tmp_path):
    folder = sshd.folder
    (tmp_path / "other_known_hosts").write_text("[127.0.0.1]:1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA\n")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "stranger")], check=True)
    dead_port = free_port()
    cases = [
        (_args(sshd, port=dead_port), "cannot reach"),
        (_args(sshd, key=str(tmp_path / "stranger")), "cannot reach"),  # key not authorized
        (_args(sshd, known_hosts=tmp_path / "other_known_hosts"), "cannot reach"),  # unknown host key
        ([*_args(sshd), "--remote-python", "/no/such/python3"], "not found on the device"),
        (["--remote", "http://127.0.0.1"], "--remote expects ssh://"),
    ]
    bare = _python_without_onnxruntime()
    if bare:
        cases.append(([*_args(sshd), "--remote-python", bare], "missing package on the device"))
    for args, message in cases:
        code, _, err = _bench(capsys, fp32_onnx, *args, "--iterations", 10)
        assert code == 2, (args, err)
        assert err.startswith("error: ") and err.count("\n") == 1 and message in err, (message, err)
    assert folder.exists()


def test_search_measures_latency_on_the_remote_device(sshd, tmp_path, capsys):
    config = tiny_config(tmp_path, '"quantize.backend" = ["none", "ort-dynamic"]')
    out = tmp_path / "out"
    bare = _python_without_onnxruntime()
    if bare:  # a device without onnxruntime is refused before any work
        code = main(
            ["search", "--config", str(config), "--out", str(out), "--quiet", "--remote-python", bare, *_args(sshd)]
        )
        err = capsys.readouterr().err
        assert code == 2 and "missing package on the device:" in err and "onnxruntime" in err
        assert not out.exists() or not list(out.glob("search-*"))

    code = main(
        [
            "search",
            "--config",
            str(config),
            "--out",
            str(out),
            "--quiet",
            "--json",
            "--remote-python",
            sys.executable,
            *_args(sshd),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.out[-3000:] + captured.err
    summary = json.loads(captured.out)
    assert summary["run"]["bench_target"].startswith("ssh://")
    folder = next((tmp_path / "out").glob("search-*"))
    manifest = json.loads((folder / "best" / "manifest.json").read_text())
    assert manifest["latency"]["settings"]["remote"].startswith("ssh://")


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino not installed")
def test_the_device_probe_asks_for_the_packages_of_the_runtimes_used(sshd):
    from edgeport.benchmarks.remote import probe_remote
    from edgeport.benchmarks.ssh_device import RemoteDevice

    args = _args(sshd)
    options = tuple(args[i + 1] for i, a in enumerate(args) if a == "--ssh-option")
    device = RemoteDevice.parse(args[args.index("--remote") + 1], sys.executable, options)
    import onnxruntime
    import openvino

    assert probe_remote(device).split()[0] == onnxruntime.__version__  # the line searches have cached by
    assert probe_remote(device, {"openvino"}).split()[0] == openvino.__version__
    both = probe_remote(device, {"ort", "openvino"}).split()
    assert set(both[:2]) == {onnxruntime.__version__, openvino.__version__}
