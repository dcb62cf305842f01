"""``edgeport search``: run every candidate through the stages, reuse what is built, pick one.

The scheduler walks each admitted trial's stage chain (teacher -> student -> export ->
quantize), handing stages that are not in the cache to the executor; a trial whose artifact is
ready joins the benchmark queue. Benchmarks run in this process, one at a time, and only when
no build is running: new builds wait while the queue is not empty, so parallel training never
disturbs a latency measurement. A finished trial is committed to the SQLite store at once.
"""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from edgeport.artifacts import atomic_write_json, ensure_writable_dir, sha256_json
from edgeport.benchmarks import cpu_fingerprint
from edgeport.config import RunConfig, load_config, read_project_file
from edgeport.errors import ArtifactError, ConfigError, EdgeportError
from edgeport.progress import SILENT, Progress
from edgeport.search import halving
from edgeport.search.cache import StageCache
from edgeport.search.executors import make_executor
from edgeport.search.plan import StageTask, TrialPlan, plan_trial
from edgeport.search.settings import SearchSettings, load_search_settings, parse_duration
from edgeport.search.space import Candidate, expand
from edgeport.search.store import STORE_NAME, TrialStore
from edgeport.search.tasks import prepared_data
from edgeport.search.trial import bench_trial, trial_record

DEFINITION = "search.json"


@dataclass
class SearchOptions:
    out: Path = Path("runs")
    resume: Path | None = None
    executor: str = "local"
    workers: int = 1
    ray_address: str | None = None
    max_trials: int | None = None
    allow_large_grid: bool = False
    time_budget: str | None = None
    remote: str | None = None
    remote_python: str = "python3"
    ssh_options: tuple[str, ...] = ()
    cache: Path | None = None
    budget: Path | None = None  # gate the chosen artifact against a target of this budget file
    budget_target: str | None = None
    overrides: dict = field(default_factory=dict)


@dataclass
class Definition:
    base: RunConfig
    settings: SearchSettings
    source: str


def _from_file(path: Path, overrides: dict) -> Definition:
    document = read_project_file(path)
    settings = load_search_settings(document, str(path))
    return Definition(load_config(path, overrides), settings, str(path))


def _stored(folder: Path) -> dict:
    if not (folder / STORE_NAME).is_file() or not (folder / DEFINITION).is_file():
        raise ConfigError(
            f"{folder}: not a search folder (no {STORE_NAME} and {DEFINITION}); "
            "--resume takes the folder an earlier `edgeport search` created"
        )
    try:
        return json.loads((folder / DEFINITION).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{folder / DEFINITION}: unreadable search definition ({exc})") from exc


def _first_difference(a: dict, b: dict, prefix: str = "") -> str | None:
    for key in sorted(set(a) | set(b)):
        left, right = a.get(key), b.get(key)
        if isinstance(left, dict) and isinstance(right, dict):
            found = _first_difference(left, right, f"{prefix}{key}.")
            if found:
                return found
        elif left != right:
            return f"{prefix}{key}: {left!r} -> {right!r}"
    return None


def resolve_definition(config_path: Path | None, options: SearchOptions) -> tuple[Definition, dict | None]:
    """The search to run, and for --resume what the folder stored (checked against the new file)."""
    if options.resume is None:
        if config_path is None:
            raise ConfigError("edgeport search needs --config FILE (with a [search] table) or --resume RUN_DIR")
        return _from_file(config_path, options.overrides), None
    stored = _stored(Path(options.resume))
    try:
        old = Definition(
            RunConfig.model_validate_json(stored["run"]),
            SearchSettings.model_validate_json(stored["search"]),
            str(options.resume),
        )
        if not isinstance(stored["candidates"], list) or not isinstance(stored["cache"], str):
            raise TypeError("candidates and cache")
    except (KeyError, TypeError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        raise ConfigError(
            f"{Path(options.resume) / DEFINITION}: damaged search definition ({exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0]})"
        ) from exc
    if config_path is None:
        return old, stored
    new = _from_file(config_path, options.overrides)
    changed = _first_difference(old.base.model_dump(mode="json"), new.base.model_dump(mode="json"))
    if changed:
        raise ConfigError(
            f"{config_path}: the [run] settings differ from the search in {options.resume} ({changed}); "
            "a resumed search may only add candidates"
        )
    for name in ("strategy", "seed", "halving", "halving_factor", "halving_min_epochs"):
        if getattr(old.settings, name) != getattr(new.settings, name):
            raise ConfigError(
                f"{config_path}: search.{name} differs from the search in {options.resume}; "
                "a resumed search may only add candidates"
            )
    return new, stored


def _budgets(candidates: list[Candidate], settings: SearchSettings, options: SearchOptions):
    max_trials = options.max_trials or settings.max_trials
    if max_trials is not None and len(candidates) > max_trials:
        if not options.allow_large_grid:
            raise ConfigError(
                f"the search space has {len(candidates)} candidates, more than max_trials {max_trials}; "
                "pass --allow-large-grid to run the first max_trials of them, or shrink the space"
            )
        candidates = candidates[:max_trials]
    budget = options.time_budget if options.time_budget is not None else settings.time_budget
    return candidates, (parse_duration(budget) if budget is not None else None)


def _new_folder(out: Path, definition: Definition) -> Path:
    ensure_writable_dir(out)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    digest = sha256_json(
        {"run": definition.base.model_dump(mode="json"), "search": definition.settings.model_dump(mode="json")}
    )[:8]
    folder = out / f"search-{stamp}-{digest}"
    try:
        folder.mkdir()
    except FileExistsError as exc:
        raise ArtifactError(f"search folder {str(folder)!r} already exists") from exc
    return folder


class _Clock:
    def __init__(self, budget_s: float | None) -> None:
        self.started = time.monotonic()
        self.budget_s = budget_s

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def over_budget(self) -> bool:
        return self.budget_s is not None and self.elapsed > self.budget_s


def _fmt_seconds(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"


class Scheduler:
    """Drives trials through build stages on an executor and benchmarks them alone."""

    def __init__(
        self,
        executor,
        cache: StageCache,
        logits_cache: Path,
        store: TrialStore,
        bench,
        selection: dict,
        progress: Progress,
    ) -> None:
        self.executor, self.cache, self.logits_cache = executor, cache, logits_cache
        self.store, self.bench, self.selection, self.progress = store, bench, selection, progress
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

    def _collect(self) -> None:
        for handle in self.executor.wait(list(self.running)):
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
    def run_trials(self, plans: list[TrialPlan], clock: _Clock, total: int, done_before: int) -> dict:
        pending = deque(plans)
        active: list[TrialPlan] = []
        bench_queue: deque[TrialPlan] = deque()
        window = max(1, 2 * self.executor.workers) if self.executor.workers > 1 else 1
        finished = skipped = 0
        best = "-"
        recorded = self.store.trials()  # read once; this session's trials are appended as they finish
        with self.progress.task("search trials", total=total) as advance:
            advance(done_before)

            def show(stage: str) -> None:
                done = done_before + finished
                eta = clock.elapsed / finished * (total - done) if finished else None
                advance(
                    0,
                    stage=stage,
                    elapsed=_fmt_seconds(clock.elapsed),
                    eta=_fmt_seconds(eta) if eta is not None else "?",
                    best=best,
                )

            while pending or active or bench_queue or self.running:
                # Over the time budget: start nothing new, but always run one trial, so there is a result.
                if pending and clock.over_budget() and (finished or active or bench_queue):
                    skipped += len(pending)
                    pending.clear()
                while pending and len(active) < window:
                    active.append(pending.popleft())
                for plan in list(active):
                    for task in plan.chain:
                        if task.key in self.errors:
                            self._fail(plan, task, self.errors[task.key])
                            active.remove(plan)
                            finished += 1
                            advance(1)
                            break
                        if self._take(task):
                            continue
                        if (
                            task.key not in self.running_keys
                            and not bench_queue
                            and len(self.running) < self.executor.workers
                        ):
                            self._submit(task)
                            show(f"{task.stage} {plan.candidate.id[:8]}")
                        break
                    else:
                        active.remove(plan)
                        bench_queue.append(plan)
                if bench_queue and not self.running:
                    plan = bench_queue.popleft()
                    show(f"benchmark {plan.candidate.id[:8]}")
                    record = self._bench(plan)
                    self.store.add_trial(record)
                    recorded.append(record)
                    finished += 1
                    if record["status"] == "ok":
                        best = self._best_so_far(recorded)
                    advance(1)
                    show("")
                    continue
                if self.running:
                    self._collect()
        return {"finished": finished, "skipped_by_time_budget": skipped}

    def _fail(self, plan: TrialPlan, task: StageTask, error: str) -> None:
        self.store.add_trial(
            {
                "id": plan.candidate.id,
                "position": plan.candidate.index,
                "params": plan.candidate.params,
                "status": "failed",
                "error": f"{task.stage}: {error}",
            }
        )

    def _bench(self, plan: TrialPlan) -> dict:
        entries = {task.stage: self.results[task.key] for task in plan.chain}
        try:
            bench_entry, reused = bench_trial(plan, entries, self.cache, self.bench)
            self.store.count_stage("benchmark", built=not reused)
            return trial_record(plan, entries, bench_entry, self.selection["latency_metric"])
        except EdgeportError as exc:
            return {
                "id": plan.candidate.id,
                "position": plan.candidate.index,
                "params": plan.candidate.params,
                "status": "failed",
                "error": f"benchmark: {exc}",
            }

    def _best_so_far(self, trials: list[dict]) -> str:
        from edgeport.search.objective import choose, latency_of

        chosen, _ = choose(trials, self.selection)
        if chosen is None:
            return "none feasible"
        trial = next(t for t in trials if t["id"] == chosen)
        return f"{trial['metrics']['val_accuracy']:.1f}% {latency_of(trial, self.selection['latency_metric']):.3g}ms"


def _gate_target(candidates: list[Candidate], options: SearchOptions) -> str | None:
    """With --budget, every candidate must be measured at the target's batch and threads."""
    if options.budget is None:
        return None
    from edgeport.gate.run_gate import target_for_settings

    settings = {(c.config.bench.batch, c.config.bench.threads) for c in candidates}
    if len(settings) > 1:
        raise ConfigError(f"--budget gates one target, but the space varies bench batch/threads {sorted(settings)}")
    batch, threads = settings.pop()
    return target_for_settings(options.budget, options.budget_target, batch, threads, "this search", options.remote)[0]


def gate_chosen(folder: Path, trials: list[dict], chosen: str | None, budget: Path, target: str) -> dict | None:
    """Gate best/ with the chosen trial's own benchmark; the fp32 trial of the same student is the reference."""
    from edgeport.gate import GateRequest, run_gate

    if chosen is None:
        return None
    trial = next(t for t in trials if t["id"] == chosen)
    fp32 = next(
        (
            t
            for t in trials
            if t["status"] == "ok"
            and t["metrics"]["kind"] == "onnx-fp32"
            and t["artifacts"]["fp32_onnx"] == trial["artifacts"]["fp32_onnx"]
        ),
        None,
    )
    report = run_gate(
        GateRequest(
            budget=budget,
            target=target,
            result=Path(trial["artifacts"]["benchmark"]),
            artifact=folder / "best" / "model.onnx",
            manifest=folder / "best" / "manifest.json",
            reference_result=Path(fp32["artifacts"]["benchmark"]) if fp32 else None,
        )
    )
    atomic_write_json(folder / "gate.json", report)
    return report


def _validate_candidates(candidates: list[Candidate]) -> None:
    """What `edgeport run` checks before any work, for every distinct setting a candidate uses."""
    from edgeport.models import ModelSpec

    seen: set[str] = set()
    for candidate in candidates:
        config = candidate.config
        for what, value in (("teacher", config.teacher.model_dump_json()), ("data", config.data.model_dump_json())):
            if (what + value) in seen:
                continue
            seen.add(what + value)
            try:
                if what == "teacher":
                    ModelSpec.parse(config.teacher.model).validate()
                    if config.teacher.weights is not None and not Path(config.teacher.weights).is_file():
                        raise ConfigError(f"{config.teacher.weights}: teacher checkpoint not found")
                elif config.data.val_fraction + config.data.test_fraction >= 1:
                    raise ConfigError("data.val_fraction + data.test_fraction must be < 1")
            except EdgeportError as exc:
                raise ConfigError(f"search candidate {candidate.params}: {exc}") from exc


def _halving_plans(todo: list[TrialPlan], settings: SearchSettings, scheduler: Scheduler, store: TrialStore):
    """Run the halving rungs once; a resumed search reuses the survivors it recorded."""
    recorded = store.get_meta("halving")
    if recorded is None:
        todo, report = halving.run_rungs(todo, settings, scheduler, store)
        store.set_meta("halving", {"survivors": sorted({p.student_task().key for p in todo}), "report": report})
        return todo, report
    survivors = set(recorded["survivors"])
    new = [p for p in todo if p.student_task().key not in survivors]
    if new and recorded["report"].get("rungs"):
        raise ConfigError(
            "a search with successive halving cannot be widened on resume: its rungs already chose "
            "the students; start a new search for the wider space"
        )
    return [p for p in todo if p.student_task().key in survivors] + new, recorded["report"]


def run_search(config_path: Path | None, options: SearchOptions, progress: Progress = SILENT) -> tuple[Path, dict]:
    """Run (or resume) a search; return its folder and summary (also written as manifest.json).

    Everything that can be refused is checked before the folder is created (or, on resume, before
    the stored definition is touched): the space, the data, the budgets, the cache, the executor.
    """
    from edgeport.search.bench_target import BenchTarget
    from edgeport.search.finish import finish_search
    from edgeport.search.space import check_size

    if options.resume is not None and config_path is None and options.overrides:
        raise ConfigError(
            "--seed with --resume needs --config: a resumed search keeps the settings it was started with"
        )
    definition, stored = resolve_definition(config_path, options)
    cpu = cpu_fingerprint()
    max_trials = options.max_trials or definition.settings.max_trials
    check_size(definition.settings, max_trials, options.allow_large_grid)
    candidates, expansion = expand(
        definition.settings,
        definition.base,
        cpu,
        limit=max_trials + 1 if options.allow_large_grid and max_trials else None,
    )
    _validate_candidates(candidates)
    if stored is not None:
        missing = [c for c in stored["candidates"] if c not in {cand.id for cand in candidates}]
        if missing:
            raise ConfigError(
                f"{options.resume}: the new space drops {len(missing)} candidate(s) of the earlier search; "
                "a resumed search may only add candidates"
            )
    candidates, budget_s = _budgets(candidates, definition.settings, options)
    if definition.settings.halving and len({c.config.student.epochs for c in candidates}) > 1:
        raise ConfigError("search.halving uses student.epochs as its resource; do not also search over student.epochs")
    gate_target = _gate_target(candidates, options)
    bench = BenchTarget.create(options.remote, options.remote_python, options.ssh_options)
    bench.check()
    if stored is None:
        cache_root = Path(options.cache) if options.cache else Path(options.out) / ".cache" / "stages"
    else:
        cache_root = Path(options.cache) if options.cache else Path(stored["cache"])
    cache = StageCache(cache_root)
    logits_cache = cache.root / ".teacher-logits"
    prepared_data(definition.base)  # loads and checks the data: a bad dataset is refused before any folder
    plans = [plan_trial(c, prepared_data(c.config).data.fingerprint()) for c in candidates]
    executor = make_executor(options.executor, options.workers, options.ray_address, progress)
    try:
        folder = _new_folder(Path(options.out), definition) if stored is None else Path(options.resume)
        cache.remove_stale_builds()
        atomic_write_json(
            folder / DEFINITION,
            {
                "run": definition.base.model_dump_json(),
                "search": definition.settings.model_dump_json(),
                "candidates": [c.id for c in candidates],
                "cache": str(cache.root.resolve()),
                "source": definition.source,
            },
        )
        store = TrialStore(folder / STORE_NAME)
        try:
            done = store.done_ids()
            clock = _Clock(budget_s)
            selection = definition.settings.selection()
            scheduler = Scheduler(executor, cache, logits_cache, store, bench, selection, progress)
            todo = [p for p in plans if p.candidate.id not in done]
            halving_report = None
            if definition.settings.halving and todo:
                todo, halving_report = _halving_plans(todo, definition.settings, scheduler, store)
            progress.log(
                f"search: {len(candidates)} candidates ({len(candidates) - len(todo)} already done), "
                f"executor {executor.name} x{executor.workers}, latency on {bench.describe()}"
            )
            counts = scheduler.run_trials(todo, clock, len(candidates), len(candidates) - len(todo))
            gate = (
                (lambda f, trials, chosen: gate_chosen(f, trials, chosen, options.budget, gate_target))
                if gate_target
                else None
            )
            return finish_search(
                folder,
                store,
                definition,
                candidates,
                expansion,
                {
                    **counts,
                    "elapsed_s": round(clock.elapsed, 1),
                    "time_budget_s": budget_s,
                    "halving": halving_report,
                    "executor": executor.name,
                    "workers": executor.workers,
                    "bench_target": bench.describe(),
                    "cache": str(cache.root),
                },
                gate,
            )
        finally:
            store.close()
    finally:
        executor.close()


__all__ = ["SearchOptions", "run_search"]
