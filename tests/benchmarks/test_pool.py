"""A device pool: real sshd "devices" on loopback (different ports and keys), one local Ray instance whose
custom resources are the devices, one device killed in the middle of a measurement."""

import json
import stat
import sys
import textwrap
from pathlib import Path

import pytest

from edgeport.benchmarks.pool.devices import load_devices, parse_tags, select_devices
from edgeport.cli import main
from edgeport.errors import ConfigError
from tests.helpers import tiny_config
from tests.sshd import devices_entry, dying_python, free_port, start_sshd

DEVICES = ("loop0", "loop1", "doomed", "gone", "dying")


def _device(name: str, daemon, python: str = sys.executable, port: int | None = None) -> str:
    return devices_entry(name, daemon, python, port, 'board = "loopback", arch = "x86_64"')


def _script(path: Path, text: str) -> str:
    path.write_text(textwrap.dedent(text))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """Three daemons (loop0, loop1, doomed), a devices file naming them and a dead port (gone), and one local
    Ray instance that declares the four devices (every pool of the module joins it instead of starting one)."""
    ray = pytest.importorskip("ray")
    folder = tmp_path_factory.mktemp("lab")
    daemons = {name: start_sshd(folder / name) for name in DEVICES[:3]}
    ray.init(
        num_cpus=1,
        resources={f"edgeport-device:{name}": 1 for name in DEVICES},
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    yield folder, daemons
    ray.shutdown()
    for daemon in daemons.values():
        daemon.stop()


def test_a_devices_file_gives_each_device_its_tags_runtimes_and_checked_ssh_options(tmp_path):
    path = tmp_path / "devices.toml"
    path.write_text(
        '[devices.pi-a]\nurl = "ssh://pi@10.0.0.5"\ntags = { board = "rpi5" }\n'
        '[devices.pi-b]\nurl = "ssh://pi@10.0.0.6:2222"\nssh_options = ["IdentityFile=~/.ssh/lab"]\n'
        'tags = { board = "rpi5" }\n'
        '[devices.nuc]\nurl = "ssh://nuc"\nruntimes = ["ort", "openvino"]\ntags = { board = "nuc" }\n'
    )
    devices = {d.name: d for d in load_devices(path)}
    assert devices["pi-b"].remote.port == 2222 and devices["pi-b"].remote.options == ("IdentityFile=~/.ssh/lab",)
    assert devices["pi-a"].runtimes == ("ort",) and devices["nuc"].runtimes == ("ort", "openvino")
    assert [d.name for d in select_devices(list(devices.values()), {"board": "rpi5"}, ["ort"], path)] == [
        "pi-a",
        "pi-b",
    ]
    assert [d.name for d in select_devices(list(devices.values()), {}, ["openvino"], path)] == ["nuc"]
    with pytest.raises(ConfigError, match="2 kinds"):  # rpi5 and nuc latencies are not comparable
        select_devices(list(devices.values()), {}, ["ort"], path)
    assert parse_tags(["board=rpi5,arch=aarch64", "os=linux"]) == {"board": "rpi5", "arch": "aarch64", "os": "linux"}
    shipped = Path(__file__).parents[2] / "examples" / "devices.toml"  # the example the docs point to
    assert [d.name for d in select_devices(load_devices(shipped), {"board": "rpi5"}, ["ort"], shipped)] == [
        "rpi5-a",
        "rpi5-b",
    ]


GOOD = '[devices.a]\nurl = "ssh://pi@10.0.0.5"\ntags = { board = "rpi5" }\n'


@pytest.mark.parametrize(
    ("text", "args", "expected"),
    [
        (GOOD.replace("tags", "color = 1\ntags"), [], "field 'devices.a.color': unknown key"),
        (GOOD + GOOD, [], "not valid TOML"),  # the same [devices.a] twice
        (GOOD.replace('"ssh://pi@10.0.0.5"', '"ssh://pi@10.0.0.5"\nssh_options = ["ProxyCommand=sh -c id"]'), [],
         "devices.a.url/python/ssh_options"),
        (GOOD.replace("ssh://pi@10.0.0.5", "ssh://-oProxyCommand=id@10.0.0.5"), [], "devices.a.url"),
        (GOOD.replace("ssh://pi@10.0.0.5", "http://10.0.0.5"), [], "devices.a.url"),
        (GOOD.replace('board = "rpi5"', 'board = "rpi 5; rm"'), [], "field 'devices.a.tags'"),
        (GOOD.replace("tags", 'runtimes = ["tensorrt"]\ntags'), [], "field 'devices.a.runtimes.0'"),
        (GOOD, ["--tags", "board=jetson"], "no device has board=jetson"),
        (GOOD, ["--tags", "board"], "--tags expects KEY=VALUE"),
        (GOOD + GOOD.replace("devices.a", "devices.b"), [], "are one device"),
        ("", [], "no devices"),
    ],
    ids=["unknown-key", "duplicate-name", "proxy-command", "option-as-user", "not-ssh", "tag-syntax",
         "unknown-runtime", "no-device-for-tags", "tag-without-value", "same-device-twice", "empty"],
)  # fmt: skip
def test_a_bad_devices_file_is_exit_2_naming_the_field(tmp_path, capsys, fp32_onnx, text, args, expected):
    path = tmp_path / "devices.toml"
    path.write_text(text)
    code = main(["bench", "--quiet", str(fp32_onnx), "--pool", str(path), *args])
    err = capsys.readouterr().err
    assert code == 2 and expected in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_pool_without_ray_is_exit_2_with_the_install_command(tmp_path, capsys, fp32_onnx, monkeypatch):
    path = tmp_path / "devices.toml"
    path.write_text(GOOD)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    code = main(["bench", "--quiet", str(fp32_onnx), "--pool", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and "--pool needs Ray: pip install 'edgeport[ray]'" in err


def test_bench_spreads_settings_over_the_pool_and_survives_a_device_killed_mid_measurement(
    lab, tmp_path, capsys, fp32_onnx
):
    """loop0's and loop1's runners wait until `doomed` has started its third runner, so while they hold one
    setting each, `doomed` takes the other two (no timing decides it: a busy machine ran it otherwise when
    they only started late); its sshd and every session (the runner included) are killed when its second
    setting's runner starts. That setting goes to another device, the one doomed finished stays, `gone`
    (nothing listens) is left out at the probe, and each A/B comparison is of one device's samples."""
    folder, daemons = lab
    # the runners of A and B of its first setting, then the third: the device dies
    doomed = dying_python(tmp_path / "doomed-python", daemons["doomed"], at_run=3)
    runs = tmp_path / "doomed-python.count"  # dying_python counts doomed's runners here
    waiting = f"""\
        #!/bin/sh
        case "$*" in *edgeport_runner.py*)
          i=0  # at most 10 minutes: if doomed never dies, the test fails on its assertions instead of hanging
          while [ "$(cat {runs} 2>/dev/null || echo 0)" -lt 3 ] && [ $i -lt 6000 ]; do sleep 0.1; i=$((i+1)); done;;
        esac
        exec {sys.executable} "$@"
        """
    slow = _script(tmp_path / "waiting-python", waiting)
    devices = tmp_path / "devices.toml"
    devices.write_text(
        _device("loop0", daemons["loop0"], slow)
        + _device("loop1", daemons["loop1"], slow)
        + _device("doomed", daemons["doomed"], doomed)
        + _device("gone", daemons["loop0"], port=free_port())
    )
    args = ["--batch", "1,2", "--threads", "1,2", "--iterations", "20", "--warmup", "2", "--vs", str(fp32_onnx)]
    code = main(
        ["bench", "--quiet", str(fp32_onnx), "--pool", str(devices), "--tags", "board=loopback", *args, "--json"]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out)
    settings = {(r["settings"]["batch"], r["settings"]["threads"]) for r in report["results"]}
    assert settings == {(b, t) for b in (1, 2) for t in (1, 2)} and len(report["results"]) == 8
    pool = {d["name"]: d for d in report["pool"]}
    assert pool["gone"]["state"] == "down" and "cannot reach" in pool["gone"]["error"]
    assert pool["doomed"]["state"] == "down" and "connection lost" in pool["doomed"]["error"]
    assert pool["doomed"]["measurements"] == 1  # the one it finished before it died is kept
    assert pool["loop0"]["measurements"] + pool["loop1"]["measurements"] == 3
    by_device = {}
    for result in report["results"]:
        by_device.setdefault(result["device"], []).append(result["settings"]["remote"])
    assert {name: len(urls) for name, urls in by_device.items()} == {
        name: 2 * d["measurements"] for name, d in pool.items() if d["measurements"]
    }
    assert all(len(set(urls)) == 1 for urls in by_device.values())  # a result names the device that measured it
    for comparison in report["comparisons"]:  # A and B of one setting, measured on one device
        pair = [r for r in report["results"] if (r["settings"]["batch"], r["settings"]["threads"]) == (
            comparison["batch"], comparison["threads"])]  # fmt: skip
        assert {r["device"] for r in pair} == {comparison["device"]}


def test_a_search_measures_its_trials_on_the_pool_and_records_the_device_of_each(lab, tmp_path, capsys):
    folder, daemons = lab
    devices = tmp_path / "devices.toml"
    devices.write_text(_device("loop0", daemons["loop0"]) + _device("loop1", daemons["loop1"]))
    config = tiny_config(tmp_path, '"quantize.backend" = ["none", "ort-dynamic"]')
    out = tmp_path / "out"
    code = main(["search", "--config", str(config), "--out", str(out), "--quiet", "--json", "--pool", str(devices)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["run"]["bench_target"].startswith(f"pool {devices}")
    assert sum(d["measurements"] for d in summary["run"]["pool"]) == 2
    folder = next(out.glob("search-*"))
    rows = (folder / "trials.csv").read_text().splitlines()
    device_column = rows[0].split(",").index("device")
    assert {row.split(",")[device_column] for row in rows[1:]} <= {"loop0", "loop1"}
    manifest = json.loads((folder / "best" / "manifest.json").read_text())
    assert manifest["latency"]["settings"]["remote"] in {d.url for d in daemons.values()}


def test_the_gate_measures_on_one_device_and_starts_again_on_another_when_it_dies(lab, tmp_path, capsys, fp32_onnx):
    """`dying` (first in the file, so first to be chosen) measures the artifact and the reference, then dies
    when the footprint's runner starts there: the gate drops its samples and measures everything again on
    loop1, whose fingerprint the target's hardware is then checked against."""
    folder, daemons = lab
    dying = start_sshd(tmp_path / "dying")
    try:
        devices = tmp_path / "devices.toml"
        python = dying_python(tmp_path / "dying-python", dying, at_run=3)
        devices.write_text(_device("dying", dying, python) + _device("loop1", daemons["loop1"]))
        budget = tmp_path / "budgets.toml"
        budget.write_text(
            "[targets.loop]\np50_ms = 1000.0\nmin_speedup = 0.5\nmax_peak_rss_mb = 100000.0\n"
            "[targets.loop.hardware]\nmachine = 'x86_64'\n"
            "[targets.arm]\np50_ms = 1000.0\n[targets.arm.hardware]\nmachine = 'aarch64'\n"
        )
        common = ["gate", "--budget", str(budget), "--artifact", str(fp32_onnx), "--pool", str(devices), "--json"]
        code = main([*common, "--target", "loop", "--reference", str(fp32_onnx), "--iterations", "60"])
        captured = capsys.readouterr()
        assert code == 0, captured.out + captured.err
        verdict = json.loads(captured.out)
        assert verdict["passed"] and {c["name"] for c in verdict["checks"]} == {
            "p50_ms",
            "min_speedup",
            "max_peak_rss_mb",
        }
        # only loop1's samples count: its first measurement, and each extra one a noisy machine asked for
        assert verdict["sources"]["result"] == "measured on device loop1"
        assert verdict["samples"] == 60 * (1 + verdict["extra_measurements"])
        assert (tmp_path / "dying-python.count").read_text() == "3"  # it did measure, then died
    finally:
        dying.stop()
    code = main([*common, "--target", "arm", "--iterations", "60"])  # loop1 is not the target's hardware
    err = capsys.readouterr().err
    assert code == 2 and "aarch64" in err
    code = main([*common, "--target", "loop", "--result", str(budget)])
    assert code == 2 and "--pool measures the artifact" in capsys.readouterr().err
    # a cool-down reads the device's temperature, which this loopback device (this machine) does not expose
    budget.write_text(budget.read_text() + "[targets.cool]\np50_ms = 1000.0\nidle_temperature_c = 40.0\n")
    code = main([*common, "--target", "cool", "--iterations", "60"])
    err = capsys.readouterr().err
    assert code == 2 and "device loop1: the target asks for a cool-down, but the device exposes no temperature" in err
