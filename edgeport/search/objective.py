"""Pareto front over (validation accuracy up, latency down) and the choice of one candidate.

Policies:
- ``max-accuracy`` (default): the most accurate candidate within the latency budget whose accuracy
  is at most ``max_accuracy_drop`` points below its reference (its own fp32 student, or the teacher);
- ``min-latency``: the fastest candidate with accuracy at or above ``accuracy_floor``;
- ``weighted``: the highest ``accuracy - latency_weight * latency_ms``, within the latency budget.
Ties go to the faster, then the earlier candidate. Only validation accuracy is used to choose.
Under ``max-accuracy`` two accuracies tie unless one is higher beyond chance: every feasible candidate
the most accurate one does not beat by an exact McNemar test on their per-sample validation outcomes
(core/paired.py) ties with it, and the fastest of them is chosen; one image more of 270 right is no
reason to ship a model twice as slow.

An int8 trial is no answer when it is not faster than its own fp32 twin (the same exported student,
measured in the same search without quantization): it must be at most ``PAYS_BELOW`` of the twin's
latency, as ``edgeport quantize`` and ``edgeport run`` ask of an int8 model.
"""

from __future__ import annotations

from edgeport.core.bench_defaults import PAYS_BELOW
from edgeport.core.paired import ALPHA, compare_paired, unpack_outcomes


def latency_of(trial: dict, metric: str) -> float:
    return trial["metrics"]["latency"][f"{metric}_ms"]


def pareto_front(trials: list[dict], metric: str) -> list[str]:
    """Ids of the ok trials no other ok trial beats on both accuracy and latency."""
    ok = [t for t in trials if t["status"] == "ok"]
    front = []
    for trial in ok:
        acc, lat = trial["metrics"]["val_accuracy"], latency_of(trial, metric)
        dominated = any(
            o["metrics"]["val_accuracy"] >= acc
            and latency_of(o, metric) <= lat
            and (o["metrics"]["val_accuracy"] > acc or latency_of(o, metric) < lat)
            for o in ok
        )
        if not dominated:
            front.append(trial["id"])
    return front


def accuracy_drop(trial: dict, reference: str) -> float:
    metrics = trial["metrics"]
    base = metrics["teacher_val_accuracy"] if reference == "teacher" else metrics["fp32_val_accuracy"]
    return base - metrics["val_accuracy"]


def _export_key(trial: dict) -> object:
    return (trial.get("artifacts") or {}).get("stage_keys", {}).get("export")


def _slower_than_its_fp32(trial: dict, trials: list[dict], metric: str) -> str | None:
    """Why an int8 trial does not pay against its fp32 twin (same export stage, measured alike, faithful on its
    runtime: any runtime and precision, as ``edgeport quantize`` weighs int8 against the fastest faithful fp32),
    if it does not."""
    metrics = trial["metrics"]
    if metrics.get("kind") != "onnx-int8" or _export_key(trial) is None:
        return None
    for twin in trials:
        twin_metrics = twin.get("metrics") or {}
        if (
            twin["status"] == "ok"
            and twin_metrics.get("kind") == "onnx-fp32"
            and twin_metrics.get("within_tolerance") is not False  # an unfaithful fp32 (bf16) is no baseline
            and _export_key(twin) == _export_key(trial)
            and (twin_metrics.get("latency_batch"), twin_metrics.get("latency_threads"))
            == (metrics.get("latency_batch"), metrics.get("latency_threads"))
        ):
            ratio = latency_of(trial, metric) / latency_of(twin, metric)
            if ratio > PAYS_BELOW:
                return f"int8 at {ratio:.2f}x the {metric} of its own fp32 (trial {twin['id']}): int8 does not pay"
            upper = _ratio_upper(trial, twin, metric)
            if upper is not None and upper >= 1.0:
                return (
                    f"int8 at {ratio:.2f}x the {metric} of its own fp32 (trial {twin['id']}), but not faster beyond "
                    f"noise: its interval's top over fp32's bottom is {upper:.2f}x"
                )
    return None


def _ratio_upper(trial: dict, twin: dict, metric: str) -> float | None:
    """The largest ratio the two trials' percentile intervals allow (int8's top over fp32's bottom): the two
    were measured in different trials, not interleaved, so no paired interval exists; this bound is the
    conservative one. None where a trial recorded no interval."""
    key = f"{metric}_ci_ms"
    int8_ci, fp32_ci = trial["metrics"]["latency"].get(key), twin["metrics"]["latency"].get(key)
    if not int8_ci or not fp32_ci or not fp32_ci[0]:
        return None
    return float(int8_ci[1]) / float(fp32_ci[0])


def violations(trial: dict, selection: dict, trials: list[dict] | None = None) -> list[str]:
    """Why a trial cannot be chosen under ``selection`` (empty: it is feasible); with ``trials``, also an
    int8 trial no faster than its own fp32 twin among them."""
    metric = selection["latency_metric"]
    why = []
    slower = _slower_than_its_fp32(trial, trials, metric) if trials else None
    if slower:
        why.append(slower)
    budget = selection.get("latency_budget_ms")
    if budget is not None and latency_of(trial, metric) > budget:
        why.append(f"{metric} {latency_of(trial, metric):.4g} ms > budget {budget:g} ms")
    if selection["policy"] == "max-accuracy" and selection.get("max_accuracy_drop") is not None:
        drop = accuracy_drop(trial, selection["accuracy_reference"])
        if drop > selection["max_accuracy_drop"] + 1e-9:
            why.append(
                f"accuracy drop {drop:.2f} points vs {selection['accuracy_reference']} "
                f"> {selection['max_accuracy_drop']:g}"
            )
    if selection["policy"] == "min-latency" and trial["metrics"]["val_accuracy"] < selection["accuracy_floor"]:
        why.append(f"accuracy {trial['metrics']['val_accuracy']:.2f}% < floor {selection['accuracy_floor']:g}%")
    footprint = trial["metrics"].get("footprint")
    for constraint, figure, unit in (
        ("max_peak_rss_mb", "peak_rss_mb", "MB"),
        ("max_cold_start_ms", "cold_start_ms", "ms"),
    ):
        limit = selection.get(constraint)
        if limit is not None and footprint is not None and footprint[f"{figure}_worst"] > limit:
            worst = footprint[f"{figure}_worst"]
            why.append(
                f"{figure} {worst:.4g} {unit} (worst of {footprint['cold_starts']} cold starts) > {limit:g} {unit}"
            )
        elif limit is not None and footprint is None:
            why.append(f"{constraint} set, but the trial's footprint was not measured")
    if trial["metrics"].get("within_tolerance") is False:
        kind = "int8" if trial["metrics"].get("kind") == "onnx-int8" else "fp32"
        on = trial["metrics"].get("judged_on_runtime")
        where = f", as {on['runtime']} runs it" if on else ""
        why.append(f"{kind} outside its tolerance (the guard's verdict on val{where})")
    return why


def score(trial: dict, selection: dict) -> float:
    return trial["metrics"]["val_accuracy"] - selection["latency_weight"] * latency_of(
        trial, selection["latency_metric"]
    )


def _beats(a: dict, b: dict) -> bool:
    """Whether trial ``a`` is more accurate than ``b`` beyond chance on the same validation samples; without
    per-sample outcomes for both (an older cache entry), whether its accuracy is simply higher."""
    a_outcomes, b_outcomes = a["metrics"].get("val_outcomes"), b["metrics"].get("val_outcomes")
    if not a_outcomes or not b_outcomes:
        return a["metrics"]["val_accuracy"] > b["metrics"]["val_accuracy"]
    return compare_paired(unpack_outcomes(a_outcomes), unpack_outcomes(b_outcomes)).a_better


def choose(trials: list[dict], selection: dict) -> tuple[str | None, str]:
    """The chosen trial id (None when nothing is feasible) and a one-line reason."""
    metric = selection["latency_metric"]
    ok = [t for t in trials if t["status"] == "ok"]
    if not ok:
        return None, "no trial finished"
    feasible = [t for t in ok if not violations(t, selection, trials)]
    if not feasible:
        first = "; ".join(violations(ok[0], selection, trials))
        return None, f"none of {len(ok)} finished trials meets the constraints ({first} ...)"
    policy = selection["policy"]
    if policy == "max-accuracy":
        top = min(feasible, key=lambda t: (-t["metrics"]["val_accuracy"], latency_of(t, metric), t["position"]))
        tied = [t for t in feasible if t is top or not _beats(top, t)]
        best = min(tied, key=lambda t: (latency_of(t, metric), -t["metrics"]["val_accuracy"], t["position"]))
        reason = f"highest validation accuracy among {len(feasible)} feasible of {len(ok)} finished trials"
        if best is not top:
            reason = (
                f"fastest of {len(tied)} trials whose validation accuracy is within noise of the highest "
                f"({top['metrics']['val_accuracy']:.2f}%, trial {top['id']}; exact McNemar test, p >= {ALPHA:g}) "
                f"among {len(feasible)} feasible of {len(ok)} finished trials"
            )
    elif policy == "min-latency":
        best = min(feasible, key=lambda t: (latency_of(t, metric), -t["metrics"]["val_accuracy"], t["position"]))
        reason = (
            f"lowest {metric} latency among {len(feasible)} trials with accuracy >= {selection['accuracy_floor']:g}%"
        )
    else:
        best = min(feasible, key=lambda t: (-score(t, selection), latency_of(t, metric), t["position"]))
        reason = (
            f"highest score (accuracy - {selection['latency_weight']:g} x {metric} ms) among "
            f"{len(feasible)} feasible trials"
        )
    return best["id"], reason
