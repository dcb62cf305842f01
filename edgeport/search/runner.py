"""``edgeport search``: run every candidate through the stages, reuse what is built, pick one.

This module puts the pieces in order: the definition (definition.py), the candidates and their
limits (space.py, checks.py, limits.py), the bench device and the gate target, then the folder,
the trials (scheduler.py, halving.py) and the end of the search (finish.py).
"""

from __future__ import annotations

import functools
from pathlib import Path

from edgeport.benchmarks import cpu_fingerprint
from edgeport.core.progress import SILENT, Progress
from edgeport.errors import ConfigError
from edgeport.search import halving, limits
from edgeport.search.bench_device import BenchDevice, PoolBenchDevice
from edgeport.search.cache import StageCache
from edgeport.search.checks import check_halving, validate_candidates
from edgeport.search.definition import (
    Definition,
    Resumed,
    check_keeps_candidates,
    resolve_definition,
    write_definition,
)
from edgeport.search.executors import check_executor, make_executor
from edgeport.search.finish import finish_search
from edgeport.search.folder import cache_root, new_folder
from edgeport.search.gating import gate_chosen, resolve_gate_target
from edgeport.search.options import SearchOptions
from edgeport.search.plan import TrialPlan, plan_trial
from edgeport.search.scheduler import Scheduler
from edgeport.search.space import Candidate, check_size, expand
from edgeport.search.store import STORE_NAME, TrialStore
from edgeport.search.tasks import prepared_data
from edgeport.search.trial import footprint_cold_starts


def _candidates(
    definition: Definition, resumed: Resumed | None, options: SearchOptions
) -> tuple[list[Candidate], dict, float | None]:
    """The candidates this session may run, checked before any work; the expansion; the time limit (s)."""
    settings = definition.settings
    cpu = cpu_fingerprint()
    max_trials = limits.max_trials(options, settings)
    check_size(settings, max_trials, options.allow_large_grid)
    candidates, expansion = expand(
        settings, definition.base, cpu, limit=max_trials + 1 if options.allow_large_grid and max_trials else None
    )
    validate_candidates(candidates, cpu)
    if resumed is not None:
        check_keeps_candidates(resumed, candidates)
    candidates = limits.first_candidates(candidates, options, settings)
    time_limit_s = limits.time_limit_s(options, settings)
    check_halving(candidates, settings)
    return candidates, expansion, time_limit_s


def _run_trials(
    plans: list[TrialPlan], definition: Definition, scheduler: Scheduler, clock: limits.Clock, executor
) -> tuple[dict, dict | None]:
    """Run the trials not done yet (after the halving rungs, when asked); their counts and the halving report."""
    store = scheduler.store
    done = store.done_ids()
    todo = [p for p in plans if p.candidate.id not in done]
    halving_report = None
    if definition.settings.halving and todo:
        todo, halving_report = halving.plans_after_rungs(todo, definition.settings, scheduler, store)
    scheduler.progress.log(
        f"search: {len(plans)} candidates ({len(plans) - len(todo)} already done), "
        f"executor {executor.name} x{executor.workers}, latency on {scheduler.device.describe()}"
    )
    counts = scheduler.run_trials(todo, clock, len(plans), len(plans) - len(todo))
    return counts, halving_report


def run_search(config_path: Path | None, options: SearchOptions, progress: Progress = SILENT) -> tuple[Path, dict]:
    """Run (or resume) a search; return its folder and summary (also written as manifest.json).

    Everything that can be refused is checked before the folder is created (or, on resume, before
    the stored definition is touched): the space, the data, the limits, the cache, the executor.
    """
    definition, resumed = resolve_definition(config_path, options.resume, options.overrides)
    candidates, expansion, time_limit_s = _candidates(definition, resumed, options)
    measures_footprint = footprint_cold_starts(definition.settings.selection()) > 0
    gate_target = resolve_gate_target(candidates, options, measures_footprint)
    pooled = options.pool is not None
    check_executor(options.executor, options.workers, options.ray_address, pooled)
    device = _bench_device(options, {c.config.bench.runtime for c in candidates}, progress)
    try:
        cache = StageCache(cache_root(options, resumed))  # refuses a cache of another version
        prepared_data(definition.base)  # loads and checks the data: a bad dataset is refused before any folder
        plans = [plan_trial(c, prepared_data(c.config).data.fingerprint()) for c in candidates]
        executor = make_executor(options.executor, options.workers, options.ray_address, progress, pooled)
    except BaseException:
        device.close()
        raise
    try:
        folder = new_folder(Path(options.out), definition) if resumed is None else resumed.folder
        cache.remove_stale_builds()
        write_definition(folder, definition, candidates, cache.root)
        store = TrialStore(folder / STORE_NAME)
        try:
            clock = limits.Clock(time_limit_s)
            selection = definition.settings.selection()
            logits_cache = cache.root / ".teacher-logits"
            scheduler = Scheduler(executor, cache, logits_cache, store, device, selection, progress)
            counts, halving_report = _run_trials(plans, definition, scheduler, clock, executor)
            # Keys of manifest.json's "run" (time_budget_s, bench_target, ...): reports and tools read them.
            run_info = {
                **counts,
                "elapsed_s": round(clock.elapsed, 1),
                "time_budget_s": time_limit_s,
                "halving": halving_report,
                "executor": executor.name,
                "workers": executor.workers,
                "bench_target": device.describe(),
                **({"pool": device.summary()} if pooled else {}),
                "cache": str(cache.root),
            }
            gate = functools.partial(gate_chosen, gate=gate_target) if gate_target else None
            return finish_search(folder, store, definition, candidates, expansion, run_info, gate)
        finally:
            store.close()
    finally:
        executor.close()
        device.close()


def _bench_device(options: SearchOptions, runtimes: set[str], progress: Progress) -> BenchDevice | PoolBenchDevice:
    """Where the trials are measured, checked (a remote device or a pool probed) before the search starts."""
    device: BenchDevice | PoolBenchDevice
    if options.pool is not None:
        if options.remote:
            raise ConfigError("--pool and --remote both say where to measure: give one")
        # one Ray instance for the pool and, with --executor ray, for the builds: CPUs for its workers
        workers = options.workers if options.executor == "ray" else 1
        device = PoolBenchDevice(options.pool, workers, progress)
    else:
        device = BenchDevice.create(options.remote, options.remote_python, options.ssh_options)
    device.check(runtimes)
    return device


__all__ = ["SearchOptions", "run_search"]
