"""Where build stages run: in this process, in a pool of local processes, or as Ray tasks.

All three take ``submit(task) -> handle`` and ``wait(handles, timeout) -> finished handles`` and return
the dict that ``edgeport.search.tasks.execute`` returns. Latency is never measured here: the search
runs benchmarks itself, alone, when no build is running.
"""

from __future__ import annotations

import os
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor
from concurrent.futures import wait as wait_futures
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context

from edgeport.core.progress import SILENT, Progress
from edgeport.core.ray_instance import import_ray, start_or_join
from edgeport.errors import ConfigError
from edgeport.search.tasks import execute

EXECUTORS = ("local", "ray")


def threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)


class InlineExecutor:
    """One worker: each stage runs in this process when submitted (and can show its own progress)."""

    name = "local"
    workers = 1

    def __init__(self, progress: Progress = SILENT) -> None:
        self.progress = progress

    def submit(self, task: dict) -> Future:
        future: Future = Future()
        future.set_result(execute({**task, "threads": threads_per_worker(1)}, self.progress))
        return future

    def wait(self, handles: list, timeout: float | None = None) -> list:
        return [h for h in handles if h.done()]

    def result(self, handle) -> dict:
        return handle.result()

    def close(self) -> None:
        pass


class ProcessExecutor(InlineExecutor):
    """``workers`` spawned processes (spawn, not fork: torch and onnxruntime keep threads)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=get_context("spawn"))

    def submit(self, task: dict) -> Future:
        payload = {**task, "threads": threads_per_worker(self.workers)}
        try:
            return self.pool.submit(execute, payload)
        except BrokenProcessPool:  # a worker died (killed, out of memory): the pool cannot be used again
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = self._new_pool()
            return self.pool.submit(execute, payload)

    def wait(self, handles: list, timeout: float | None = None) -> list:
        done, _ = wait_futures(handles, timeout=timeout, return_when=FIRST_COMPLETED)
        return list(done)

    def result(self, handle) -> dict:
        try:
            return handle.result()
        except Exception as exc:  # a worker died (killed, out of memory): the stage failed
            return {"ok": False, "error": f"worker process failed: {type(exc).__name__}: {exc}"}

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor:
    """Stages as Ray tasks. Without an address a local Ray instance is started (and stopped after).

    Workers read and write the stage cache by path: on a multi-node cluster the run folder and the
    cache must be on a filesystem every node mounts.
    """

    name = "ray"

    def __init__(self, address: str | None, workers: int) -> None:
        ray = import_ray("--executor ray")
        self.ray = ray
        self.workers = workers
        # A device pool (--pool) may have started it already, with CPUs for these workers
        self.connected_here = start_or_join(ray, address, workers)
        self.remote_execute = ray.remote(num_cpus=1)(execute)

    def submit(self, task: dict):
        return self.remote_execute.remote({**task, "threads": threads_per_worker(self.workers)})

    def wait(self, handles: list, timeout: float | None = None) -> list:
        done, _ = self.ray.wait(list(handles), num_returns=1, timeout=timeout)
        return done

    def result(self, handle) -> dict:
        try:
            return self.ray.get(handle)
        except Exception as exc:  # the task's worker died
            return {"ok": False, "error": f"Ray task failed: {type(exc).__name__}: {exc}"}

    def close(self) -> None:
        if self.connected_here:
            self.ray.shutdown()


def check_executor(name: str, workers: int, ray_address: str | None, pooled: bool = False) -> None:
    """The executor's options, refused before anything starts; ``pooled``: a device pool uses --ray-address
    too (for its devices)."""
    if name not in EXECUTORS:
        raise ConfigError(f"executor {name!r} is not one of {', '.join(EXECUTORS)}")
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if ray_address is not None and name != "ray" and not pooled:
        raise ConfigError("--ray-address needs --executor ray (or --pool)")


def make_executor(name: str, workers: int, ray_address: str | None, progress: Progress = SILENT, pooled: bool = False):
    """The executor of build stages (a Ray one joins the instance a device pool started, when there is one)."""
    check_executor(name, workers, ray_address, pooled)
    if name == "ray":
        return RayExecutor(ray_address, workers)
    return InlineExecutor(progress) if workers == 1 else ProcessExecutor(workers)
