"""`edgeport bench --sustained`: drift over a long run and the platform's heat (telemetry.py, sustained.py),
and heat in the gate (gate/heat.py): throttled results fail, a cool-down is waited for or refused."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from edgeport.benchmarks.latency import BenchResult
from edgeport.benchmarks.sustained import drift_of
from edgeport.benchmarks.telemetry import read_telemetry, throttling
from edgeport.cli import main
from edgeport.errors import ConfigError
from edgeport.gate.budgets import GateTarget
from edgeport.gate.heat import check_cool_down_possible, cool_down


def _sysfs(root, temps=(), mhz=(), throttles=()):
    """A sysfs tree as Linux lays it out, with the given millidegrees, kHz and counters."""
    for i, value in enumerate(temps):
        zone = root / "class/thermal" / f"thermal_zone{i}"
        zone.mkdir(parents=True, exist_ok=True)
        (zone / "temp").write_text(f"{value}\n")
    for i, value in enumerate(mhz):
        folder = root / "devices/system/cpu" / f"cpu{i}" / "cpufreq"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "scaling_cur_freq").write_text(f"{value}\n")
    for i, value in enumerate(throttles):
        folder = root / "devices/system/cpu" / f"cpu{i}" / "thermal_throttle"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "core_throttle_count").write_text(f"{value}\n")
    return root


def test_telemetry_reads_what_sysfs_exposes_and_names_what_it_does_not(tmp_path):
    full = read_telemetry(_sysfs(tmp_path / "full", (45000, 52000), (2000000, 1800000), (1, 2)))
    assert (full["temperature_c"], full["cpu_mhz"], full["throttle_count"]) == (52.0, 1900.0, 3)
    assert full["missing"] == []
    bare = read_telemetry(tmp_path / "bare")
    assert bare["temperature_c"] is None and bare["cpu_mhz"] is None and bare["throttle_count"] is None
    assert [m.split(" ")[0] for m in bare["missing"]] == ["temperature", "CPU", "thermal"]


def test_throttling_is_read_from_counters_and_frequency_and_unknown_without_them(tmp_path):
    def reading(count=None, mhz=None):
        return {"throttle_count": count, "cpu_mhz": mhz, "temperature_c": None, "missing": []}

    assert throttling(reading(3), reading(5))[0] is True
    assert throttling(reading(mhz=2400.0), reading(mhz=1900.0))[0] is True  # 21% lower
    assert throttling(reading(3, 2400.0), reading(3, 2350.0))[0] is False
    unknown, why = throttling(reading(), reading())
    assert unknown is None and "exposes neither" in why


def _result(round_medians, per_round=20):
    rng = np.random.default_rng(0)
    samples = np.concatenate([m * rng.lognormal(0, 0.02, per_round) for m in round_medians])
    settings = {"round_sizes": [per_round] * len(round_medians), "rounds": len(round_medians), "batch": 1}
    return BenchResult("m.onnx", "0" * 64, settings, {}, samples.tolist())


def test_drift_compares_the_last_fifth_of_the_rounds_with_the_first():
    heating = drift_of(_result(np.linspace(1.0, 1.5, 30)))
    assert heating["rounds"] == 30 and heating["rounds_each_side"] == 6
    assert 1.3 < heating["last_over_first"] < 1.5 and heating["last_over_first_ci"][0] > 1.0
    steady = drift_of(_result(np.ones(30)))
    low, high = steady["last_over_first_ci"]
    assert low <= 1.0 <= high
    short = drift_of(_result(np.ones(6)))  # one round a side: a ratio, no interval
    assert short["last_over_first_ci"] is None


def test_bench_sustained_reports_drift_and_what_this_machine_exposes(tmp_path, capsys, fp32_onnx):
    out = tmp_path / "result.json"
    assert main(["bench", str(fp32_onnx), "--sustained", "3", "--iterations", "200", "-o", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    (result,) = json.loads(out.read_text())["results"]
    record = result["sustained"]
    assert record["seconds"] == 3 and record["drift"]["rounds"] >= 5 and record["drift"]["last_over_first"] > 0
    here = read_telemetry()
    # the same sensors as a direct reading: a missing one is said, never filled in
    assert (record["temperature_c"]["before"] is None) == (here["temperature_c"] is None)
    assert (record["cpu_mhz"]["before"] is None) == (here["cpu_mhz"] is None)
    assert record["not_exposed"] == here["missing"]
    assert "sustained, batch 1, 1 thread(s): A: p50 of the last rounds over the first" in printed
    assert "heat: " in printed


def test_cool_down_waits_for_the_device_and_fails_when_it_stays_warm(tmp_path):
    root = _sysfs(tmp_path, (70000,))
    target = GateTarget(p50_ms=1.0, idle_temperature_c=45.0, cool_down_timeout_s=30)

    def cool():
        time.sleep(0.3)
        (root / "class/thermal/thermal_zone0/temp").write_text("48000\n")

    threading.Thread(target=cool).start()
    check = cool_down(target, root, sleep=lambda s: time.sleep(0.05), log=lambda line: None)
    assert check.verdict == "pass" and check.measured == 48.0 and check.budget == "<= 50 C"
    (root / "class/thermal/thermal_zone0/temp").write_text("70000\n")
    warm = GateTarget(p50_ms=1.0, idle_temperature_c=45.0, cool_down_timeout_s=0.2)
    check = cool_down(warm, root, sleep=lambda s: time.sleep(0.05), log=lambda line: None)
    assert check.verdict == "fail" and "still 70.0 C" in check.reason


def test_a_cool_down_without_a_thermometer_is_refused(tmp_path):
    target = GateTarget(p50_ms=1.0, idle_temperature_c=45.0)
    with pytest.raises(ConfigError, match="exposes no temperature"):
        check_cool_down_possible("edge", target, tmp_path)
    check_cool_down_possible("edge", GateTarget(p50_ms=1.0), tmp_path)  # no cool-down asked: nothing to check


def test_a_result_measured_while_throttled_fails_the_gate(tmp_path, capsys, fp32_onnx):
    out = tmp_path / "result.json"
    assert main(["bench", str(fp32_onnx), "--iterations", "200", "-o", str(out), "--quiet"]) == 0
    capsys.readouterr()  # the bench's own summary
    data = json.loads(out.read_text())
    data["results"][0]["sustained"] = {"throttled": True, "throttled_why": "the counters rose by 4"}
    out.write_text(json.dumps(data))
    (tmp_path / "budgets.toml").write_text("[targets.t]\np50_ms = 1000\n")
    assert main(["gate", "--budget", str(tmp_path / "budgets.toml"), "--result", str(out), "--json"]) == 1
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert checks["p50_ms"]["verdict"] == "pass" and checks["throttling"]["verdict"] == "fail"
    assert "the counters rose by 4" in checks["throttling"]["reason"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--sustained", "0"], "--sustained must be a number of seconds from 1"),
        (["--sustained", "5", "--duration", "2"], "drop --duration"),
    ],
)
def test_bad_sustained_options_are_one_line_and_exit_2(capsys, fp32_onnx, args, message):
    assert main(["bench", str(fp32_onnx), *args, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
