"""NNCF's quantization started in a child process at the start of auto, while onnxruntime's recipes are tried
here: it is the last recipe and always tried, and its result depends on nothing they find.

Why: on all-MiniLM-L6-v2 NNCF took 18 s of auto's 62 s, onnxruntime's screen and dynamic recipes 14 s before
it, and neither keeps two cores busy throughout (AMD EPYC Zen 3, 2 cores): side by side the three took 24-25 s
instead of 31-34 s, each slower than alone. Nothing is timed meanwhile (the recipes are only judged), and the
child's answer is awaited, its process ended, before anything is measured.

Only where it pays: on a machine with two cores or more, and for a model of ``AHEAD_MIN_BYTES`` or more. The
child imports NNCF (and torch with it) afresh, about 5 s of one core, which a small model's whole NNCF run
would not take. Meanwhile the child's memory adds to this process's: what NNCF holds, as it would in process.

The child ignores Ctrl-C (this process stops it), dies with this process (Linux), and sends back its result,
its error, and the third-party warnings it captured, which join this process's (noise.py).
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from edgeport.errors import EdgeportError, QuantizationError
from edgeport.quantize.apply import quantize
from edgeport.quantize.backends.ort_prepare import external_data_locations
from edgeport.quantize.config import QuantConfig
from edgeport.quantize.inputs.run import cores_shared
from edgeport.quantize.noise import add_captured, captured_warnings, capturing
from edgeport.quantize.registry import QuantResult
from edgeport.quantize.source import ModelSource
from edgeport.quantize.strategy.recipes import Recipe

AHEAD_MIN_BYTES = 32 * 2**20  # the fp32 model's file and external data
_PR_SET_PDEATHSIG = 1  # prctl(2)


class Ahead:
    """One quantization running in a child process; ``result()`` waits for it."""

    def __init__(self, model: Path, calibration: dict[str, np.ndarray], config: QuantConfig, output: Path) -> None:
        context = multiprocessing.get_context("spawn")  # never fork: onnxruntime's and OpenVINO's threads run here
        # The feeds go by a file beside the output, not in the pickled arguments: a pipe takes 64 KiB, and
        # writing more waited for the child to import edgeport's quantizers first (2.2 s of MiniLM's auto).
        feeds = output.with_name(output.name + ".calibration.npz")
        np.savez(feeds, *calibration.values())
        self._answer, answer = context.Pipe(duplex=False)
        self.model, self.backend, self.output = model, config.backend, output
        self._process = context.Process(
            target=_child, args=(answer, model, (feeds, list(calibration)), config, output, capturing()), daemon=True
        )
        try:
            self._process.start()
        except BaseException:
            self._answer.close()
            raise
        finally:
            answer.close()  # the child holds the only writing end: its death reads as end-of-file here

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def done(self) -> bool:
        """Whether the child has answered (or ended without an answer): ``result()`` would not wait."""
        return self._answer.poll()

    def result(self) -> QuantResult:
        """The child's result, or its error raised here (a ``QuantizationError`` when it died without one)."""
        try:
            kind, value, warnings = self._answer.recv()
        except EOFError:
            self._process.join()
            raise QuantizationError(
                f"{self.model}: backend {self.backend!r} failed: its process ended with exit code "
                f"{self._process.exitcode} and no answer"
            ) from None
        finally:
            self._answer.close()
        self._process.join()
        add_captured(warnings)
        if kind == "error":
            raise value
        return value

    def stop(self) -> None:
        """End the child if it still runs (auto failed, or was interrupted, before it needed the result)."""
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()
        self._answer.close()


def _child(
    answer: Any, model: Path, feeds: tuple[Path, list[str]], config: QuantConfig, output: Path, capture: bool
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent stops us
    try:  # and SIGKILL of the parent ends us too, rather than quantizing into a folder nobody reads
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (AttributeError, OSError):  # not Linux: the parent's stop() or the end of the pipe ends us
        pass
    counts: dict[str, int] = {}
    kind, value, captured = "error", None, None  # type: tuple[str, QuantResult | Exception | None, Any]
    try:
        with captured_warnings() if capture else contextlib.nullcontext() as captured, _sessions_without_spinning():
            kind, value = "ok", quantize(ModelSource(onnx_path=model), _read_feeds(*feeds), config, output)
    except EdgeportError as exc:
        value = exc
    except Exception as exc:  # quantize() wraps third-party failures: this is a bug, still one line
        value = QuantizationError(f"{model}: backend {config.backend!r} failed ({exc})")
    if captured is not None:
        counts = dict(captured.counts)
    try:
        answer.send((kind, value, counts))
    except Exception:  # an error that does not pickle: its text does
        answer.send(("error", QuantizationError(str(value)), counts))


@contextmanager
def _sessions_without_spinning() -> Iterator[None]:
    """onnxruntime sessions made meanwhile (NNCF's) whose threads do not spin-wait between ops. NNCF makes its
    sessions with default options, and takes none from its caller (nncf.onnx.engine.ONNXEngine); beside the
    parent's work on the same cores (whose judging sessions do not spin meanwhile: inputs/run.cores_shared),
    spinning threads took the cores from it and from NNCF itself. MiniLM (AMD EPYC Zen 3, 2 cores): NNCF's
    answer came about 3 s sooner. This process only runs NNCF; the file is the same
    (the threads' number, and so the arithmetic, are onnxruntime's defaults still)."""
    import onnxruntime

    default = onnxruntime.SessionOptions

    class WithoutSpinning(default):  # type: ignore[misc,valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.add_session_config_entry("session.intra_op.allow_spinning", "0")

    onnxruntime.SessionOptions = WithoutSpinning
    try:
        yield
    finally:
        onnxruntime.SessionOptions = default


def _read_feeds(path: Path, names: list[str]) -> dict[str, np.ndarray]:
    """The calibration feeds the parent wrote (``np.savez``, by position: input names need not be file names);
    the file is removed once read."""
    with np.load(path) as data:
        feeds = {name: data[f"arr_{index}"] for index, name in enumerate(names)}
    path.unlink()
    return feeds


def model_bytes(path: Path) -> int:
    """The ONNX file's size and its external data files' (read without loading the data)."""
    files = [path.parent / location for location in external_data_locations(path)]
    return path.stat().st_size + sum(f.stat().st_size for f in files if f.is_file())


def _pays(model: Path, min_bytes: int) -> bool:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cores >= 2 and model_bytes(model) >= min_bytes


@contextmanager
def started_ahead(
    recipe: Recipe | None, model: Path, calibration: dict[str, np.ndarray], output: Path
) -> Iterator[dict[str, Ahead]]:
    """NNCF's ``recipe`` (by name) started in a child process where that pays (``AHEAD_MIN_BYTES``, read now),
    writing to ``output``; whatever still runs on leaving is stopped."""
    started: dict[str, Ahead] = {}
    try:
        if recipe is not None and isinstance(recipe.config, QuantConfig) and _pays(model, AHEAD_MIN_BYTES):
            try:
                started[recipe.name] = Ahead(model, calibration, recipe.config, output)
            except OSError:  # no process to be had (a process limit, memory): NNCF runs in process
                pass
        with cores_shared() if started else contextlib.nullcontext():  # judging sessions made meanwhile
            yield started
    finally:
        for ahead in started.values():
            ahead.stop()


__all__ = ["AHEAD_MIN_BYTES", "Ahead", "model_bytes", "started_ahead"]
