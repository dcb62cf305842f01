"""A search over 12 candidates measured on a pool of three loopback devices, against the same search on one
device, and on the pool again with one device killed mid-search (`edgeport search --pool`).

    python perf/pool.py [--no-append]

Each device is a real sshd on 127.0.0.1 (its own port and keys; tests/sshd.py) whose Python is this one.
The shipped example search (examples/search-digits.toml, its first 12 candidates) is built once first,
measured on this host, so that the timed searches share every build and differ only in where they
measure. Checks (the issue "edge targets for real"):
- the search on three devices takes <= 0.45x the wall time of the search on one device (both timed whole:
  Ray's start, the probes, every measurement);
- both searches end with 12 measured trials, and the pool's devices each measured a share of them;
- with one device killed when its second measurement starts (its sshd and every session), the search
  still ends with 12 measured trials, the killed device's finished measurement is kept (its trial names
  it), and its killed measurement went to another device.
Loopback devices share this machine's cores: three one-thread measurements at once on two cores cannot
run three times as fast, which the table states beside the ratio (the devices' summed busy time over the
measuring wall time says how many ran at once). Appends a section to perf/RESULTS.md; exits 1 when a
check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from perf_common import append_results, cpu_line, run_cli, verdict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests/sshd.py: the loopback devices the tests use

from edgeport.benchmarks.fingerprint import cpu_fingerprint  # noqa: E402
from tests.sshd import devices_entry, dying_python, start_sshd  # noqa: E402

EXAMPLE = ROOT / "examples" / "search-digits.toml"
TRIALS = 12
GOAL = 0.45


def _tags(run: str) -> str:
    """Each timed run is its own kind of device: a latency cached by one run (devices of a kind stand in for
    each other) is not reused by the next, which measures everything again."""
    return f'board = "loopback", run = "{run}"'


def _search(out: Path, cache: Path, folder: Path, *extra: str) -> dict:
    args = ["search", "--config", str(EXAMPLE), "--out", str(out), "--cache", str(cache), "--quiet", "--json"]
    result = run_cli([*args, "--max-trials", str(TRIALS), "--allow-large-grid", *extra], folder)
    if result["code"] != 0:
        raise SystemExit(f"search {' '.join(extra)} exited {result['code']}: {result['stderr'][-2000:]}")
    summary = json.loads(result["stdout"])
    search_folder = next(out.glob("search-*"))
    trials = json.loads((search_folder / "trials.json").read_text())
    return {"wall_s": result["wall_s"], "summary": summary, "trials": trials}


def _busy(trials: list[dict]) -> float:
    """How many measurements ran at once on average: their summed windows over the span they cover."""
    windows = [t["timings"]["windows"]["benchmark"] for t in trials if t["timings"]["windows"].get("benchmark")]
    if not windows:
        return 0.0
    span = max(w[1] for w in windows) - min(w[0] for w in windows)
    return sum(w[1] - w[0] for w in windows) / span if span > 0 else 0.0


def _devices_row(run: dict) -> str:
    return ", ".join(
        f"{d['name']} {d['measurements']}" + ("" if d["state"] == "up" else " (down)")
        for d in run["summary"]["run"]["pool"]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-append", action="store_true", help="print, do not append to RESULTS.md")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgeport-pool-") as tmp:
        folder = Path(tmp)
        daemons = {name: start_sshd(folder / name) for name in ("dev0", "dev1", "dev2")}
        try:
            cache = folder / "cache"
            _search(folder / "build", cache, folder)  # every build, measured here: not timed
            one = folder / "one.toml"
            one.write_text(devices_entry("dev0", daemons["dev0"], tags=_tags("one")))
            three = folder / "three.toml"
            three.write_text("".join(devices_entry(n, d, tags=_tags("three")) for n, d in daemons.items()))
            killed = folder / "killed.toml"
            doomed = dying_python(folder / "doomed-python", daemons["dev2"], at_run=2)
            killed.write_text(
                devices_entry("dev0", daemons["dev0"], tags=_tags("killed"))
                + devices_entry("dev1", daemons["dev1"], tags=_tags("killed"))
                + devices_entry("dev2", daemons["dev2"], doomed, tags=_tags("killed"))
            )
            runs = {
                "one device": _search(folder / "one", cache, folder, "--pool", str(one)),
                "three devices": _search(folder / "three", cache, folder, "--pool", str(three)),
                "three devices, dev2 killed": _search(folder / "killed", cache, folder, "--pool", str(killed)),
                # every latency cached by the first run: what a search costs besides measuring
                "one device, nothing to measure": _search(folder / "again", cache, folder, "--pool", str(one)),
            }
        finally:
            for daemon in daemons.values():
                daemon.stop()
    ok = {name: sum(t["status"] == "ok" for t in run["trials"]) for name, run in runs.items()}
    ratio = runs["three devices"]["wall_s"] / runs["one device"]["wall_s"]
    dying = runs["three devices, dev2 killed"]
    dev2 = next(d for d in dying["summary"]["run"]["pool"] if d["name"] == "dev2")
    named = sum(t["metrics"].get("latency_device") == "dev2" for t in dying["trials"] if t["status"] == "ok")
    spread = [d["measurements"] for d in runs["three devices"]["summary"]["run"]["pool"]]
    checks = [
        ("wall time, 3 devices / 1 device", f"{ratio:.2f}x", f"<= {GOAL}x", ratio <= GOAL),
        ("measured trials (each run above, in order)", " / ".join(str(n) for n in ok.values()), f"{TRIALS} each",
         all(n == TRIALS for n in ok.values())),
        ("measurements per device, 3 devices", ", ".join(map(str, spread)), "every device a share",
         min(spread) > 0 and sum(spread) == TRIALS),
        ("dev2 killed at its 2nd measurement", f"{dev2['state']}, {dev2['measurements']} kept, {named} trial(s) "
         "name it", "down, 1 kept and named", dev2["state"] == "down" and dev2["measurements"] == 1 and named == 1),
    ]  # fmt: skip
    table = ["| run | wall | measurements per device | measurements at once (mean) |", "|---|---|---|---|"]
    table += [
        f"| {name} | {run['wall_s']:.1f} s | {_devices_row(run)} | {_busy(run['trials']):.2f} |"
        for name, run in runs.items()
    ]
    table += ["", "| check | measured | goal | verdict |", "|---|---|---|---|"]
    table += [f"| {what} | {measured} | {goal} | {verdict(good)} |" for what, measured, goal, good in checks]
    cores = os.cpu_count() or 1
    intro = (
        f"{cpu_line(cpu_fingerprint())}. `edgeport search --config examples/search-digits.toml --max-trials "
        f"{TRIALS} --allow-large-grid --pool DEVICES` with every build in a shared stage cache (made first, "
        "not timed): the runs differ only in where they measure. Devices: sshd on 127.0.0.1, each with its own "
        f"port and keys, running this Python; they share this machine's {cores} logical cores, so "
        f"{min(3, cores)} one-thread measurements at a time is the most that can run side by side here."
    )
    fixed = runs["one device, nothing to measure"]["wall_s"]
    measuring = (runs["three devices"]["wall_s"] - fixed) / max(runs["one device"]["wall_s"] - fixed, 1e-9)
    text = [
        "Bench settings of the example: batch 1, one thread, 50 warm-up and 600 timed runs in 6 rounds per trial. "
        f"A search with nothing to measure took {fixed:.1f} s (Python and Ray's start, the devices' probes, "
        f"judging and the reports); beyond it, measuring on three devices took {measuring:.2f}x the time it took "
        "on one."
    ]
    if options.no_append:
        print(intro, *table, *text, sep="\n")
    else:
        append_results("Search on a device pool (3 loopback devices)", "pool.py", intro, table, text)
    return 0 if all(good for *_, good in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
