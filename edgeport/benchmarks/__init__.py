"""Latency measurement with onnxruntime. Imports numpy and onnxruntime only, never torch,
so the same code runs on an edge board."""

from edgeport.benchmarks.fingerprint import cpu_fingerprint, environment_fingerprint
from edgeport.benchmarks.latency import BenchSettings, measure_interleaved, measure_latency
from edgeport.benchmarks.stats import summarize

__all__ = [
    "BenchSettings",
    "cpu_fingerprint",
    "environment_fingerprint",
    "measure_interleaved",
    "measure_latency",
    "summarize",
]
