"""`edgeport search` end to end: the shipped example grid, stage reuse, resume after SIGKILL, workers,
Ray, halving, budgets, and bad input."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeport.cli import main
from edgeport.core.artifacts import sha256_file
from edgeport.core.paired import compare_paired, unpack_outcomes
from edgeport.search.cache import RESULT, StageCache
from edgeport.search.objective import violations
from tests.helpers import TINY_SPACE, tiny_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "search-digits.toml"


def search_cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgeport.cli", "search", *args, "--quiet"],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def search_folder(out: Path) -> Path:
    folders = [p for p in out.iterdir() if p.name.startswith("search-")]
    assert len(folders) == 1, folders
    return folders[0]


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# -- a whole search: the shipped example (16 trials, slow) and a tiny one (4 trials) through the same checks ---

# A tiny grid: 2 student widths x (fp32, ort-static) on 16x16 digits, 2-epoch models.
TINY_SEARCH = 'policy = "max-accuracy"\nlatency_metric = "p90"\nmax_accuracy_drop = 1.0\n'
# stage -> builds: one teacher; a student, its export and its quantization per width; a benchmark per trial
BUILDS = {
    "tiny": {"teacher": 1, "student": 2, "export": 2, "quantize": 2, "benchmark": 4},
    "example": {"teacher": 1, "student": 8, "export": 8, "quantize": 8, "benchmark": 16},
}


@pytest.fixture(scope="module", params=["tiny", pytest.param("example", marks=pytest.mark.slow)])
def a_search(request, tmp_path_factory):
    """(kind, out folder, search folder, summary, config) of one finished search. The shipped example takes
    minutes (16 trials) and runs under `make test-all`; the tiny one covers the same behaviours in `make
    test`. No wall-clock limit: a busy machine is slower, not wrong."""
    out = tmp_path_factory.mktemp(f"search-{request.param}")
    config = EXAMPLE if request.param == "example" else tiny_config(out, TINY_SPACE, TINY_SEARCH)
    proc = search_cli("--config", str(config), "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    return request.param, out, search_folder(out), json.loads(proc.stdout), config


def test_a_search_runs_every_candidate_and_writes_every_output(a_search):
    kind, _, folder, summary, _ = a_search
    assert {
        "trials.csv",
        "trials.json",
        "pareto.json",
        "pareto.png",
        "report.md",
        "report.html",
        "manifest.json",
        "search.db",
        "search.json",
        "best",
    } <= {p.name for p in folder.iterdir()}
    rows = read_csv(folder / "trials.csv")
    trials = BUILDS[kind]["benchmark"]
    assert len(rows) == trials and {r["status"] for r in rows} == {"ok"}
    if kind == "example":
        params = ("student.model.width", "student.model.depth", "student.temperature", "quantize.backend")
        assert {tuple(r[p] for p in params) for r in rows} == {
            (w, d, t, b)
            for w in ("0.5", "2")
            for d in ("2", "3")
            for t in ("1.0", "4.0")
            for b in ("none", "ort-static")
        }
    else:
        params = ("student.model.width", "quantize.backend")
        expected = {(w, b) for w in ("0.5", "1") for b in ("none", "ort-static")}
        assert {tuple(r[p] for p in params) for r in rows} == expected
    assert summary["complete"] and summary["candidates"] == trials
    assert (folder / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "data:image/png;base64," in (folder / "report.html").read_text()


def test_pareto_front_and_choice_agree_with_the_trials_table(a_search):
    _, _, folder, summary, _ = a_search
    rows = read_csv(folder / "trials.csv")
    points = {r["id"]: (float(r["val_accuracy"]), float(r["p90_ms"])) for r in rows}
    front = {
        i
        for i, (a, lat) in points.items()
        if not any((a2 >= a and l2 <= lat) and (a2 > a or l2 < lat) for a2, l2 in points.values())
    }
    assert front == {r["id"] for r in rows if r["pareto"] == "1"}
    assert front == {p["id"] for p in json.loads((folder / "pareto.json").read_text())["front"]}
    # max-accuracy with max_accuracy_drop = 1 point vs the trial's own fp32 student (int8 trials must also pay
    # against their fp32 twin); accuracies within noise of the best (exact McNemar test) tie, the fastest wins
    trials = {t["id"]: t for t in json.loads((folder / "trials.json").read_text())}
    feasible = {i for i in points if not violations(trials[i], summary["selection"], list(trials.values()))}
    top = min(feasible, key=lambda i: (-points[i][0], points[i][1]))
    outcomes = {i: unpack_outcomes(trials[i]["metrics"]["val_outcomes"]) for i in feasible}
    tied = {i for i in feasible if i == top or not compare_paired(outcomes[top], outcomes[i]).a_better}
    expected = min(tied, key=lambda i: (points[i][1], -points[i][0]))
    assert summary["chosen"] == expected
    assert [r["id"] for r in rows if r["chosen"] == "1"] == [expected]
    # test accuracy only for the chosen and Pareto candidates
    assert {r["id"] for r in rows if r["test_accuracy"]} == front | {expected}


def test_example_shows_a_trade_off(a_search):
    """The shipped example is there to show what a search is for: accuracy and latency both move, and
    the Pareto front holds a trade-off: candidates at different accuracies (it once gave six trials at
    the same 98.52%). How many candidates it holds depends on this machine's timing noise (a 95.6%
    student once measured faster than two 72% ones and left two on the front), so two is the floor."""
    kind, _, folder, _, _ = a_search
    if kind != "example":
        pytest.skip("showing a trade-off is the shipped example's purpose, not the tiny search's")
    rows = read_csv(folder / "trials.csv")
    accuracy = [float(r["val_accuracy"]) for r in rows]
    latency = [float(r["p90_ms"]) for r in rows]
    assert max(accuracy) - min(accuracy) >= 20, accuracy
    assert max(latency) / min(latency) >= 2, latency
    front = {r["val_accuracy"] for r in rows if r["pareto"] == "1"}
    assert len(front) >= 2, front  # distinct accuracies: a trade-off, not ties


def test_best_holds_the_chosen_artifact_with_its_manifest(a_search):
    _, _, folder, summary, _ = a_search
    trials = {t["id"]: t for t in json.loads((folder / "trials.json").read_text())}
    chosen = trials[summary["chosen"]]
    manifest = json.loads((folder / "best" / "manifest.json").read_text())
    assert manifest["sha256"] == sha256_file(folder / "best" / "model.onnx") == chosen["artifacts"]["model_sha256"]
    assert manifest["trial"] == chosen["id"] and manifest["params"] == chosen["params"]
    assert manifest["seed"] == 0 and manifest["latency"]["environment"]["cpu"]["logical_cores"] >= 1
    assert manifest["lineage"]["teacher"]["sha256"] == sha256_file(chosen["artifacts"]["teacher"])


def test_report_states_how_many_stages_ran(a_search):
    kind, _, folder, summary, _ = a_search
    counts, builds = summary["stage_counts"], BUILDS[kind]
    assert {s: counts[s]["built"] for s in counts} == builds
    assert (
        f"{builds['teacher']} teacher training(s), {builds['student']} student training(s), {builds['export']} "
        f"export(s), {builds['quantize']} quantization(s), {builds['benchmark']} benchmark(s)"
        in (folder / "report.md").read_text()
    )


def test_a_second_search_reuses_every_stage_from_the_cache(a_search):
    _, out, _, summary, config = a_search
    proc = search_cli("--config", str(config), "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    again = json.loads(proc.stdout)
    assert all(c["built"] == 0 for c in again["stage_counts"].values())
    assert again["chosen"] == summary["chosen"]


# -- resume after SIGKILL ---------------------------------------------------------------------------


def _trial_rows(db: Path) -> int:
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
    except sqlite3.Error:
        return 0


def _accuracies(folder: Path) -> dict:
    return {
        t["id"]: (t["status"], t["metrics"].get("val_accuracy"), t["metrics"].get("fp32_val_accuracy"))
        for t in json.loads((folder / "trials.json").read_text())
    }


def test_sigkill_then_resume_gives_the_same_trials_as_an_uninterrupted_run(tmp_path):
    config = tiny_config(tmp_path, TINY_SPACE)
    straight = tmp_path / "straight"
    proc = search_cli("--config", str(config), "--out", str(straight))
    assert proc.returncode == 0, proc.stderr

    killed = tmp_path / "killed"
    child = subprocess.Popen(
        [sys.executable, "-m", "edgeport.cli", "search", "--config", str(config), "--out", str(killed), "--quiet"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        folders = list(killed.glob("search-*")) if killed.exists() else []
        if folders and _trial_rows(folders[0] / "search.db") >= 1:
            break
        assert child.poll() is None, "the search ended before it could be killed"
        time.sleep(0.2)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    folder = search_folder(killed)
    assert not (folder / "manifest.json").exists()
    done_before = _trial_rows(folder / "search.db")
    assert 1 <= done_before < 4

    # Whatever the kill left in the cache is either complete and intact or absent.
    cache = StageCache(killed / ".cache" / "stages")
    stages = [stage for stage in cache.root.iterdir() if stage.is_dir() and not stage.name.startswith(".")]
    for entry in (p for stage in stages for p in stage.iterdir()):
        assert cache.lookup(entry.parent.name, entry.name) is not None, entry

    proc = search_cli("--resume", str(folder))
    assert proc.returncode == 0, proc.stderr
    assert _accuracies(folder) == _accuracies(search_folder(straight))
    summary = json.loads((folder / "manifest.json").read_text())
    assert summary["complete"] and summary["run"]["finished"] == 4 - done_before
    assert not list((cache.root / ".tmp").iterdir())


def test_resume_accepts_a_wider_space_and_refuses_a_narrower_one(tmp_path):
    out = tmp_path / "out"
    narrow = tiny_config(tmp_path, '"quantize.backend" = ["none"]', name="narrow.toml")
    assert search_cli("--config", str(narrow), "--out", str(out)).returncode == 0
    folder = search_folder(out)
    wider = tiny_config(tmp_path, '"quantize.backend" = ["none", "ort-dynamic"]', name="wider.toml")
    proc = search_cli("--resume", str(folder), "--config", str(wider), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["candidates"] == 2 and summary["run"]["finished"] == 1
    assert summary["stage_counts"]["student"]["built"] == 1  # the student of the first session was reused

    other = tiny_config(tmp_path, '"quantize.backend" = ["ort-dynamic"]', name="other.toml")
    proc = search_cli("--resume", str(folder), "--config", str(other))
    assert proc.returncode == 2 and "may only add candidates" in proc.stderr


# -- executors ---------------------------------------------------------------------------------------


def test_local_workers_build_in_parallel_processes(tmp_path):
    config = tiny_config(tmp_path, TINY_SPACE)
    proc = search_cli("--config", str(config), "--out", str(tmp_path / "out"), "--workers", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["status_counts"] == {"ok": 4, "failed": 0, "pruned": 0}
    assert summary["run"]["workers"] == 2
    assert {s: c["built"] for s, c in summary["stage_counts"].items()} == {
        "teacher": 1,
        "student": 2,
        "export": 2,
        "quantize": 2,
        "benchmark": 4,
    }
    # Latency is measured alone: no build ran while any benchmark was measuring.
    trials = json.loads((search_folder(tmp_path / "out") / "trials.json").read_text())
    windows = [t["timings"]["windows"] for t in trials]
    builds = {tuple(w[s]) for w in windows for s in ("teacher", "student", "export", "quantize") if w.get(s)}
    benches = [w["benchmark"] for w in windows]
    assert len(builds) == 7 and len(benches) == 4
    for start, end in benches:
        assert not [b for b in builds if b[0] < end and b[1] > start], (start, end)


def test_ray_executor_runs_the_search_on_a_local_ray_instance(tmp_path):
    pytest.importorskip("ray", reason="Ray is the optional extra edgeport[ray]")
    config = tiny_config(tmp_path, TINY_SPACE)
    proc = search_cli(
        "--config", str(config), "--out", str(tmp_path / "out"), "--executor", "ray", "--workers", "2", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["run"]["executor"] == "ray"
    assert summary["status_counts"]["ok"] == 4 and summary["chosen"] is not None
    assert summary["stage_counts"]["student"]["built"] == 2


# -- halving and budgets -----------------------------------------------------------------------------


def test_successive_halving_prunes_the_weakest_students_early(tmp_path):
    space = '"student.model.width" = [0.25, 0.5, 1]\n"quantize.backend" = ["none"]\n'
    config = tiny_config(tmp_path, space, "halving = true\nhalving_factor = 3\n", student_epochs=3)
    proc = search_cli("--config", str(config), "--out", str(tmp_path / "out"), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    trials = json.loads((search_folder(tmp_path / "out") / "trials.json").read_text())
    pruned = [t for t in trials if t["status"] == "pruned"]
    kept = [t for t in trials if t["status"] == "ok"]
    assert len(pruned) == 2 and len(kept) == 1
    rung = summary["run"]["halving"]["rungs"][0]
    assert rung["epochs"] == 1 and rung["kept"] == 1
    kept_rung_acc = max(rung["val_accuracy"].values())
    assert all(
        t["metrics"]["pruned_at_epochs"] == 1 and t["metrics"]["rung_val_accuracy"] <= kept_rung_acc for t in pruned
    )
    # students: three 1-epoch rung trainings, then the survivor's full 3-epoch training
    assert summary["stage_counts"]["student"]["built"] == 4


def test_a_resumed_halving_search_keeps_its_survivors(tmp_path):
    space = '"student.model.width" = [0.25, 0.5, 1]\n"quantize.backend" = ["none", "ort-dynamic"]\n'
    config = tiny_config(tmp_path, space, "halving = true\nhalving_factor = 3\n", student_epochs=3)
    out = tmp_path / "out"
    proc = search_cli("--config", str(config), "--out", str(out), "--time-budget", "1s", "--json")
    assert proc.returncode == 0, proc.stderr
    first = json.loads(proc.stdout)
    assert first["status_counts"]["pruned"] == 4 and first["run"]["skipped_by_time_budget"] == 1
    proc = search_cli("--resume", str(search_folder(out)), "--json")
    assert proc.returncode == 0, proc.stderr
    second = json.loads(proc.stdout)
    assert second["status_counts"] == {"ok": 2, "failed": 0, "pruned": 4} and second["complete"]
    assert second["stage_counts"]["student"]["built"] == 4  # the rungs did not run again


def test_time_budget_stops_launching_trials_and_returns_the_best_so_far(tmp_path):
    config = tiny_config(tmp_path, TINY_SPACE)
    proc = search_cli("--config", str(config), "--out", str(tmp_path / "out"), "--time-budget", "1s", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["run"]["finished"] == 1 and summary["run"]["skipped_by_time_budget"] == 3
    assert not summary["complete"] and summary["chosen"] is not None


def test_max_trials_with_allow_large_grid_runs_the_first_candidates(tmp_path):
    config = tiny_config(tmp_path, '"quantize.backend" = ["none", "ort-dynamic", "ort-static"]')
    proc = search_cli(
        "--config", str(config), "--out", str(tmp_path / "out"), "--max-trials", "2", "--allow-large-grid", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["candidates"] == 2


def test_search_with_a_budget_gates_the_chosen_artifact(tmp_path):
    config = tiny_config(tmp_path, '"quantize.backend" = ["none", "ort-dynamic"]')
    budget = tmp_path / "budgets.toml"
    budget.write_text("[targets.cpu]\np90_ms = 100.0\nmin_speedup = 0.01\nmax_size_mb = 10.0\n")
    proc = search_cli("--config", str(config), "--out", str(tmp_path / "out"), "--budget", str(budget), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["gate"]["verdict"] == "pass"
    assert {c["name"] for c in summary["gate"]["checks"]} == {"p90_ms", "min_speedup", "max_size_mb"}
    folder = search_folder(tmp_path / "out")
    assert json.loads((folder / "gate.json").read_text())["artifact"]["sha256"] == sha256_file(
        folder / "best" / "model.onnx"
    )


# -- bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "space, search, args, message",
    [
        ("", "", [], "search.space is empty"),
        ('"student.colour" = [1]', "", [], "unknown parameter 'student.colour'"),
        ('"student.epochs" = ["ten"]', "", [], "search.space.student.epochs"),
        ('"quantize.backend" = ["tensorrt-int4"]', "", [], "unknown backend 'tensorrt-int4'"),
        ('"student.temperature" = []', "", [], "empty list"),
        (
            '"quantize.backend" = ["none", "ort-static", "ort-dynamic"]',
            "",
            ["--max-trials", "2"],
            "3 grid points, more than max_trials 2",
        ),
        ('"quantize.backend" = ["none"]', 'strategy = "random"', [], "needs search.n_iter"),
        ('"quantize.backend" = ["none"]', 'policy = "min-latency"', [], "accuracy_floor"),
        ('"quantize.backend" = ["none"]', 'time_budget = "soon"', [], "not a duration"),
        ('"quantize.backend" = ["none"]', "", ["--executor", "ray", "--ray-address", "127.0.0.1:9"], "unreachable"),
        ('"quantize.backend" = ["none"]', "", ["--ray-address", "127.0.0.1:9"], "needs --executor ray"),
        ('"teacher.model" = ["nosuch"]', "", [], "unknown model 'nosuch'"),
        ('"data.name" = ["nosuch"]', "", [], "nosuch"),
        ('"student.epochs" = [1, 2]', "halving = true", [], "halving uses student.epochs"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_no_folder(tmp_path, capsys, space, search, args, message):
    config = tiny_config(tmp_path, space, search)
    out = tmp_path / "out"
    code = main(["search", "--config", str(config), "--out", str(out), "--quiet", *args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.startswith("error: ") and err.count("\n") == 1
    assert not out.exists() or not list(out.glob("search-*"))


def test_resume_with_a_damaged_definition_exits_2(tmp_path, capsys):
    folder = tmp_path / "search-x"
    folder.mkdir()
    (folder / "search.db").write_bytes(b"")
    (folder / "search.json").write_text('{"run": "{}"}')
    assert main(["search", "--resume", str(folder), "--quiet"]) == 2
    assert "damaged search definition" in capsys.readouterr().err


def test_missing_search_table_and_bad_resume_folder_exit_2(tmp_path, capsys):
    plain = tmp_path / "plain.toml"
    plain.write_text("[run]\nseed = 1\n")
    assert main(["search", "--config", str(plain), "--quiet"]) == 2
    assert "no [search] table" in capsys.readouterr().err
    assert main(["search", "--resume", str(tmp_path), "--quiet"]) == 2
    assert "not a search folder" in capsys.readouterr().err
    assert main(["search", "--quiet"]) == 2
    assert "--config" in capsys.readouterr().err


def test_cache_rebuilds_an_entry_whose_file_was_damaged(tmp_path):
    cache = StageCache(tmp_path / "cache")
    build = cache.new_build_dir("export", "k1")
    (build / "model.onnx").write_bytes(b"model")
    stored = cache.commit("export", "k1", build, {"val_accuracy": 1.0})
    assert stored["files"]["model.onnx"] == sha256_file(Path(stored["paths"]["model.onnx"]))
    assert (cache.entry("export", "k1") / RESULT).is_file()
    Path(stored["paths"]["model.onnx"]).write_bytes(b"damaged")
    assert cache.lookup("export", "k1") is None and not cache.entry("export", "k1").exists()


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino not installed")
def test_a_runtime_dimension_measures_each_trial_on_its_runtime(tmp_path):
    config = tiny_config(tmp_path, '"quantize.backend" = ["ort-static"]\n"bench.runtime" = ["ort", "openvino"]\n')
    proc = search_cli("--config", str(config), "--out", str(tmp_path / "out"), "--json")
    assert proc.returncode == 0, proc.stderr
    folder = search_folder(tmp_path / "out")
    trials = json.loads((folder / "trials.json").read_text())
    runtimes = {}
    for trial in trials:
        bench = json.loads(Path(trial["artifacts"]["benchmark"]).read_text())
        runtimes[trial["params"]["bench.runtime"]] = bench["settings"]["runtime"]
    assert runtimes == {"ort": "ort", "openvino": "openvino"}  # each trial measured where it says
    assert {r["bench.runtime"] for r in read_csv(folder / "trials.csv")} == {"ort", "openvino"}
    for trial in trials:  # and its accuracy is the one of the runtime it ships on
        judged, metrics = trial["metrics"]["judged_on_runtime"], trial["metrics"]
        if trial["params"]["bench.runtime"] == "ort":
            assert judged is None  # the stages measured it on onnxruntime already
            continue
        assert judged["runtime"] == "openvino" and metrics["val_accuracy"] == judged["val_accuracy"]
        assert judged["within_tolerance"] is (judged["accuracy_drop_vs_fp32_ort"] <= judged["tolerance_points"])
        assert 0.0 <= judged["top1_agreement_with_ort"] <= 100.0 and "val_outcomes" not in judged
    best = json.loads((folder / "best" / "manifest.json").read_text())
    assert best["latency"]["settings"]["runtime"] == best["params"]["bench.runtime"]


def test_a_precision_hint_without_openvino_is_refused(tmp_path, capsys):
    config = tiny_config(tmp_path, '"bench.precision" = ["bf16"]\n')
    proc = search_cli("--config", str(config), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and "precision is OpenVINO's" in proc.stderr


def test_footprint_constraints_cold_start_every_trial_and_rule_out_the_heavy_ones(tmp_path):
    """A memory limit the trials' artifacts cannot meet makes every trial infeasible; each trial's worst cold
    start is its own fresh processes', shown in trials.csv and judged against the constraint."""
    space = '"student.model.width" = [0.5]\n"quantize.backend" = ["none", "ort-static"]\n'
    search = 'policy = "max-accuracy"\nmax_peak_rss_mb = 1.0\nmax_cold_start_ms = 60000\n'
    config = tiny_config(tmp_path, space, search)
    proc = search_cli("--config", str(config), "--out", str(tmp_path / "out"), "--json")
    assert proc.returncode == 1, proc.stderr  # finished, and nothing is feasible
    folder = search_folder(tmp_path / "out")
    trials = json.loads((folder / "trials.json").read_text())
    assert len(trials) == 2 and json.loads(proc.stdout)["chosen"] is None
    for trial, row in zip(trials, read_csv(folder / "trials.csv"), strict=True):
        footprint = trial["metrics"]["footprint"]
        assert footprint["cold_starts"] == 3 and footprint["runtime"] == "ort" and footprint["cpu_mem_arena"] is True
        assert float(row["peak_rss_mb"]) == footprint["peak_rss_mb_worst"] > 1.0
        why = violations(trial, json.loads(proc.stdout)["selection"])
        assert any(w.startswith("peak_rss_mb ") and "worst of 3 cold starts" in w for w in why)
        assert not any(w.startswith("cold_start_ms") for w in why)  # a minute is within reach

    # A search that cold-starts its trials can be gated on memory: the chosen trial's own cold starts
    # (its benchmark is cached: the same artifact, settings and cold starts) against the budget.
    generous = tiny_config(tmp_path, space, search.replace("= 1.0", "= 100000.0"), name="generous.toml")
    budget = tmp_path / "budgets.toml"
    budget.write_text("[targets.cpu]\nmax_peak_rss_mb = 1.0\n")
    proc = search_cli("--config", str(generous), "--out", str(tmp_path / "out"), "--json", "--budget", str(budget))
    assert proc.returncode == 1, proc.stderr  # the gate's verdict: the chosen artifact misses its memory budget
    (check,) = json.loads(proc.stdout)["gate"]["checks"]
    assert (
        check["name"] == "max_peak_rss_mb"
        and check["verdict"] == "fail"
        and "worst of 3 cold starts" in check["reason"]
    )
