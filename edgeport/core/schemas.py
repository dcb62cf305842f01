"""Every schema version edgeport writes, in one place.

A file edgeport writes carries its version; a reader accepts the versions listed here and refuses
any other with one line naming it. Bump a version here when a file's shape changes incompatibly,
and teach the reader (core/manifest.py, gate/evidence.py, search/cache.py) the old shape or refuse it.
"""

from __future__ import annotations

# manifest.json / <artifact>.manifest.json, by the command that writes it
RUN_MANIFEST = 1
QUANTIZE_MANIFEST = 1
SEARCH_MANIFEST = 1
MANIFEST_VERSIONS = {"run": RUN_MANIFEST, "quantize": QUANTIZE_MANIFEST, "search": SEARCH_MANIFEST}

# `edgeport bench -o` result files and the benchmark records inside manifests
BENCH_RESULT = 1

# The search's content-addressed stage cache: part of every stage key, and recorded in the cache root
STAGE_CACHE = 2
