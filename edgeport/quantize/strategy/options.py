"""The options a user could ship instead of (or beside) an int8 model: fp32 on every installed runtime and
precision, the int8 file on every installed runtime; each judged as its runtime runs it against
onnxruntime's fp32 outputs with the request's tolerance, and all timed side by side."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeport.benchmarks import BenchSettings, measure_interleaved
from edgeport.benchmarks.latency import one_line
from edgeport.benchmarks.openvino_runtime import fp32_openvino_choices, openvino_version
from edgeport.benchmarks.records import ONNXRUNTIME, BenchResult, RuntimeChoice
from edgeport.benchmarks.rounds import round_sizes
from edgeport.benchmarks.session import create_session
from edgeport.benchmarks.speedup import speedup_of
from edgeport.core.progress import Progress
from edgeport.quantize.guard.judge import GuardReport
from edgeport.quantize.inputs.run import run_all_outputs
from edgeport.quantize.strategy.early_stop import stop_when_beaten
from edgeport.quantize.strategy.timing import CHECK, SHIP_CONFIDENCE, budgeted

# The options a user could ship instead (up to five models, OpenVINO compiling each afresh every round): which
# is fastest by a clear margin, not a release figure, so fewer rounds and shorter runs per model.
OPTIONS = BenchSettings(batch=1, threads=1, warmup=5, iterations=60, rounds=3)
OPTIONS_MODEL_SECONDS = 0.5


_DOES_NOT_RUN = "does not run: "

OutputJudge = Callable[[dict[str, np.ndarray]], GuardReport]  # outputs on the validation inputs -> verdict


@dataclass(frozen=True)
class Option:
    """One thing a user could ship: a model file ("fp32" or "int8") on a runtime."""

    model: str
    runtime: RuntimeChoice

    @property
    def label(self) -> str:
        return f"{self.model} on {self.runtime.label()}"


Known = dict[Option, tuple[bool | None, str]]  # verdicts: (faithful, the guard's line); None: not judged, why


@dataclass
class Measured:
    option: Option
    p50_ms: float
    faithful: bool | None  # None: not judged (judge_as_needed: slower than a faithful option)
    verdict: str  # the guard's line for this option ("reference" for fp32 on onnxruntime itself), or why not
    rounds: int | None = None  # rounds measured: fewer than the others' where it was clearly slower early

    def describe(self, fp32_p50: float) -> dict:
        ran = math.isfinite(self.p50_ms)  # an option that does not run has no time (JSON has no Infinity)
        return {
            "option": self.option.label,
            "model": self.option.model,
            "runtime": self.option.runtime.label(),
            "p50_ms": self.p50_ms if ran else None,
            "p50_over_fp32": round(self.p50_ms / fp32_p50, 4) if fp32_p50 and ran else None,
            "faithful": self.faithful,
            "verdict": self.verdict,
            "rounds": self.rounds,
        }


def options_to_compare(
    runtime: RuntimeChoice, int8_faithful: bool, with_own: bool = False, others: tuple[str, ...] = ()
) -> list[Option]:
    """What a user could ship instead of the int8 model on ``runtime``: fp32 on ``runtime`` and on every
    other installed runtime and precision (OpenVINO at f32 and at its CPU default), and (when faithful)
    the int8 file on the other runtimes at their default. ``with_own``: the int8 model on ``runtime`` is
    measured beside them too (it ships, or the runtime is being chosen: every runtime in one measurement).
    ``others``: more faithful int8 files (e.g. "int8 (nncf)", another quantizer's), on every runtime."""
    fp32_runtimes = [runtime, ONNXRUNTIME]
    int8_runtimes = [runtime, ONNXRUNTIME]
    if openvino_version():
        fp32_runtimes += fp32_openvino_choices()
        int8_runtimes += [RuntimeChoice("openvino")]
    options = [Option("fp32", rt) for rt in dict.fromkeys(fp32_runtimes)]
    if int8_faithful:  # the int8 model on ``runtime`` itself, when it does not ship, is never its own alternative
        options += [Option("int8", rt) for rt in dict.fromkeys(int8_runtimes) if with_own or rt != runtime]
        options += [Option(model, rt) for model in others for rt in dict.fromkeys(int8_runtimes)]
    return options


def _verdict(option: Option, path: Path, inputs: dict[str, np.ndarray], judge_outputs: OutputJudge) -> GuardReport:
    session = create_session(path, CHECK, option.runtime)
    return judge_outputs(run_all_outputs(session, inputs))


def _not_running(exc: Exception) -> str:
    return _DOES_NOT_RUN + one_line(exc)


def judge_as_needed(
    options: list[Option],
    results: Mapping[str, BenchResult],
    verdicts: Known,
    judge: Callable[[Option], tuple[bool, str]],
) -> None:
    """Judge the measured ``options`` (``results`` by label) into ``verdicts``, fastest first within each kind
    (fp32 files, int8 files), only while a verdict can still matter, else None and why. fp32 is the baseline
    and the option named: only the fastest faithful one counts, so a slower one is not judged. int8 ships by
    the tie rule (benchmarks/speedup.fastest_beyond_noise): only one that the fastest faithful int8 beats by
    the ship rule can never ship. Judging every option cost MiniLM about 5 s of its runtime choice, running
    the validation set through OpenVINO for files that ran at 1.1-1.5x fp32 (AMD EPYC Zen 3)."""
    for fp32 in (True, False):
        kind = sorted(
            (o for o in options if o.label in results and (o.model == "fp32") is fp32),
            key=lambda o: results[o.label].stats["p50_ms"],
        )
        best: Option | None = None  # the fastest faithful option of this kind so far
        for option in kind:
            if option not in verdicts:
                beaten = _beaten(best, option, results, clearly=not fp32)
                verdicts[option] = (None, f"not judged: {beaten}") if beaten else judge(option)
            if best is None and verdicts[option][0]:
                best = option


def _beaten(best: Option | None, option: Option, results: Mapping[str, BenchResult], clearly: bool) -> str | None:
    """How ``best`` (faithful) beat ``option`` in ``results``: by the ship rule where ``clearly``, else by its
    p50 alone; None where it did not."""
    if best is None:
        return None
    speedup = speedup_of(results[best.label], results[option.label], confidence=SHIP_CONFIDENCE)
    beat = speedup.pays if clearly else speedup.ratio < 1.0
    return f"{best.label} is faithful and ran at {speedup.text()} its p50" if beat else None


def _rounds(result: BenchResult) -> int:
    return len(round_sizes(result.settings, len(result.samples_ms)))


@dataclass(frozen=True)
class Candidates:
    """What every option is made of: the fp32 and int8 files (``paths``), one run's feeds to time them on
    (``sample``), the validation inputs they are judged on and the judge (fp32 on onnxruntime's outputs as
    reference, the request's tolerance)."""

    paths: Mapping[str, Path]
    sample: dict[str, np.ndarray]
    validation: dict[str, np.ndarray]
    judge_outputs: OutputJudge
    judged: Mapping[Option, tuple[bool, str]] = field(default_factory=dict)  # verdicts given already

    def others(self) -> tuple[str, ...]:
        """The int8 files beside the one weighed by default ("int8"): more faithful recipes' files."""
        return tuple(name for name in self.paths if name not in ("fp32", "int8"))


def judge_and_measure(
    options: list[Option],
    candidates: Candidates,
    progress: Progress,
    settings: BenchSettings = OPTIONS,
    known: Mapping[Option, tuple[bool | None, str]] | None = None,
    keep: Collection[Option] = (),
) -> tuple[list[Measured], dict[str, BenchResult]]:
    """Every option that runs measured side by side on one run's feeds, then judged on the validation inputs
    as its runtime runs it where its verdict can matter (``judge_as_needed``; ``known`` verdicts are used as
    given, fp32 on onnxruntime is the reference itself); an option that does not run is kept with its reason
    and no time, one left unjudged with why and no verdict (``Measured.faithful`` None). An option clearly
    slower than a faithful one of its kind is measured no more (strategy/early_stop.py), except ``keep``."""
    paths, sample = candidates.paths, candidates.sample
    verdicts: Known = {Option("fp32", ONNXRUNTIME): (True, "the fp32 reference"), **candidates.judged, **(known or {})}
    labels = {o.label: o for o in options}
    refused: dict[str, str] = {}  # an option whose runtime cannot load or run the file (OpenVINO, Silero VAD)

    def judge(option: Option) -> tuple[bool, str]:
        try:
            report = _verdict(option, paths[option.model], candidates.validation, candidates.judge_outputs)
        except Exception as exc:  # ran the timed sample, not the validation set: no option either
            return False, _not_running(exc)
        return report.within_tolerance, report.line()

    def faithful(label: str) -> bool:  # judged while measuring where needed: judge_as_needed keeps the verdict
        if labels[label] not in verdicts:
            verdicts[labels[label]] = judge(labels[label])
        return bool(verdicts[labels[label]][0])

    kinds = {label: "fp32" if o.model == "fp32" else "int8" for label, o in labels.items()}
    with progress.task("options against fp32", total=settings.rounds) as advance:
        results = measure_interleaved(
            {label: paths[o.model] for label, o in labels.items()},
            budgeted(settings, paths["fp32"], sample, OPTIONS_MODEL_SECONDS),
            sample,
            advance,
            runtimes={label: o.runtime for label, o in labels.items()},
            refused=refused,
            stop_early=stop_when_beaten(kinds, faithful, keep={o.label for o in keep}),
        )
    for label, why in refused.items():
        verdicts[labels[label]] = (False, _DOES_NOT_RUN + why)

    judge_as_needed(options, results, verdicts, judge)
    measured = [
        Measured(o, results[o.label].stats["p50_ms"], *verdicts[o], rounds=_rounds(results[o.label]))
        if o.label in results
        else Measured(o, float("inf"), *verdicts[o])
        for o in options
    ]
    return measured, results


__all__ = [
    "OPTIONS",
    "Candidates",
    "Known",
    "Measured",
    "Option",
    "OutputJudge",
    "judge_and_measure",
    "judge_as_needed",
    "options_to_compare",
]
