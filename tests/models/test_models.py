import pytest
import torch

from edgeport.errors import ModelError
from edgeport.models import ModelSpec, build_model, list_models, register_model
from edgeport.models.checkpoint import load_checkpoint_model, load_weights, save_checkpoint
from edgeport.models.cnn import cnn_channels


def test_registry_has_the_documented_models():
    assert {"cnn", "resnet-cifar", "resnet18", "mobilenet_v2", "mobilenet_v3_small"} <= set(list_models())


def test_register_refuses_duplicates():
    with pytest.raises(ValueError, match="already registered"):
        register_model("cnn")(lambda in_channels, num_classes: None)


@pytest.mark.parametrize("name", ["cnn", "resnet-cifar:depth=8", "resnet18", "mobilenet_v2", "mobilenet_v3_small"])
@pytest.mark.parametrize("channels, classes", [(1, 10), (3, 4)])
def test_every_model_adapts_to_channels_and_classes(name, channels, classes):
    model = build_model(name, channels, classes, 32).eval()
    with torch.no_grad():
        out = model(torch.randn(2, channels, 32, 32))
    assert out.shape == (2, classes)


def test_cnn_width_and_depth():
    assert cnn_channels(1.0, 3) == [16, 32, 64]
    assert cnn_channels(2.0, 4) == [32, 64, 128, 256]
    small = build_model("cnn:width=0.5,depth=2", 1, 10, 32)
    large = build_model("cnn:width=2,depth=4", 1, 10, 32)
    assert sum(p.numel() for p in large.parameters()) > 50 * sum(p.numel() for p in small.parameters())


def test_spec_parsing():
    assert ModelSpec.parse("cnn:width=0.5,depth=3") == ModelSpec("cnn", {"width": 0.5, "depth": 3})
    user = ModelSpec.parse("tests.helpers:tiny_factory:hidden=4")
    assert user.name == "tests.helpers:tiny_factory" and user.options == {"hidden": 4}
    assert str(ModelSpec.parse("cnn:depth=3,width=1")) == "cnn:depth=3,width=1"


def test_user_factory():
    model = build_model("tests.helpers:tiny_factory:hidden=4", 1, 3, 16)
    assert model(torch.randn(1, 1, 16, 16)).shape == (1, 3)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("vgg", "unknown model 'vgg'"),
        ("cnn:colour=red", "unknown option"),
        ("cnn:width", "options are written key=value"),
        ("cnn:width=2,depth", "not key=value"),
        ("cnn:depth=99", "depth must be"),
        ("resnet-cifar:depth=10", "6n\\+2"),
        ("no_such_pkg.mod:factory", "cannot import"),
        ("tests.helpers:missing", "no callable"),
        ("tests.helpers:not_a_module", "expected torch.nn.Module"),
        ("", "empty"),
    ],
)
def test_bad_specs_raise_model_error(spec, message):
    with pytest.raises(ModelError, match=message):
        build_model(spec, 1, 10, 32)


def test_checkpoint_roundtrip(tmp_path):
    spec = ModelSpec.parse("cnn:width=0.5,depth=2")
    model = build_model(spec, 1, 10, 16).eval()
    path = save_checkpoint(model, tmp_path / "m.safetensors", spec, 1, 10, 16)
    loaded = load_checkpoint_model(path, spec, 1, 10, 16)
    x = torch.randn(3, 1, 16, 16)
    assert torch.equal(model(x), loaded(x))


def test_checkpoint_errors(tmp_path):
    spec = ModelSpec.parse("cnn:width=0.5,depth=2")
    path = save_checkpoint(build_model(spec, 1, 10, 16), tmp_path / "m.safetensors", spec, 1, 10, 16)
    with pytest.raises(ModelError, match="do not fit"):
        load_weights(build_model("cnn:width=1,depth=2", 1, 10, 16), path)
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(ModelError, match="junk.safetensors"):
        load_weights(build_model(spec, 1, 10, 16), tmp_path / "junk.safetensors")
    with pytest.raises(ModelError, match="not found"):
        load_weights(build_model(spec, 1, 10, 16), tmp_path / "absent.safetensors")
