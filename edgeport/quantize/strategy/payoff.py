"""Whether an int8 model is worth shipping: faithful (the guard) and faster than its fp32 source on the
runtime it ships with. Exit 0 means "ship this": an int8 model that runs slower than fp32 is no answer
(a paddle2onnx detector's dynamic+fallback recipe ran at 2.6x fp32's p50 and used to exit 0 with a
warning). Faster means faster by a margin and beyond the measurement's noise (benchmarks/speedup.py).

When the int8 model does not ship, the user still needs an answer, so the options a user could ship
instead are measured side by side on the same input: fp32 on every installed runtime and precision
(OpenVINO at f32 and at its CPU default, bf16 where the CPU has it), and the int8 file on the other
runtime. Each is judged against onnxruntime's fp32 outputs with the same tolerance; the fastest
faithful one is named (the options themselves: options.py; how they are timed: timing.py).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from edgeport.benchmarks import BenchSettings, measure_interleaved
from edgeport.benchmarks.openvino_runtime import openvino_version
from edgeport.benchmarks.records import ONNXRUNTIME, BenchResult, RuntimeChoice
from edgeport.benchmarks.speedup import Speedup
from edgeport.core.bench_defaults import PAYS_BELOW
from edgeport.core.progress import SILENT, Progress
from edgeport.quantize.guard.judge import GuardReport
from edgeport.quantize.strategy.options import (
    OPTIONS,
    OPTIONS_MODEL_SECONDS,
    Candidates,
    Measured,
    Option,
    judge_and_measure,
    options_to_compare,
)
from edgeport.quantize.strategy.timing import (
    CHECK,
    MODEL_SECONDS,
    SHIP_CONFIDENCE,
    budgeted,
    conclusive,
    settled_int8,
)


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
    options_base: str = ""  # the label of that fp32 option (``runtime`` may change when it is chosen)
    seconds: float = 0.0
    ratio_ci: tuple[float, float] | None = None  # the interval of int8's p50 over fp32's (benchmarks/speedup.py)
    # fp32 as int8 is measured against: fp32 on ``runtime`` (None), or, choosing the runtime, the fastest
    # faithful fp32 option on any installed runtime and precision
    baseline: Option | None = None
    # the int8 file weighed: "int8" (the request's), or, choosing the runtime among several faithful files,
    # the fastest one's option name ("int8 (nncf)"): the caller ships that file then
    int8_model: str = "int8"
    extra_measurements: int = 0  # the int8 and fp32 weighed measured again while the verdict was open
    int8_choice_measurements: int = 0  # two faithful int8 options measured again while which is faster was open

    def own(self) -> Measured | None:
        """The weighed int8 file on ``runtime`` as measured among the alternatives."""
        return next((m for m in self.alternatives if m.option == Option(self.int8_model, self.runtime)), None)

    @property
    def speedup(self) -> Speedup | None:
        if not self.fp32_p50_ms or not self.int8_p50_ms:
            return None
        return Speedup(self.fp32_p50_ms, self.int8_p50_ms, self.ratio_ci, SHIP_CONFIDENCE)

    @property
    def ratio(self) -> float | None:
        return self.speedup.ratio if self.speedup else None

    @property
    def faster(self) -> bool:
        return self.speedup is not None and self.speedup.pays

    @property
    def ships(self) -> bool:
        return self.faithful and self.faster

    def fastest(self) -> Measured | None:
        """The fastest faithful option measured; when the runtime was being chosen and no int8 option beat
        the fastest faithful fp32 beyond noise, the fastest faithful fp32 (what to ship instead)."""
        faithful = [m for m in self.alternatives if m.faithful]
        if self.baseline is not None and not self.ships:
            faithful = [m for m in faithful if m.option.model == "fp32"]
        return min(faithful, key=lambda m: m.p50_ms, default=None)

    def faster_than_shipped(self) -> Measured | None:
        """When the int8 model ships: a faithful option that ran clearly faster than it (by the margin,
        p50 in the same measurement), e.g. OpenVINO's bf16 against int8 on onnxruntime; else None."""
        own = self.own()
        best = self.fastest()
        if not self.ships or own is None or best is None or best is own:
            return None
        return best if best.p50_ms <= PAYS_BELOW * own.p50_ms else None

    def line(self) -> str:
        """One line: why the int8 model does not ship, and what to ship instead ("" when it ships)."""
        if self.ships:
            return ""
        runtime = self.runtime.label()
        speedup = self.speedup
        if not self.faithful or speedup is None:
            why = "no faithful int8 model"
        elif self.baseline is None:
            why = (
                f"int8 ran at {speedup.text()} fp32's p50 on {runtime} (batch 1, one thread; {speedup.why_not()}): "
                "it does not pay"
            )
        else:
            weighed = Option(self.int8_model, self.runtime).label
            why = (
                f"{weighed}, the fastest faithful int8, ran at {speedup.text()} the p50 of "
                f"{self.baseline.label}, the fastest faithful fp32 (batch 1, one thread; {speedup.why_not()}): "
                "it does not pay"
            )
        best = self.fastest()
        if best is None:
            return f"{why}; no faithful option was measured"
        if best.option == Option("fp32", self.runtime):
            return f"{why}; keep the fp32 model on {runtime}: the fastest faithful option measured"
        if not self.options_fp32_p50_ms:
            return f"{why}; fastest faithful option measured: {best.option.label}"
        return (
            f"{why}; fastest faithful option measured: {best.option.label} at "
            f"{best.p50_ms / self.options_fp32_p50_ms:.2f}x {self.options_base}"
        )

    def describe(self) -> dict:
        base = self.options_fp32_p50_ms or 0.0
        best = self.fastest()
        own = self.own()
        return {
            "runtime": self.runtime.label(),
            "baseline": (self.baseline or Option("fp32", self.runtime)).label,
            "int8_model": self.int8_model,
            # how the artifact is deployed: the runtime it ships on (precision: that runtime's default), and the
            # guard's verdict as that runtime ran it
            "deploy": {"runtime": self.runtime.name, "precision": self.runtime.precision, "verdict": own.verdict}
            if self.ships and own is not None
            else None,
            "settings": {"batch": CHECK.batch, "threads": CHECK.threads, "iterations": CHECK.iterations},
            "fp32_p50_ms": self.fp32_p50_ms,
            "int8_p50_ms": self.int8_p50_ms,
            "int8_over_fp32": round(self.ratio, 4) if self.ratio is not None else None,
            "int8_over_fp32_ci": [round(v, 4) for v in self.ratio_ci] if self.ratio_ci else None,
            "int8_over_fp32_confidence": round(SHIP_CONFIDENCE, 4),
            "extra_measurements": self.extra_measurements,
            "int8_choice_measurements": self.int8_choice_measurements,
            "pays_below": PAYS_BELOW,
            "faithful": self.faithful,
            "faster": self.faster,
            "ships": self.ships,
            "alternatives": [m.describe(base) for m in self.alternatives],
            "fastest_faithful": best.option.label if best else None,
            "seconds": round(self.seconds, 3),
        }


def measure_payoff(
    candidates: Candidates,
    guard: GuardReport,
    runtime: RuntimeChoice = ONNXRUNTIME,
    measured: Speedup | None = None,
    progress: Progress = SILENT,
    choose_runtime: bool = False,
) -> Payoff:
    """The speed verdict of the int8 model ``paths["int8"]`` (judged ``guard``) against ``paths["fp32"]``.

    ``measured``: int8 against fp32 already measured on ``runtime`` (auto's ranking), else both are
    measured here on ``sample`` (one run's feeds). When the int8 model does not ship, or another runtime is
    installed, every option of ``options_to_compare`` is judged on ``validation`` by ``judge_outputs`` (fp32
    on onnxruntime is the reference itself) and measured interleaved.

    ``choose_runtime`` (with another runtime installed): the int8 file on every installed runtime and fp32 on
    every installed runtime and precision are judged and measured side by side; the fastest faithful int8
    option ships on its runtime when it beats the fastest faithful fp32 option (``Speedup.pays``)."""
    started = time.perf_counter()
    paths = candidates.paths
    payoff = Payoff(runtime, None, None, guard.within_tolerance)
    if choose_runtime and guard.within_tolerance and openvino_version():
        _choose(payoff, candidates, progress, guard)
        payoff.seconds = time.perf_counter() - started
        return payoff
    if guard.within_tolerance:
        if measured is None or measured.open:  # auto's ranking left it open: measured here until it is not
            pair = {"int8": (paths["int8"], runtime), "fp32": (paths["fp32"], runtime)}
            measured, payoff.extra_measurements = _weighed(pair, candidates, progress)
        payoff.fp32_p50_ms, payoff.int8_p50_ms = measured.fp32_p50_ms, measured.int8_p50_ms
        payoff.ratio_ci = measured.ratio_ci
    if not payoff.ships or openvino_version():  # where another runtime is installed, every runtime is shown
        _alternatives(payoff, candidates, progress, guard)
    payoff.seconds = time.perf_counter() - started
    return payoff


def _alternatives(
    payoff: Payoff,
    candidates: Candidates,
    progress: Progress,
    guard: GuardReport,
    settings: BenchSettings = OPTIONS,
    with_own: bool | None = None,
) -> dict[str, BenchResult]:
    """Judge and measure ``options_to_compare`` into ``payoff.alternatives``; returns the measurement.
    ``with_own``: the int8 file on ``payoff.runtime`` is measured too (default: when it ships); the guard
    judged it there already."""
    own = payoff.ships if with_own is None else with_own
    options = options_to_compare(payoff.runtime, payoff.faithful, own, candidates.others() if own else ())
    known = {Option("int8", payoff.runtime): (guard.within_tolerance, guard.line())}
    reference = Option("fp32", payoff.runtime)  # the options' ratios are read against it: measured every round
    payoff.alternatives, results = judge_and_measure(options, candidates, progress, settings, known, [reference])
    fp32_here = results.get(reference.label)
    if fp32_here is not None:  # the options' ratios are read against fp32 of this same measurement
        payoff.options_fp32_p50_ms = fp32_here.stats["p50_ms"]
        payoff.options_base = reference.label
        if payoff.fp32_p50_ms is None:
            payoff.fp32_p50_ms = payoff.options_fp32_p50_ms
    return results


def _choose(payoff: Payoff, candidates: Candidates, progress: Progress, guard: GuardReport) -> None:
    """The runtime the faithful int8 file ships on: every option judged as its runtime runs it and measured
    side by side (as many rounds as the ship decision takes, CHECK's); the fastest faithful int8 option
    against the fastest faithful fp32 option, with the interval of their ratio (paired rounds)."""
    results = _alternatives(payoff, candidates, progress, guard, CHECK, with_own=True)
    measured = [m for m in payoff.alternatives if m.faithful and m.option.label in results]
    int8s = {m.option.label: m for m in measured if m.option.model != "fp32"}
    # in the options' order (auto's file on the requested runtime first): another only when clearly faster
    chosen, looks = settled_int8(list(int8s), results, _again(int8s, candidates, progress)) if int8s else ("", 0)
    int8, payoff.int8_choice_measurements = int8s.get(chosen), looks
    fp32 = min((m for m in measured if m.option.model == "fp32"), key=lambda m: m.p50_ms, default=None)
    if int8 is None or fp32 is None:  # the int8 file did not run where the guard judged it: nothing to ship
        payoff.faithful = int8 is not None
        return
    pair = {m.option.label: (candidates.paths[m.option.model], m.option.runtime) for m in (int8, fp32)}
    first = (results[int8.option.label], results[fp32.option.label])
    speedup, payoff.extra_measurements = _weighed(pair, candidates, progress, OPTIONS_MODEL_SECONDS, first)
    payoff.runtime, payoff.baseline, payoff.int8_model = int8.option.runtime, fp32.option, int8.option.model
    payoff.fp32_p50_ms, payoff.int8_p50_ms, payoff.ratio_ci = speedup.fp32_p50_ms, speedup.int8_p50_ms, speedup.ratio_ci


def _again(
    int8s: Mapping[str, Measured], candidates: Candidates, progress: Progress
) -> Callable[[str, str], tuple[BenchResult, BenchResult]]:
    """Two of the int8 options ``int8s`` (by label) measured again, interleaved, on their runtimes."""

    def measure(a: str, b: str) -> tuple[BenchResult, BenchResult]:
        pair = {label: int8s[label].option for label in (a, b)}
        settings = budgeted(CHECK, candidates.paths["fp32"], candidates.sample, OPTIONS_MODEL_SECONDS)
        paths = {label: candidates.paths[o.model] for label, o in pair.items()}
        runtimes = {label: o.runtime for label, o in pair.items()}
        with progress.task("int8 files again: which is faster is open", total=settings.rounds) as advance:
            results = measure_interleaved(paths, settings, candidates.sample, advance, runtimes=runtimes)
        return results[a], results[b]

    return measure


def _weighed(
    pair: dict[str, tuple[Path, RuntimeChoice]],
    candidates: Candidates,
    progress: Progress,
    seconds: float = MODEL_SECONDS,
    first: tuple[BenchResult, BenchResult] | None = None,
) -> tuple[Speedup, int]:
    """The ship decision on ``pair`` (int8's label first, then fp32's: file and runtime each), measured
    interleaved (``first``: the two measured already) and again while it is open (timing.conclusive)."""
    int8_label, fp32_label = pair
    paths = {label: path for label, (path, _) in pair.items()}
    runtimes = {label: runtime for label, (_, runtime) in pair.items()}

    @functools.cache
    def settings() -> BenchSettings:  # timed once, and only when something is measured here
        return budgeted(CHECK, candidates.paths["fp32"], candidates.sample, seconds)

    def measure(title: str) -> tuple[BenchResult, BenchResult]:
        with progress.task(title, total=settings().rounds) as advance:
            results = measure_interleaved(paths, settings(), candidates.sample, advance, runtimes=runtimes)
        return results[int8_label], results[fp32_label]

    int8, fp32 = first or measure("int8 against fp32")
    return conclusive(int8, fp32, lambda: measure("int8 against fp32 again: the verdict is open"))


__all__ = ["Candidates", "Payoff", "measure_payoff"]
