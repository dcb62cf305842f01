"""Whether an int8 model is worth shipping: faithful (the guard) and faster than its fp32 source on the
runtime it ships with. Exit 0 means "ship this": an int8 model that runs slower than fp32 is no answer
(a paddle2onnx detector's dynamic+fallback recipe ran at 2.6x fp32's p50 and used to exit 0 with a
warning).

When the int8 model does not ship, the user still needs an answer, so the options a user could ship
instead are measured side by side on the same input: fp32 on every installed runtime and precision
(OpenVINO at f32 and at its CPU default, bf16 where the CPU has it), and the int8 file on the other
runtime. Each is judged against onnxruntime's fp32 outputs with the same tolerance; the fastest
faithful one is named.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeport.benchmarks import BenchSettings, measure_interleaved
from edgeport.benchmarks.openvino_runtime import openvino_version
from edgeport.benchmarks.records import ONNXRUNTIME, RuntimeChoice
from edgeport.benchmarks.session import create_session
from edgeport.core.bench_defaults import PAYS_BELOW
from edgeport.core.progress import SILENT, Progress
from edgeport.data.feeds import BATCH_FIRST, first_feed, model_layout
from edgeport.quantize.guard.judge import GuardReport
from edgeport.quantize.inputs.run import fixed_batch, ort_session, run_all_outputs

# Only whether int8 beats fp32 at all is asked, and which option is fastest: short, interleaved, batch 1.
CHECK = BenchSettings(batch=1, threads=1, warmup=10, iterations=100, rounds=5)
# The options a user could ship instead (up to five models, OpenVINO compiling each afresh every round): which
# is fastest by a clear margin, not a release figure, so fewer rounds and a shorter round.
OPTIONS = BenchSettings(batch=1, threads=1, warmup=5, iterations=60, rounds=3)
OPTIONS_ROUND_SECONDS = 0.5


OutputJudge = Callable[[dict[str, np.ndarray]], GuardReport]  # outputs on the validation inputs -> verdict


@dataclass(frozen=True)
class Option:
    """One thing a user could ship: a model file ("fp32" or "int8") on a runtime."""

    model: str
    runtime: RuntimeChoice

    @property
    def label(self) -> str:
        return f"{self.model} on {self.runtime.label()}"


@dataclass
class Measured:
    option: Option
    p50_ms: float
    faithful: bool
    verdict: str  # the guard's line for this option ("reference" for fp32 on onnxruntime itself)

    def describe(self, fp32_p50: float) -> dict:
        return {
            "option": self.option.label,
            "model": self.option.model,
            "runtime": self.option.runtime.label(),
            "p50_ms": self.p50_ms,
            "p50_over_fp32": round(self.p50_ms / fp32_p50, 4) if fp32_p50 else None,
            "faithful": self.faithful,
            "verdict": self.verdict,
        }


@dataclass
class Payoff:
    """The speed verdict: int8 against fp32 on ``runtime`` (both p50 at batch 1, one thread, interleaved),
    and, when int8 does not ship, every option measured and the fastest faithful one."""

    runtime: RuntimeChoice
    fp32_p50_ms: float | None
    int8_p50_ms: float | None
    faithful: bool  # the int8 model's guard verdict
    alternatives: list[Measured] = field(default_factory=list)
    options_fp32_p50_ms: float | None = None  # fp32 on ``runtime`` in the alternatives' own measurement
    seconds: float = 0.0

    @property
    def ratio(self) -> float | None:
        if not self.fp32_p50_ms or not self.int8_p50_ms:
            return None
        return self.int8_p50_ms / self.fp32_p50_ms

    @property
    def faster(self) -> bool:
        return self.ratio is not None and self.ratio <= PAYS_BELOW

    @property
    def ships(self) -> bool:
        return self.faithful and self.faster

    def fastest(self) -> Measured | None:
        faithful = [m for m in self.alternatives if m.faithful]
        return min(faithful, key=lambda m: m.p50_ms, default=None)

    def line(self) -> str:
        """One line: why the int8 model does not ship, and what to ship instead ("" when it ships)."""
        if self.ships:
            return ""
        runtime = self.runtime.label()
        why = (
            f"int8 ran at {self.ratio:.2f}x fp32's p50 on {runtime} (batch 1, one thread; it pays from "
            f"{PAYS_BELOW:.2f}x): it does not pay"
            if self.faithful and self.ratio is not None
            else "no faithful int8 model"
        )
        best = self.fastest()
        if best is None:
            return f"{why}; no faithful option was measured"
        if best.option == Option("fp32", self.runtime):
            return f"{why}; keep the fp32 model on {runtime}: the fastest faithful option measured"
        base = self.options_fp32_p50_ms or best.p50_ms
        return (
            f"{why}; fastest faithful option measured: {best.option.label} at {best.p50_ms / base:.2f}x "
            f"fp32 on {runtime}"
        )

    def describe(self) -> dict:
        base = self.options_fp32_p50_ms or 0.0
        best = self.fastest()
        return {
            "runtime": self.runtime.label(),
            "settings": {"batch": CHECK.batch, "threads": CHECK.threads, "iterations": CHECK.iterations},
            "fp32_p50_ms": self.fp32_p50_ms,
            "int8_p50_ms": self.int8_p50_ms,
            "int8_over_fp32": round(self.ratio, 4) if self.ratio is not None else None,
            "faithful": self.faithful,
            "faster": self.faster,
            "ships": self.ships,
            "alternatives": [m.describe(base) for m in self.alternatives],
            "fastest_faithful": best.option.label if best else None,
            "seconds": round(self.seconds, 3),
        }


# A measured round of one model takes at most this long: a 50 ms model would otherwise spend 15 s per round
# on 300 iterations, and auto measures several models over several rounds.
ROUND_SECONDS = 1.0


def budgeted(
    settings: BenchSettings, fp32_path: Path, sample: dict[str, np.ndarray], seconds: float = ROUND_SECONDS
) -> BenchSettings:
    """``settings`` with fewer iterations (at least 20) when the fp32 model is slow enough that a round would
    last longer than ``seconds``: the ordering asked for is clear long before, on models that slow."""
    session = ort_session(fp32_path)
    session.run(None, sample)  # the first run pays for allocations
    times = []
    for _ in range(3):
        started = time.perf_counter()
        session.run(None, sample)
        times.append(time.perf_counter() - started)
    per_run = sorted(times)[1]
    iterations = max(20, min(settings.iterations, int(seconds / max(per_run, 1e-6))))
    if iterations >= settings.iterations:
        return settings
    return dataclasses.replace(settings, iterations=iterations, warmup=min(settings.warmup, iterations))


def one_run(fp32_path: Path, validation: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What one measured run is fed: one sample in either .npz layout, or a whole batch where the model
    fixes its batch size (the first samples, repeated when there are fewer)."""
    layout = model_layout(fp32_path, validation)
    fixed = fixed_batch(ort_session(fp32_path)) if layout == BATCH_FIRST else None
    if not fixed or fixed == 1:
        return first_feed(validation, layout)
    take = np.resize(np.arange(min(fixed, len(next(iter(validation.values()))))), fixed)
    return {name: np.ascontiguousarray(array[take]) for name, array in validation.items()}


def options_to_compare(runtime: RuntimeChoice, int8_faithful: bool) -> list[Option]:
    """What a user could ship instead of the int8 model on ``runtime``: fp32 on ``runtime`` and on every
    other installed runtime and precision (OpenVINO at f32 and at its CPU default), and (when faithful)
    the int8 file on the other runtimes at their default."""
    fp32_runtimes = [runtime, ONNXRUNTIME]
    int8_runtimes = [runtime, ONNXRUNTIME]
    if openvino_version():
        fp32_runtimes += [RuntimeChoice("openvino", "f32"), RuntimeChoice("openvino")]
        int8_runtimes += [RuntimeChoice("openvino")]
    options = [Option("fp32", rt) for rt in dict.fromkeys(fp32_runtimes)]
    if int8_faithful:  # the int8 model on ``runtime`` itself is what does not ship: never its own alternative
        options += [Option("int8", rt) for rt in dict.fromkeys(int8_runtimes) if rt != runtime]
    return options


def _verdict(option: Option, path: Path, inputs: dict[str, np.ndarray], judge_outputs: OutputJudge) -> GuardReport:
    session = create_session(path, CHECK, option.runtime)
    return judge_outputs(run_all_outputs(session, inputs))


def measure_payoff(
    paths: Mapping[str, Path],
    sample: dict[str, np.ndarray],
    validation: dict[str, np.ndarray],
    judge_outputs: OutputJudge,
    guard: GuardReport,
    runtime: RuntimeChoice = ONNXRUNTIME,
    measured: tuple[float, float] | None = None,
    progress: Progress = SILENT,
) -> Payoff:
    """The speed verdict of the int8 model ``paths["int8"]`` (judged ``guard``) against ``paths["fp32"]``.

    ``measured``: (fp32 p50, int8 p50) already measured on ``runtime`` (auto's ranking), else both are
    measured here on ``sample`` (one run's feeds). When the int8 model does not ship, every option of
    ``options_to_compare`` is judged on ``validation`` by ``judge_outputs`` (fp32 on onnxruntime is the
    reference itself) and measured interleaved."""
    started = time.perf_counter()
    payoff = Payoff(runtime, None, None, guard.within_tolerance)
    if guard.within_tolerance:
        if measured is None:
            own = {"fp32": paths["fp32"], "int8": paths["int8"]}
            settings = budgeted(CHECK, paths["fp32"], sample)
            with progress.task("int8 against fp32", total=CHECK.rounds) as advance:
                results = measure_interleaved(own, settings, sample, advance, runtimes=dict.fromkeys(own, runtime))
            measured = (results["fp32"].stats["p50_ms"], results["int8"].stats["p50_ms"])
        payoff.fp32_p50_ms, payoff.int8_p50_ms = measured
    if not payoff.ships:
        _alternatives(payoff, paths, sample, validation, judge_outputs, progress)
    payoff.seconds = time.perf_counter() - started
    return payoff


def _alternatives(
    payoff: Payoff,
    paths: Mapping[str, Path],
    sample: dict[str, np.ndarray],
    validation: dict[str, np.ndarray],
    judge_outputs: OutputJudge,
    progress: Progress,
) -> None:
    options = options_to_compare(payoff.runtime, payoff.faithful)
    verdicts: dict[Option, tuple[bool, str]] = {}
    for option in options:
        if option == Option("fp32", ONNXRUNTIME):
            verdicts[option] = (True, "the fp32 reference")
        else:
            try:
                report = _verdict(option, paths[option.model], validation, judge_outputs)
                verdicts[option] = (report.within_tolerance, report.line())
            except Exception as exc:  # a runtime that cannot run this file: not an option, said why
                verdicts[option] = (False, f"does not run: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
    runnable = [o for o in options if not verdicts[o][1].startswith("does not run")]
    labels = {o.label: o for o in runnable}
    with progress.task("options against fp32", total=OPTIONS.rounds) as advance:
        results = measure_interleaved(
            {label: paths[o.model] for label, o in labels.items()},
            budgeted(OPTIONS, paths["fp32"], sample, OPTIONS_ROUND_SECONDS),
            sample,
            advance,
            runtimes={label: o.runtime for label, o in labels.items()},
        )
    for option in options:
        faithful, verdict = verdicts[option]
        p50 = results[option.label].stats["p50_ms"] if option.label in results else float("inf")
        payoff.alternatives.append(Measured(option, p50, faithful, verdict))
    fp32_here = results.get(Option("fp32", payoff.runtime).label)
    if fp32_here is not None:  # the options' ratios are read against fp32 of this same measurement
        payoff.options_fp32_p50_ms = fp32_here.stats["p50_ms"]
        if payoff.fp32_p50_ms is None:
            payoff.fp32_p50_ms = payoff.options_fp32_p50_ms


__all__ = [
    "CHECK",
    "budgeted",
    "Measured",
    "Option",
    "OutputJudge",
    "Payoff",
    "measure_payoff",
    "one_run",
    "options_to_compare",
]
