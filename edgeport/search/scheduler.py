"""Drive trials through their build stages on an executor, and benchmark each one alone.

The scheduler walks each admitted trial's stage chain (teacher -> student -> export ->
quantize), handing stages that are not in the cache to the executor; a trial whose artifact is
ready joins the benchmark queue. Benchmarks run in this process, one at a time, and only when
no build is running: new builds wait while the queue is not empty, so parallel training never
disturbs a latency measurement. On a device pool (``--pool``) the benchmarks run on other machines,
one per device and several at once, while builds go on here. A finished trial is committed to the
SQLite store at once.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from edgeport.core.progress import Progress
from edgeport.errors import BenchmarkError, EdgeportError
from edgeport.search.cache import StageCache
from edgeport.search.limits import Clock, fmt_seconds
from edgeport.search.objective import choose, latency_of
from edgeport.search.plan import StageTask, TrialPlan
from edgeport.search.record import TrialRecord, trial_record
from edgeport.search.runtime_judgement import judge_on_runtime
from edgeport.search.store import TrialStore
from edgeport.search.trial import BenchJob, bench_job, bench_trial, commit_bench, footprint_cold_starts, measured_record


@dataclass
class _Trials:
    """Where the trials of one ``run_trials`` call stand."""

    pending: deque[TrialPlan]
    window: int  # at most this many trials walk their chains at once
    recorded: list[dict]  # every stored trial, for the best-so-far shown in the progress line
    active: list[TrialPlan] = field(default_factory=list)
    bench_queue: deque[TrialPlan] = field(default_factory=deque)
    measuring: dict[str, tuple[TrialPlan, BenchJob]] = field(default_factory=dict)  # on a device pool, by id
    finished: int = 0
    skipped: int = 0
    best: str = "-"

    def busy(self) -> bool:
        return bool(self.pending or self.active or self.bench_queue or self.measuring)


POLL_S = 0.1  # with builds and pool measurements both running: how long to wait on one side before the other


class Scheduler:
    """Drives trials through build stages on an executor and benchmarks them alone."""

    def __init__(
        self,
        executor,
        cache: StageCache,
        logits_cache: Path,
        store: TrialStore,
        device,
        selection: dict,
        progress: Progress,
    ) -> None:
        self.executor, self.cache, self.logits_cache = executor, cache, logits_cache
        self.store, self.device, self.selection, self.progress = store, device, selection, progress
        self.results: dict[str, dict] = {}
        self.errors: dict[str, str] = {}
        self.running: dict = {}  # handle -> StageTask
        self.running_keys: set[str] = set()

    # -- build stages ----------------------------------------------------------------------------
    def _take(self, task: StageTask) -> bool:
        """True when ``task`` is done (now or before); looks in the cache before submitting."""
        if task.key in self.results or task.key in self.errors:
            return True
        if task.key in self.running_keys:
            return False
        found = self.cache.lookup(task.stage, task.key)
        if found is not None:
            self.results[task.key] = found
            self.store.count_stage(task.stage, built=False)
            return True
        return False

    def _submit(self, task: StageTask) -> None:
        handle = self.executor.submit(task.payload(self.cache.root, self.logits_cache))
        self.running[handle] = task
        self.running_keys.add(task.key)

    def _collect(self, timeout: float | None = None) -> None:
        for handle in self.executor.wait(list(self.running), timeout):
            task = self.running.pop(handle)
            self.running_keys.discard(task.key)
            outcome = self.executor.result(handle)
            if outcome["ok"]:
                self.results[task.key] = outcome["result"]
                self.store.count_stage(task.stage, built=not outcome.get("reused"))
            else:
                self.errors[task.key] = outcome["error"]

    def build_all(self, tasks: list[StageTask], describe: str) -> None:
        """Build every task (independent of each other) and wait for all: the halving rungs."""
        pending = deque(t for t in {t.key: t for t in tasks}.values())
        with self.progress.task(describe, total=len(pending)) as advance:
            while pending or self.running:
                while pending and len(self.running) < self.executor.workers:
                    task = pending.popleft()
                    if self._take(task):
                        advance(1)
                    else:
                        self._submit(task)
                if self.running:
                    before = len(self.running)
                    self._collect()
                    advance(before - len(self.running))

    # -- trials ----------------------------------------------------------------------------------
    def run_trials(self, plans: list[TrialPlan], clock: Clock, total: int, done_before: int) -> dict:
        window = max(1, 2 * self.executor.workers) if self.executor.workers > 1 else 1
        # The store is read once; this session's trials are appended as they finish.
        trials = _Trials(deque(plans), window, self.store.trials())
        with self.progress.task("search trials", total=total) as advance:
            advance(done_before)

            def show(stage: str) -> None:
                done = done_before + trials.finished
                eta = clock.elapsed / trials.finished * (total - done) if trials.finished else None
                advance(
                    0,
                    stage=stage,
                    elapsed=fmt_seconds(clock.elapsed),
                    eta=fmt_seconds(eta) if eta is not None else "?",
                    best=trials.best,
                )

            while trials.busy() or self.running:
                # Over the time limit: start nothing new, but always run one trial, so there is a result.
                if trials.pending and clock.over_limit() and (trials.finished or trials.active or trials.bench_queue):
                    trials.skipped += len(trials.pending)
                    trials.pending.clear()
                while trials.pending and len(trials.active) < trials.window:
                    trials.active.append(trials.pending.popleft())
                for plan in list(trials.active):
                    self._step(plan, trials, advance, show)
                if self.device.parallel:  # a device pool: benchmarks and builds go on side by side
                    self._bench_on_pool(trials, advance, show)
                    continue
                if trials.bench_queue and not self.running:
                    self._bench_next(trials, advance, show)
                    continue
                if self.running:
                    self._collect()
        return {"finished": trials.finished, "skipped_by_time_budget": trials.skipped}

    def _step(self, plan: TrialPlan, trials: _Trials, advance, show) -> None:
        """Move an active trial on: record its failure, start its next stage, or queue its benchmark."""
        for task in plan.chain:
            if task.key in self.errors:
                self.store.add_trial(
                    trial_record(plan.candidate, "failed", error=f"{task.stage}: {self.errors[task.key]}")
                )
                trials.active.remove(plan)
                trials.finished += 1
                advance(1)
                return
            if self._take(task):
                continue
            # New builds wait while a benchmark is queued: it runs only when no build is running (on a device
            # pool the benchmarks run on other machines, and builds go on).
            if (
                task.key not in self.running_keys
                and (self.device.parallel or not trials.bench_queue)
                and len(self.running) < self.executor.workers
            ):
                self._submit(task)
                show(f"{task.stage} {plan.candidate.id[:8]}")
            return
        trials.active.remove(plan)
        trials.bench_queue.append(plan)

    def _bench_next(self, trials: _Trials, advance, show) -> None:
        plan = trials.bench_queue.popleft()
        show(f"benchmark {plan.candidate.id[:8]}")
        self._record(plan, self._bench(plan), trials, advance)
        show("")

    def _record(self, plan: TrialPlan, record: TrialRecord, trials: _Trials, advance) -> None:
        self.store.add_trial(record)
        trials.recorded.append(record.to_dict())
        trials.finished += 1
        if record.status == "ok":
            trials.best = self._best_so_far(trials.recorded)
        advance(1)

    def _bench(self, plan: TrialPlan) -> TrialRecord:
        entries = self._entries(plan)
        try:
            cold_starts = footprint_cold_starts(self.selection)
            bench_entry, reused = bench_trial(plan, entries, self.cache, self.device, cold_starts)
            return self._measured(plan, entries, bench_entry, reused)
        except EdgeportError as exc:
            return trial_record(plan.candidate, "failed", error=f"benchmark: {exc}")

    def _entries(self, plan: TrialPlan) -> dict:
        """The cache entries of the trial's built stages, by stage."""
        return {task.stage: self.results[task.key] for task in plan.chain}

    def _measured(self, plan: TrialPlan, entries: dict, bench_entry: dict, reused: bool) -> TrialRecord:
        self.store.count_stage("benchmark", built=not reused)
        judged = judge_on_runtime(plan, entries, self.cache)  # its accuracy as its runtime runs it
        return measured_record(plan, entries, bench_entry, self.selection["latency_metric"], judged)

    # -- benchmarks on a device pool ---------------------------------------------------------------
    def _bench_on_pool(self, trials: _Trials, advance, show) -> None:
        """Hand queued benchmarks to the pool while a device is idle (a cached one finishes at once), then wait
        for a build or a measurement to end, but not while other trials could move on."""
        while trials.bench_queue and self.device.idle():
            plan = trials.bench_queue.popleft()
            entries = self._entries(plan)
            try:
                job = bench_job(plan, entries, self.device, footprint_cold_starts(self.selection))
                found = self.cache.lookup("benchmark", job.key)
                if found is not None:
                    self._record(plan, self._measured(plan, entries, found, True), trials, advance)
                    continue
                self.device.submit(plan.candidate.id, job)
                trials.measuring[plan.candidate.id] = (plan, job)
                show(f"benchmark {plan.candidate.id[:8]} on the pool")
            except EdgeportError as exc:
                self._record(plan, trial_record(plan.candidate, "failed", error=f"benchmark: {exc}"), trials, advance)
        if self.running and self.device.pending():  # short waits on both sides: either may end first
            self._collect(timeout=POLL_S)
            self._collect_pool(trials, advance, POLL_S)
        elif self.running:
            self._collect()
        elif self.device.pending():
            # no build runs: trials not yet admitted or stepped can move on now (their builds, their
            # benchmarks on idle devices), so wait only when nothing else can
            movable = bool(trials.pending or trials.active) or (bool(trials.bench_queue) and self.device.idle() > 0)
            self._collect_pool(trials, advance, 0 if movable else None)

    def _collect_pool(self, trials: _Trials, advance, timeout: float | None) -> None:
        for outcome in self.device.poll(timeout):
            self._pool_outcome(outcome, trials, advance)

    def _pool_outcome(self, outcome, trials: _Trials, advance) -> None:
        plan, job = trials.measuring.pop(outcome.key)
        entries = self._entries(plan)
        try:
            if not outcome.ok:
                raise BenchmarkError(outcome.error)
            result, window, footprint = outcome.value
            entry = commit_bench(self.cache, job, result, window, footprint, outcome.device)
            record = self._measured(plan, entries, entry, False)
        except EdgeportError as exc:
            record = trial_record(plan.candidate, "failed", error=f"benchmark: {exc}")
        self._record(plan, record, trials, advance)

    def _best_so_far(self, trials: list[dict]) -> str:
        chosen, _ = choose(trials, self.selection)
        if chosen is None:
            return "none feasible"
        trial = next(t for t in trials if t["id"] == chosen)
        return f"{trial['metrics']['val_accuracy']:.1f}% {latency_of(trial, self.selection['latency_metric']):.3g}ms"
