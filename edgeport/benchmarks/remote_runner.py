"""edgeport's single-file latency runner for edge devices: needs only Python 3, numpy and onnxruntime (or
openvino, for runtime "openvino").

It is copied to the device by `edgeport bench --remote` and run there as

    python3 remote_runner.py MODEL.onnx SETTINGS.json INPUTS.npz

It prints one JSON object: the raw per-iteration samples, timings and the device's fingerprint. With
``cold_starts`` in the settings it measures the footprint instead: that many cold starts, each in a
fresh process running this file (memory before the session, session creation, first run, peak).
The host computes every statistic. The host's own fingerprint, timing loop, session options and
round split come from this file too, so host and device describe themselves and measure the same way;
hence it imports nothing from edgeport but device_fingerprint.py, which remote.py sends beside it. Exit codes: 0 ok,
3 a package is missing, 4 the benchmark failed, 5 the host went away (settings' watch_stdin).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

if __package__:  # imported on the host, as edgeport.benchmarks.remote_runner
    from edgeport.benchmarks.device_fingerprint import environment_fingerprint
    from edgeport.benchmarks.telemetry import sustained_rounds
else:  # run as a script (on a device, or in a fresh process here): the files sent beside this one
    from device_fingerprint import environment_fingerprint  # type: ignore[no-redef]
    from telemetry import sustained_rounds  # type: ignore[no-redef]


def openvino_config(threads: int, precision) -> dict:
    """OpenVINO's compile settings for a latency measurement, on the host and on the device: one stream,
    the latency hint, ``threads`` inference threads, and the precision hint when one is asked for."""
    config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
    if precision is not None:
        config["INFERENCE_PRECISION_HINT"] = precision
    return config


class OpenVinoRunner:
    """The compiled model's infer request behind ``run(None, feeds)``, as an onnxruntime session runs."""

    def __init__(self, model: str, threads: int, precision) -> None:
        import openvino

        compiled = openvino.Core().compile_model(model, "CPU", openvino_config(threads, precision))
        self.outputs = compiled.outputs
        self.request = compiled.create_infer_request()
        hint = compiled.get_property("INFERENCE_PRECISION_HINT")
        self.precision = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)

    def run(self, _names, feeds: dict) -> list:
        results = self.request.infer(feeds)
        return [results[port] for port in self.outputs]


def timed_runs(session, feeds: dict, count: int) -> list:
    """Milliseconds of ``count`` calls of ``session.run`` on ``feeds``."""
    run, samples = session.run, []
    clock = time.perf_counter_ns
    for _ in range(count):
        start = clock()
        run(None, feeds)
        samples.append((clock() - start) / 1e6)
    return samples


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def current_rss_mb():
    """This process's resident memory now (VmRSS), or None where /proc does not say."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0  # kB
    except (OSError, ValueError, IndexError):
        pass
    return None


# --opt-level name -> onnxruntime.GraphOptimizationLevel member
OPT_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


def session_options(threads: int, optimization_level: str):
    """The onnxruntime.SessionOptions of every benchmark session, on the host and on the device:
    ``threads`` intra-op threads, one inter-op thread, sequential execution."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OPT_LEVELS[optimization_level])
    # Fatal only: ORT's own coloured log line would precede edgeport's one-line error; the exception
    # carries the same text, and edgeport reports it.
    options.log_severity_level = 4
    return options


def split_counts(total: int, rounds: int) -> list[int]:
    """How ``total`` runs are spread over ``rounds`` rounds: never an empty round, sizes at most one apart,
    the larger rounds first. The host finds the round boundaries again with this same function
    (edgeport.benchmarks.rounds re-exports it; this file runs on the device without edgeport)."""
    if total <= 0 or rounds <= 0:
        return []
    rounds = min(total, rounds)
    base, extra = divmod(total, rounds)
    return [base + 1] * extra + [base] * (rounds - extra)


def _session(model: str, settings: dict):
    if settings.get("runtime", "ort") == "openvino":
        return OpenVinoRunner(model, settings["threads"], settings.get("precision"))
    import onnxruntime as ort

    options = session_options(settings["threads"], settings["optimization_level"])
    # onnxruntime's CPU arena keeps what it allocated (about twice the model, for the process's life);
    # a footprint is measured with it and without it
    options.enable_cpu_mem_arena = settings.get("cpu_mem_arena", True)
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def read_inputs(inputs_path: str) -> dict:
    """The host's inputs.npz (np.savez: stored members). This file cannot import edgeport's bounded reader
    (edgeport/data/npz_reader.py), so it keeps the one check that bounds memory here: every member is
    stored, uncompressed, and exactly as long as its .npy header says, so no array can be larger than
    the file the host sent."""
    import zipfile

    import numpy as np

    feeds = {}
    with zipfile.ZipFile(inputs_path) as archive:
        for info in archive.infolist():
            if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
                raise ValueError(f"{inputs_path}: member {info.filename!r} is compressed; the host sends it stored")
            with archive.open(info) as stream:
                version = np.lib.format.read_magic(stream)
                header = (
                    np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                )
                shape, _fortran, dtype = header(stream)
                if dtype.hasobject or info.file_size != stream.tell() + dtype.itemsize * math.prod(shape):
                    raise ValueError(f"{inputs_path}: member {info.filename!r} does not match its .npy header")
            with archive.open(info) as stream:
                feeds[info.filename.removesuffix(".npy")] = np.lib.format.read_array(stream, allow_pickle=False)
    return feeds


def run(model: str, settings: dict, inputs_path: str) -> dict:
    start = time.perf_counter()
    session = _session(model, settings)
    created_ms = (time.perf_counter() - start) * 1e3
    feeds = read_inputs(inputs_path)
    first_ms = timed_runs(session, feeds, 1)[0]
    timed_runs(session, feeds, settings["warmup"])
    telemetry = None
    if settings.get("sustained_s"):
        size = max(1, settings["iterations"] // settings["rounds"])
        round_sizes, samples, telemetry = sustained_rounds(
            lambda: timed_runs(session, feeds, size), settings["sustained_s"]
        )
    else:
        # Exactly ``iterations`` runs: min(iterations, rounds) rounds at most one run apart, the larger first.
        round_sizes = split_counts(settings["iterations"], settings["rounds"])
        samples = []
        for count in round_sizes:
            samples += timed_runs(session, feeds, count)
    return {
        "samples_ms": samples,
        "round_sizes": round_sizes,
        **({"telemetry": telemetry} if telemetry is not None else {}),
        "session_create_ms": created_ms,
        "first_inference_ms": first_ms,
        "peak_rss_mb": peak_rss_mb(),
        "environment": environment_fingerprint(),
        "precision_used": getattr(session, "precision", None),
    }


# Runs after the first one in a cold start, before the peak is read: the arena and the runtime's caches
# grow on the first runs and then hold; a few more show the memory a serving process keeps.
FOOTPRINT_RUNS = 10


def cold_start(model: str, settings: dict, inputs_path: str) -> dict:
    """One cold start in this fresh process (the model file may be in the OS page cache): the memory
    before the session (interpreter, numpy, the runtime's import, the inputs), the session's creation,
    the first run, FOOTPRINT_RUNS more runs, then the process's peak resident memory (VmHWM, what
    `/usr/bin/time -v` reports as its maximum resident set size)."""
    feeds = read_inputs(inputs_path)
    before = current_rss_mb()
    start = time.perf_counter()
    session = _session(model, settings)
    created_ms = (time.perf_counter() - start) * 1e3
    first_ms = timed_runs(session, feeds, 1)[0]
    warm = timed_runs(session, feeds, FOOTPRINT_RUNS)
    peak = peak_rss_mb()
    return {
        "session_create_ms": created_ms,
        "first_inference_ms": first_ms,
        "warm_median_ms": sorted(warm)[len(warm) // 2],
        "rss_before_session_mb": before,
        "peak_rss_mb": peak,
        "model_rss_mb": peak - before if before is not None else None,
        "precision_used": getattr(session, "precision", None),
        "pid": os.getpid(),  # each cold start is a process of its own
    }


def cold_starts(model: str, settings: dict, inputs_path: str, settings_path: str) -> dict:
    """``settings["cold_starts"]`` cold starts, each in a fresh process running this file (so that no
    import, allocation or cache of one start helps the next, and each process's peak is its own)."""
    import subprocess

    starts = []
    for _ in range(settings["cold_starts"]):
        done = subprocess.run(
            [sys.executable, os.path.abspath(__file__), COLD_START, model, settings_path, inputs_path],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise RuntimeError((done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1])
        starts.append(json.loads(done.stdout))
    return {"cold_starts": starts, "environment": environment_fingerprint()}


COLD_START = "--cold-start"  # argv[1] of the child that measures one cold start


def stop_when_the_host_goes() -> None:
    """Exit as soon as stdin reaches end-of-file. The host holds this command's stdin open through ssh
    for as long as it waits for the answer; end-of-file means it is gone (killed, even by SIGKILL, or its
    connection dropped), and no one will read what this run measures. Exit code 5; the shell that
    started this runner then removes its folder (edgeport/benchmarks/remote.py)."""
    import threading

    def watch() -> None:
        # os.read on the descriptor, not sys.stdin: a daemon thread blocked inside the buffered reader holds
        # its lock, and interpreter shutdown then aborts ("could not acquire lock for <stdin>").
        while os.read(0, 4096):  # the host never writes; anything it did is ignored
            pass
        os._exit(5)  # at once, from this thread: the main thread is busy in a timed loop

    threading.Thread(target=watch, name="edgeport-host-watch", daemon=True).start()


def main(argv: list) -> int:
    child = len(argv) == 4 and argv[0] == COLD_START
    if child:
        argv = argv[1:]
    if len(argv) != 3:
        print("usage: remote_runner.py MODEL.onnx SETTINGS.json INPUTS.npz", file=sys.stderr)
        return 2
    settings = json.loads(Path(argv[1]).read_text())
    runtime = "openvino" if settings.get("runtime") == "openvino" else "onnxruntime"
    for package in ("numpy", runtime):
        try:
            __import__(package)
        except ImportError:
            print(f"missing package on the device: {package} (pip install {package})", file=sys.stderr)
            return 3
    if settings.get("watch_stdin") and not child:  # the parent watches; a child ends on its own in seconds
        stop_when_the_host_goes()
    try:
        if child:
            result = cold_start(argv[0], settings, argv[2])
        elif settings.get("cold_starts"):
            result = cold_starts(argv[0], settings, argv[2], argv[1])
        else:
            result = run(argv[0], settings, argv[2])
    except Exception as exc:  # report any failure as one line for the host
        print(f"benchmark failed on the device: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 4
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
