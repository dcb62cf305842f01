"""What hardware and software a measurement was taken on.

The code lives in the single-file device runner, so that host and device fingerprints are
computed by the same lines.
"""

from edgeport.benchmarks.remote_runner import ISA_FLAGS, cpu_fingerprint, environment_fingerprint

__all__ = ["ISA_FLAGS", "cpu_fingerprint", "environment_fingerprint"]
