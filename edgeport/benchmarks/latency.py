"""ONNX Runtime latency on this machine: warm-up, fixed threads, exactly the runs asked for, in rounds that
alternate between the models measured, raw samples kept.

The records (BenchSettings, BenchResult) live in records.py and the sessions and their inputs in
session.py; both are re-exported here, where callers have always imported them from.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from edgeport.benchmarks.fingerprint import environment_fingerprint
from edgeport.benchmarks.openvino_runtime import compiled_models_cached
from edgeport.benchmarks.records import PROVIDERS, SCHEMA_VERSION, BenchResult, BenchSettings, RuntimeChoice
from edgeport.benchmarks.remote_runner import peak_rss_mb, timed_runs
from edgeport.benchmarks.rounds import split_counts
from edgeport.benchmarks.session import (
    Feeds,
    Shapes,
    check_feeds,
    create_session,
    model_feeds,
    resolve_provider,
    synthesize_inputs,
)
from edgeport.core.artifacts import sha256_file
from edgeport.errors import BenchmarkError

__all__ = [
    "PROVIDERS",
    "SCHEMA_VERSION",
    "BenchResult",
    "BenchSettings",
    "check_feeds",
    "create_session",
    "measure_interleaved",
    "measure_latency",
    "resolve_provider",
    "synthesize_inputs",
]

ModelPath = str | os.PathLike[str]
# After a round: the samples so far of the models still measured (by label) and the runs of each round ->
# the labels to measure no more (see measure_interleaved).
StopEarly = Callable[[Mapping[str, list[float]], list[int]], Iterable[str]]
_DEFAULT_SETTINGS = BenchSettings()  # frozen: one instance serves every call


def _warm_up(session: Any, feeds: Feeds, settings: BenchSettings, share: float) -> None:
    """Untimed runs: ``share`` of --warmup's count, or of its seconds when given in seconds."""
    if settings.warmup_s:
        until = time.perf_counter() + settings.warmup_s * share
        while time.perf_counter() < until:
            timed_runs(session, feeds, 10)
    else:
        timed_runs(session, feeds, math.ceil(settings.warmup * share))


def _round_counts(settings: BenchSettings) -> Iterator[int]:
    """Runs per round, decided as the rounds go. A fixed count is honoured exactly: fewer runs than rounds
    make that many rounds of one run, else rounds at most one run apart. --duration repeats equal rounds
    until the time, counted from the first round on, is up."""
    if not settings.duration_s:
        yield from split_counts(settings.iterations, settings.rounds)
        return
    deadline = time.perf_counter() + settings.duration_s
    per_round = max(1, settings.iterations // settings.rounds)
    while time.perf_counter() < deadline:
        yield per_round


def _renew_sessions(
    sessions: dict[str, Any],
    order: list[str],
    models: Mapping[str, ModelPath],
    feeds: dict[str, Feeds],
    settings: BenchSettings,
    runtimes: Mapping[str, RuntimeChoice],
) -> None:
    """A fresh, warmed-up session per model for the next round (see measure_interleaved)."""
    for label in order:
        sessions[label] = None  # release the old session's memory before the new one takes its own
        sessions[label] = create_session(models[label], settings, runtimes[label])
        timed_runs(sessions[label], feeds[label], 1)  # the first run of a session allocates
        _warm_up(sessions[label], feeds[label], settings, 1.0 / settings.rounds)


def _results(
    models: Mapping[str, ModelPath],
    settings: BenchSettings,
    samples: dict[str, list[float]],
    timings: dict[str, tuple[float, float]],
    recorded: Mapping[str, dict[str, Any]],
    runtimes: Mapping[str, RuntimeChoice],
    sessions: dict[str, Any],
) -> dict[str, BenchResult]:
    """One BenchResult per model; ``timings``: (session creation, first inference) ms; ``recorded``: how
    the measurement went, stored beside the settings, with each model's runtime (and the precision
    OpenVINO really used: its CPU default is bf16 where the CPU has it)."""
    environment = environment_fingerprint()
    rss = peak_rss_mb()

    def runtime_of(label: str) -> dict[str, Any]:
        used = getattr(sessions[label], "precision", None)
        choice = runtimes[label]
        return {"runtime": choice.name, "precision": choice.precision, "precision_used": used}

    return {
        label: BenchResult(
            str(path),
            sha256_file(path),
            {**settings.to_dict(), **recorded[label], **runtime_of(label)},
            environment,
            samples[label],
            session_create_ms=timings[label][0],
            first_inference_ms=timings[label][1],
            peak_rss_mb=rss,
        )
        for label, path in models.items()
    }


def measure_interleaved(
    models: Mapping[str, ModelPath],
    settings: BenchSettings,
    inputs: Feeds | None = None,
    on_round: Callable[[int], None] = lambda n: None,
    shapes: Shapes | None = None,
    runtimes: Mapping[str, RuntimeChoice] | None = None,
    refused: dict[str, str] | None = None,
    stop_early: StopEarly | None = None,
) -> dict[str, BenchResult]:
    """Measure several models in one process, alternating between them round by round.

    Interleaving spreads slow drifts of the machine (frequency, other load) over all
    models instead of letting them land on whichever model happened to run last.
    ``runtimes``: label -> the runtime that model runs on (default: the settings' runtime), so the same
    file can be compared across runtimes. ``refused``: where given, a model that its runtime cannot load
    or run once is left out (no result) and why goes here, by label, instead of failing the measurement:
    a choice among options (OpenVINO cannot load Silero VAD) learns so from the runs it makes anyway.
    ``stop_early``: where given, called after each round but the last with the samples so far of the models
    still measured (by label) and the runs of each of their rounds; the labels it returns are measured no
    more, and their results hold the rounds they ran (``round_sizes`` is each result's own).
    """
    runtimes = {label: (runtimes or {}).get(label, settings.runtime) for label in models}
    sessions: dict[str, Any] = {}
    feeds: dict[str, Feeds] = {}
    timings: dict[str, tuple[float, float]] = {}
    for label, path in models.items():
        try:
            _open(label, path, settings, runtimes[label], (sessions, feeds, timings), inputs, shapes)
        except Exception as exc:
            if refused is None:
                raise
            refused[label] = one_line(exc)
            sessions.pop(label, None)
    models = {label: path for label, path in models.items() if label in sessions}
    samples: dict[str, list[float]] = {label: [] for label in models}
    sizes_run: dict[str, list[int]] = {label: [] for label in models}
    measuring = list(sessions)  # those still measured: stop_early may end some before the last round
    # Two sessions of the very same file can differ by 5-10% for as long as they live (where weights and
    # buffers landed in memory): `bench A --vs A-copy` on a 15 us model gave p50 ratios from 0.88 to 1.11
    # across runs, each run consistent over all its rounds, so no resampling of one session pair can see
    # it (perf/bench_aa.py: the 95% interval contained 1.0 in 3 of 40 runs with one session per model, in
    # 38 of 40 with fresh sessions). A comparison on the CPU therefore takes fresh sessions every round,
    # each warmed up with its share of --warmup: the placement then varies between rounds, which the round
    # statistics account for. Not for other providers, where building a session can take minutes (TensorRT).
    fresh_sessions = len(models) > 1 and resolve_provider(settings.provider) == PROVIDERS["cpu"]
    # A fixed count's rounds are known ahead (stop_early is asked only while another round follows);
    # --duration's are decided as they go, and run to the end.
    planned = list(_round_counts(settings)) if models and not settings.duration_s else []
    counts = planned or (_round_counts(settings) if models else iter(()))
    try:
        for label in sessions:
            _warm_up(sessions[label], feeds[label], settings, 1.0)
        with compiled_models_cached():  # the first sessions above compiled afresh: their creation time is honest
            for round_index, count in enumerate(counts):
                # Alternate the order (A B, B A, ...) so that running second in a round favours no model.
                order = measuring if round_index % 2 == 0 else measuring[::-1]
                if fresh_sessions and round_index:
                    _renew_sessions(sessions, order, models, feeds, settings, runtimes)
                for label in order:
                    samples[label] += timed_runs(sessions[label], feeds[label], count)
                    sizes_run[label].append(count)
                on_round(1)
                if stop_early is not None and measuring and round_index + 1 < len(planned):
                    stopped = set(stop_early({label: samples[label] for label in measuring}, sizes_run[measuring[0]]))
                    measuring = [label for label in measuring if label not in stopped]
    except BenchmarkError:
        raise
    except Exception as exc:
        raise BenchmarkError(f"inference failed while benchmarking ({exc})") from exc
    recorded = {
        label: {
            "rounds_run": len(sizes_run[label]),
            "round_sizes": sizes_run[label],  # where the round statistics cut the samples
            "stopped_early": label not in measuring,  # by stop_early: its rounds are the others' first ones
            "fresh_session_per_round": fresh_sessions,
            "inputs": "given" if inputs is not None else "synthetic",
        }
        for label in models
    }
    return _results(models, settings, samples, timings, recorded, runtimes, sessions)


def one_line(exc: BaseException) -> str:
    """An exception as one line: its type and its message, whitespace collapsed, at most 200 characters."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"


def _open(
    label: str,
    path: ModelPath,
    settings: BenchSettings,
    runtime: RuntimeChoice,
    into: tuple[dict[str, Any], dict[str, Feeds], dict[str, tuple[float, float]]],
    inputs: Feeds | None,
    shapes: Shapes | None,
) -> None:
    """``label``'s first session (its creation timed: a cold start, before any compiled model is cached),
    its feeds and its first, timed run, into ``into`` (sessions, feeds, timings)."""
    sessions, feeds, timings = into
    start = time.perf_counter()
    sessions[label] = create_session(path, settings, runtime)
    created_ms = (time.perf_counter() - start) * 1e3
    feeds[label] = model_feeds(sessions[label], path, settings, inputs, shapes)
    try:
        timings[label] = (created_ms, timed_runs(sessions[label], feeds[label], 1)[0])
    except Exception as exc:  # the runtime's own exception types
        raise BenchmarkError(f"inference failed while benchmarking ({exc})") from exc


def measure_latency(
    path: ModelPath, settings: BenchSettings = _DEFAULT_SETTINGS, inputs: Feeds | None = None
) -> BenchResult:
    return measure_interleaved({"model": path}, settings, inputs)["model"]
