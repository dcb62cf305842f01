"""edgeport.benchmarks as a package: it imports without torch (edge boards, CI gates), and what it exports."""

import subprocess
import sys

from tests.benchmarks.no_torch import BLOCK_TORCH


def test_benchmarks_import_without_torch():
    code = (
        BLOCK_TORCH + "import edgeport.benchmarks, edgeport.benchmarks.latency, edgeport.benchmarks.compare\n"
        "import edgeport.benchmarks.rounds, edgeport.benchmarks.remote_runner, edgeport.benchmarks.remote\n"
        "import edgeport.benchmarks.records, edgeport.benchmarks.session, edgeport.core.bench_defaults\n"
        # the bench job too: only `edgeport bench --torch` imports torch, inside the function that needs it
        "import edgeport.benchmarks.job, edgeport.benchmarks.request, edgeport.benchmarks.torch_latency\n"
        "assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules)\n"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
