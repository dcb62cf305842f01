"""The warm-up, iteration and round counts each benchmarking entry point starts from, in one place.

The sets differ on purpose (each comment says who uses it and why); keeping them side by side makes a
difference visible and stops a value from drifting in one copy only. Imports nothing but the standard
library: config.py imports this module and must stay light (no numpy, scipy or onnxruntime).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BenchDefaults:
    warmup: int  # untimed runs before measuring
    iterations: int  # timed runs per model and setting
    rounds: int  # rounds the runs are split into (interleaving and round statistics)


# BenchSettings() in edgeport.benchmarks: what a Python caller gets without choosing counts (measure_latency,
# measure_torch, the perf/ scripts). The shortest set: a quick look, not a number to record; everything
# that records or decides on a latency passes its own counts.
LIBRARY = BenchDefaults(warmup=50, iterations=500, rounds=10)

# `edgeport run` and `edgeport search`: the [bench] section of a config (config.BenchSection), turned into
# BenchSettings for every model measured. The latency lands in the manifest that the gate later checks
# against budgets, so it takes the long measurement: 2,000 runs put about 200 samples above the p90.
RUN = BenchDefaults(warmup=100, iterations=2000, rounds=10)

# `edgeport gate --artifact` measuring itself (gate GateRequest, and cli/gate.py's --iterations default):
# a pass/fail decision in CI, so the same counts as RUN: the gate measures as the run it checks did.
# Kept as its own name because it is the gate's own option default, documented in docs/gate.md.
GATE = BenchDefaults(warmup=100, iterations=2000, rounds=10)

# `edgeport bench` (--warmup, --iterations and --rounds defaults): interactive, so half RUN's runs and
# warm-up, still ten times the 100 samples a p99 needs (benchmarks/stats.py MIN_SAMPLES).
CLI_BENCH = BenchDefaults(warmup=50, iterations=1000, rounds=10)


# Limits of `edgeport bench` (docs/bench.md, "Bad input"): beyond them a run would not measure what was
# meant, or would not finish, so the option is refused up front.
# Synthetic inputs made for one model: `--batch 1000000000` or a fixed axis of 2**40 asked numpy for
# terabytes and died with a MemoryError; real inputs of that size are a job for --inputs anyway.
MAX_SYNTHETIC_INPUT_BYTES = 2 * 1024**3
# --threads on this machine: up to this many per logical core (oversubscription is measured, with a
# warning; `--threads 100000` ran past 120 s without a result).
MAX_THREADS_PER_CORE = 4
# --threads with --remote, where the device's core count is unknown until it has been reached.
MAX_REMOTE_THREADS = 1024


# int8 pays when its p50 is at most this share of its fp32 source's on the same runtime and settings: a 1-2 %
# "win" is within the noise of a short interleaved measurement (two sessions of one file differ by up to
# 10 %), and no reason to ship int8. `edgeport quantize` (quantize/strategy/payoff.py), `edgeport run` and
# `edgeport search` (an int8 trial against its own fp32 twin) all ask it.
PAYS_BELOW = 0.95
