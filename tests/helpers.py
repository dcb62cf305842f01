"""Small building blocks shared by the tests (also a user-model factory for the registry tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import nn

from edgeport.benchmarks.records import BenchResult
from edgeport.core.bench_defaults import PAYS_BELOW


def tiny_factory(in_channels: int, num_classes: int, hidden: int = 8) -> nn.Module:
    """A user model reachable as 'tests.helpers:tiny_factory'."""
    return nn.Sequential(
        nn.Conv2d(in_channels, hidden, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(hidden, num_classes),
    )


def not_a_module(in_channels: int, num_classes: int):
    return "not a model"


def write_npz(path, n=60, classes=3, size=8, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = rng.random((n, channels, size, size)).astype(np.float32)
    x[:, :, : size // 2] += y[:, None, None, None] * 0.5  # learnable signal: class shifts the top half
    np.savez(path, x=x, y=y)
    return x, y


def plant_outlier_channel(src, dst, factor=3000.0):
    """Scale channel 0 of the first conv by ``factor`` and the second conv's matching input by 1/factor.

    ReLU and max-pooling commute with a positive scale, so the fp32 model computes the same
    function, but per-tensor ranges of the first two layers are now dominated by one channel:
    the forced damage that accuracy-aware fallback must find and undo.

    At 300x the second layer's damage alone was not reliable: with the first conv in float, the model
    scored anywhere from 17% to 97% depending on the trained weights (a CI run passed the tolerance).
    At 3000x an ordinary channel gets less than a tenth of one 8-bit step, so each layer alone breaks it.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    inits = {i.name: i for i in model.graph.initializer}
    first, second = [n for n in model.graph.node if n.op_type == "Conv"][:2]

    def rescale(name, index, value):
        array = numpy_helper.to_array(inits[name]).copy()
        array[index] *= value
        inits[name].CopyFrom(numpy_helper.from_array(array, name))

    rescale(first.input[1], 0, factor)
    if len(first.input) > 2:
        rescale(first.input[2], 0, factor)
    rescale(second.input[1], (slice(None), 0), 1.0 / factor)
    onnx.save(model, str(dst))
    return first.name, second.name


# A search small enough for tests: 16x16 digits, 2-epoch models, short benchmarks, and the TorchScript
# exporter (about 0.3 s a student where the default dynamo exporter takes several seconds: the search's
# tests are about orchestration; tests/exporter tests both exporters). A run with it measures no footprint
# (cold_starts = 0: 12 fresh processes otherwise); tests/cli/test_cli.py's run and tests/benchmarks do.
TINY_RUN = """
[run]
seed = 0
[run.data]
image_size = 16
[run.teacher]
model = "cnn:width=1,depth=3"
epochs = 2
[run.student]
model = "cnn:depth=3"
epochs = {student_epochs}
[run.export]
exporter = "torchscript"
[run.quantize]
calibration_samples = 64
[run.bench]
warmup = 20
iterations = 240
rounds = 4
cold_starts = 0
"""


def tiny_config(
    tmp_path: Path, space: str, search: str = "", student_epochs: int = 2, name: str = "search.toml"
) -> Path:
    path = tmp_path / name
    path.write_text(TINY_RUN.format(student_epochs=student_epochs) + f"\n[search]\n{search}\n[search.space]\n{space}\n")
    return path


TINY_SPACE = '"student.model.width" = [0.5, 1]\n"quantize.backend" = ["none", "ort-static"]\n'


def assert_chosen_by_the_tie_rule(
    p50_ms: dict[str, float], chosen: str, fidelity: dict[str, float] | None = None
) -> None:
    """The tie rule as a manifest shows it (``benchmarks.speedup.tied_with_fastest``). ``p50_ms``: each
    option's p50, in the order they were listed; ``fidelity``: each one's (auto breaks ties by it, the
    runtime choice does not). An option within PAYS_BELOW of the fastest's p50 cannot have been beaten clearly
    (the interval the rule also asks for is not in the manifest), so it was tied: the chosen one is the
    most faithful of those, then the earliest."""
    assert chosen in p50_ms, (chosen, p50_ms)
    fastest = min(p50_ms.values())
    names = list(p50_ms)
    for name in names:
        if name == chosen or fastest <= PAYS_BELOW * p50_ms[name]:  # chosen, or maybe beaten clearly
            continue
        earlier = names.index(name) < names.index(chosen)
        if fidelity is None:
            assert not earlier, f"{chosen} chosen over {name}, listed first and tied with the fastest: {p50_ms}"
        elif earlier:
            assert fidelity[name] < fidelity[chosen], f"{chosen} over {name}, as faithful and first: {fidelity}"
        else:
            assert fidelity[name] <= fidelity[chosen], f"{chosen} over {name}, more faithful: {fidelity}"


def bench_result(medians: list[float], seed: int) -> BenchResult:
    """A measurement of one model in len(medians) rounds of 40 runs, each round within 1% of its median."""
    rng = np.random.default_rng(seed)
    rounds = [median * (1 + 0.01 * rng.standard_normal(40)) for median in medians]
    settings = {"batch": 1, "rounds_run": len(rounds), "round_sizes": [len(r) for r in rounds]}
    return BenchResult("m.onnx", "0" * 64, settings, {}, np.concatenate(rounds).tolist())
