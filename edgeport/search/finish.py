"""The end of a search: Pareto front, the chosen candidate, test accuracy, best/ and every output file.

Test accuracy is measured here, after the choice, and only for the chosen and Pareto candidates,
so the test split never influences which model is picked.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from edgeport.core import schemas
from edgeport.core.artifacts import atomic_write_json, atomic_write_text, sha256_file
from edgeport.core.manifest import check_manifest
from edgeport.core.versions import package_versions
from edgeport.distill import accuracy
from edgeport.errors import ArtifactError
from edgeport.exporter import onnx_predict
from edgeport.report.search_report import plot_pareto, render_html, render_markdown, trials_csv
from edgeport.search.objective import choose, pareto_front, violations
from edgeport.search.space import Candidate
from edgeport.search.store import TrialStore
from edgeport.search.tasks import prepared_data

SEARCH_SCHEMA = schemas.SEARCH_MANIFEST


def _measure_test_accuracy(
    trials: list[dict], wanted: set[str], candidates: dict[str, Candidate], store: TrialStore
) -> None:
    for trial in trials:
        if trial["id"] in wanted and trial["status"] == "ok" and "test_accuracy" not in trial["metrics"]:
            _require_files(trial)
            test = prepared_data(candidates[trial["id"]].config).splits.test
            trial["metrics"]["test_accuracy"] = accuracy(onnx_predict(trial["artifacts"]["model"], test.x), test.y)
            store.update_metrics(trial["id"], trial["metrics"])


def _stage_line(counts: dict, trials: int) -> str:
    def n(stage: str, what: str) -> int:
        return counts.get(stage, {}).get(what, 0)

    built = (
        f"{n('teacher', 'built')} teacher training(s), {n('student', 'built')} student training(s), "
        f"{n('export', 'built')} export(s), {n('quantize', 'built')} quantization(s), "
        f"{n('benchmark', 'built')} benchmark(s)"
    )
    reused = sum(c["reused"] for c in counts.values())
    return (
        f"{trials} trials; stages run: {built}; stage results found in the cache from earlier searches "
        f"or sessions: {reused}"
    )


def _require_files(trial: dict) -> None:
    for key in ("model", "teacher", "student", "fp32_onnx", "benchmark"):
        if not Path(trial["artifacts"][key]).is_file():
            raise ArtifactError(
                f"trial {trial['id'][:8]}: {trial['artifacts'][key]} is gone from the stage cache; "
                "delete the trial's row or start a new search (it rebuilds what is missing)"
            )


def _lineage(trial: dict, candidate: Candidate) -> dict:
    """Where the chosen artifact came from: the hashes of every stage's output and the settings between."""
    config = candidate.config
    return {
        "teacher": {"model": config.teacher.model, "sha256": sha256_file(trial["artifacts"]["teacher"])},
        "student": {
            "model": config.student.model,
            "sha256": sha256_file(trial["artifacts"]["student"]),
            "temperature": config.student.temperature,
            "alpha": config.student.alpha,
            "epochs": config.student.epochs,
        },
        "fp32_onnx_sha256": sha256_file(trial["artifacts"]["fp32_onnx"]),
        "quantization": (
            candidate.quant_config.describe()
            | {"reduce_range_reason": candidate.reduce_range_reason, "recipe": trial["metrics"].get("quant_recipe")}
            if candidate.quant_config
            else None
        ),
        "stage_keys": trial["artifacts"]["stage_keys"],
    }


def _best_manifest(model: Path, sha: str, trial: dict, candidate: Candidate, reason: str) -> dict:
    """best/manifest.json; the gate reads it, so its keys are the search folder's format: keep them."""
    bench = json.loads(Path(trial["artifacts"]["benchmark"]).read_text())
    prepared = prepared_data(candidate.config)
    return {
        "schema_version": SEARCH_SCHEMA,
        "kind": trial["metrics"]["kind"],
        "path": "model.onnx",
        "sha256": sha,
        "size_bytes": model.stat().st_size,
        "trial": trial["id"],
        "params": trial["params"],
        "chosen_because": reason,
        "seed": candidate.config.seed,
        "config": candidate.config.model_dump(mode="json"),
        "dataset": {
            **prepared.data.describe(),
            "splits": prepared.splits.describe(),
            "normalization": prepared.norm.describe(),
            "input_name": "input",
        },
        "lineage": _lineage(trial, candidate),
        "metrics": trial["metrics"],
        "latency": {"settings": bench["settings"], "stats": bench["stats"], "environment": bench["environment"]},
        "versions": package_versions(),
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _swap_in(staging: Path, best: Path) -> None:
    """Replace ``best`` with ``staging`` whole, so best/ never holds a mix of two choices."""
    old = best.parent / ".best-old"
    shutil.rmtree(old, ignore_errors=True)  # left by a process killed mid-swap
    if best.exists():
        os.replace(best, old)
    os.replace(staging, best)
    shutil.rmtree(old, ignore_errors=True)


def _write_best(folder: Path, trial: dict, candidate: Candidate, reason: str) -> dict:
    """best/model.onnx and best/manifest.json, swapped in whole (a resumed search may replace them)."""
    _require_files(trial)
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=".best-partial-"))
    try:
        model = staging / "model.onnx"
        shutil.copyfile(trial["artifacts"]["model"], model)
        sha = sha256_file(model)
        if sha != trial["artifacts"]["model_sha256"]:
            raise ArtifactError(f"{trial['artifacts']['model']} changed since its trial was recorded")
        manifest = check_manifest(
            _best_manifest(model, sha, trial, candidate, reason), str(folder / "best" / "manifest.json")
        )
        atomic_write_json(staging / "manifest.json", manifest)
        _swap_in(staging, folder / "best")
        return manifest
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


class _Choice(NamedTuple):
    front: list[str]
    chosen: str | None
    reason: str


def _judge(trials: list[dict], by_id: dict[str, Candidate], selection: dict, store: TrialStore) -> _Choice:
    """Mark each trial's place (Pareto, chosen, violations); the front, the choice and its reason."""
    front = pareto_front(trials, selection["latency_metric"])
    chosen, reason = choose(trials, selection)
    _measure_test_accuracy(trials, set(front) | ({chosen} if chosen else set()), by_id, store)
    for trial in trials:
        trial["pareto"] = trial["id"] in front
        trial["chosen"] = trial["id"] == chosen
        trial["violations"] = violations(trial, selection, trials) if trial["status"] == "ok" else []
    return _Choice(front, chosen, reason)


def _summary(
    folder: Path, store: TrialStore, definition, trials: list[dict], choice: _Choice, candidates: int, expansion: dict
) -> dict:
    """manifest.json's content up to the run's facts (best and gate are added once they exist)."""
    counts = store.stage_counts()
    return {
        "schema_version": SEARCH_SCHEMA,
        "folder": str(folder),
        "source": definition.source,
        "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "candidates": candidates,
        "trials_recorded": len(trials),
        "status_counts": {s: sum(t["status"] == s for t in trials) for s in ("ok", "failed", "pruned")},
        # complete: every candidate of the space has a trial (not so when --max-trials or the time limit cut it)
        "complete": len(trials) == expansion["candidates"],
        "expansion": expansion,
        "selection": definition.settings.selection(),
        "chosen": choice.chosen,
        "chosen_because": choice.reason,
        "pareto": choice.front,
        "stage_counts": counts,
        "stage_summary": _stage_line(counts, candidates),
    }


def _pareto_json(trials: list[dict], selection: dict, chosen: str | None, reason: str) -> dict:
    metric = selection["latency_metric"]
    return {
        "objective": {"maximize": "val_accuracy", "minimize": f"latency {metric}_ms"},
        "selection": selection,
        "front": [
            {
                "id": t["id"],
                "params": t["params"],
                "val_accuracy": t["metrics"]["val_accuracy"],
                "test_accuracy": t["metrics"].get("test_accuracy"),
                f"{metric}_ms": t["metrics"]["latency"][f"{metric}_ms"],
            }
            for t in trials
            if t["pareto"]
        ],
        "chosen": chosen,
        "chosen_because": reason,
    }


def _write_tables_and_reports(folder: Path, summary: dict, trials: list[dict]) -> None:
    selection = summary["selection"]
    metric = selection["latency_metric"]
    atomic_write_json(folder / "trials.json", trials)
    atomic_write_text(folder / "trials.csv", trials_csv(trials, metric))
    atomic_write_json(
        folder / "pareto.json", _pareto_json(trials, selection, summary["chosen"], summary["chosen_because"])
    )
    plot_pareto(folder / "pareto.png", trials, metric, selection.get("latency_budget_ms"))
    atomic_write_text(folder / "report.md", render_markdown(summary, trials))
    atomic_write_text(folder / "report.html", render_html(summary, trials, folder / "pareto.png"))


def finish_search(
    folder: Path,
    store: TrialStore,
    definition,
    candidates: list[Candidate],
    expansion: dict,
    run_info: dict,
    gate=None,
) -> tuple[Path, dict]:
    """``gate(folder, trials, chosen)``, when given, judges best/ and its verdict goes into the summary."""
    by_id = {c.id: c for c in candidates}
    trials = [t for t in store.trials() if t["id"] in by_id]
    choice = _judge(trials, by_id, definition.settings.selection(), store)
    summary = _summary(folder, store, definition, trials, choice, len(candidates), expansion)
    summary["run"] = run_info
    summary["versions"] = package_versions()
    chosen = choice.chosen
    if chosen:
        best = _write_best(folder, next(t for t in trials if t["id"] == chosen), by_id[chosen], choice.reason)
        summary["best"] = {"path": "best/model.onnx", "sha256": best["sha256"], "metrics": best["metrics"]}
    _write_tables_and_reports(folder, summary, trials)
    if gate is not None:
        summary["gate"] = gate(folder, trials, chosen)
    atomic_write_json(folder / "manifest.json", summary)  # last: a search folder is complete once it exists
    return folder, summary
