from __future__ import annotations

import numpy as np
import pytest

from edgeport.data import Normalizer, Splits, load_dataset, split_dataset


@pytest.fixture(autouse=True, scope="session")
def _no_speed_check():
    """`edgeport quantize` and `run` ship int8 only when it measures faster than fp32 here; on the suite's tiny
    models that is a property of the machine, not of the behaviour under test. Session-wide, so module and
    session fixtures that run the CLI see it too; tests of the speed rule itself pass --speed-check, which
    overrides it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EDGEPORT_SPEED_CHECK", "0")
        yield


@pytest.fixture(scope="session")
def digits16() -> Splits:
    """Digits at 16x16, normalised: small enough to train on in seconds."""
    data = load_dataset("digits", image_size=16)
    splits = split_dataset(data, 0.15, 0.15, seed=0)
    norm = Normalizer.fit(splits.train.x)
    return Splits(*(part.with_x(norm(part.x)) for part in (splits.train, splits.val, splits.test)))


@pytest.fixture(scope="session")
def trained_cnn(digits16):
    """A small CNN trained for a few epochs on digits16 (shared by export and quantization tests)."""
    import torch

    from edgeport.distill import TrainConfig, TrainData, train
    from edgeport.models import build_model

    # seeded before construction, as the product does (stages/train.seeded_model): unseeded initial weights
    # made every session's model, and the quantizers' error on it, different (NNCF's SQNR ranged 14-27 dB)
    torch.manual_seed(0)
    model = build_model("cnn:width=1,depth=3", 1, 10, 16)
    data = TrainData(digits16.train.x, digits16.train.y, digits16.val.x, digits16.val.y)
    train(model, data, TrainConfig(epochs=4, lr=1e-2, seed=0))
    return model


@pytest.fixture(scope="session")
def fp32_onnx(tmp_path_factory, trained_cnn, digits16):
    from edgeport.exporter import export_onnx

    path = tmp_path_factory.mktemp("onnx") / "cnn.fp32.onnx"
    export_onnx(trained_cnn, digits16.train.x[:2], path, "torchscript", parity_inputs=digits16.val.x)
    return path


@pytest.fixture
def rng():
    return np.random.default_rng(0)
