"""How long does the shipped example search take, and how much does staging save?

Runs `edgeport search --config examples/search-digits.toml` three times into fresh folders:
cold with 1 worker, cold with 2 workers (each with an empty stage cache), then warm (cache of the
first run). Goals: the cold 12-trial grid under 3 minutes on this machine, and the warm rerun builds
nothing. Appends a table to perf/RESULTS.md; exits 1 when a goal is missed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "search-digits.toml"
COLD_GOAL_S = 180


def search(out: Path, *args: str) -> tuple[float, dict]:
    start = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgeport.cli",
            "search",
            "--config",
            str(EXAMPLE),
            "--out",
            str(out),
            "--quiet",
            "--json",
            *args,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    seconds = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"search failed: {proc.stderr}")
    return seconds, json.loads(proc.stdout)


def built(summary: dict) -> str:
    return ", ".join(f"{stage} {c['built']}" for stage, c in summary["stage_counts"].items())


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        cold_s, cold = search(Path(tmp) / "a")
        workers_s, workers = search(Path(tmp) / "b", "--workers", "2")
        warm_s, warm = search(Path(tmp) / "a")
    warm_builds = sum(c["built"] for c in warm["stage_counts"].values())
    ok = cold_s < COLD_GOAL_S and warm_builds == 0
    chosen = cold["best"]["metrics"] if cold.get("best") else None
    lines = [
        f"\n## `edgeport search` on examples/search-digits.toml (`python perf/search.py`, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC)\n",
        "| run | wall | stages built | verdict |",
        "|---|---:|---|---|",
        f"| cold, 1 worker | {cold_s:.0f} s | {built(cold)} | {'pass' if cold_s < COLD_GOAL_S else 'FAIL'} "
        f"(goal < {COLD_GOAL_S} s) |",
        f"| cold, --workers 2 | {workers_s:.0f} s | {built(workers)} | |",
        f"| warm (same --out, cache reused) | {warm_s:.0f} s | {built(warm)} | "
        f"{'pass' if warm_builds == 0 else 'FAIL'} (goal: nothing rebuilt) |",
        "",
    ]
    if chosen:
        lines.append(
            f"Chosen: {cold['chosen'][:8]} ({chosen['kind']}), val {chosen['val_accuracy']:.2f}%, "
            f"test {chosen['test_accuracy']:.2f}%, p90 {chosen['latency']['p90_ms'] * 1000:.0f} us.\n"
        )
    text = "\n".join(lines)
    with open(Path(__file__).parent / "RESULTS.md", "a") as handle:
        handle.write(text)
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
