import pytest

from edgeport.config import load_config
from edgeport.errors import ConfigError


def test_defaults():
    config = load_config()
    assert config.data.name == "digits" and config.data.image_size == 32
    assert config.quantize.backend == "auto" and config.quantize.reduce_range == "auto"


@pytest.mark.parametrize(
    "table, backend",
    [
        ("calibration_samples = 64\nmax_accuracy_drop = 1.0\n", "auto"),  # auto takes both: still auto
        ("per_channel = true\nformat = 'qdq'\n", "auto"),  # the static options at their defaults ask nothing
        ("per_channel = false\n", "ort-static"),  # written for onnxruntime's static backend: it stays that
        ("calibration_method = 'entropy'\ncalibration_samples = 64\n", "ort-static"),
        ("backend = 'ort-dynamic'\n", "ort-dynamic"),
    ],
)
def test_a_quantize_table_without_backend_is_autos_unless_it_sets_static_options(tmp_path, table, backend):
    path = tmp_path / "edgeport.toml"
    path.write_text("[run.quantize]\n" + table)
    assert load_config(path).quantize.backend == backend


def test_file_then_overrides(tmp_path):
    path = tmp_path / "edgeport.toml"
    path.write_text("[run]\nseed = 3\n[run.student]\nepochs = 2\ntemperature = 2.5\n")
    config = load_config(path, {"student": {"epochs": 5}})
    assert config.seed == 3 and config.student.epochs == 5 and config.student.temperature == 2.5


@pytest.mark.parametrize(
    "text, message",
    [
        ("[run]\nsed = 3\n", "field 'sed': unknown key"),
        ("[run.student]\nepochs = 0\n", "field 'student.epochs'.*greater than 0.*got 0"),
        ("[run.student]\nepochs = '3'\n", "student.epochs"),
        ("[run.quantize]\nformat = 'int4'\n", "quantize.format"),
        ("[deploy]\n", "unknown table"),
        ("[run\n", "not valid TOML"),
    ],
)
def test_bad_files_name_file_and_field(tmp_path, text, message):
    path = tmp_path / "edgeport.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.toml")


def test_shipped_example_is_valid_and_matches_the_defaults():
    from pathlib import Path

    example = Path(__file__).parent.parent / "examples" / "edgeport.toml"
    assert load_config(example) == load_config()
    small = load_config(example.with_name("small-student.toml"))  # the documented second example loads
    assert small.student.model == "cnn:width=1,depth=2" and small.student.kd_loss == "standardized"


def test_config_and_cli_import_light():
    """The CLI answers --help and bad options without loading numpy, onnxruntime or torch: the typed
    quantization configs are looked up only when a config is validated."""
    import subprocess
    import sys

    code = (
        "import sys, edgeport.cli, edgeport.config\n"
        "heavy = [m for m in ('numpy', 'onnxruntime', 'onnx', 'torch', 'scipy') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_quantize_section_is_typed_per_backend(tmp_path):
    from edgeport.quantize import config_types

    path = tmp_path / "p.toml"
    path.write_text('[run.quantize]\nbackend = "torch-fx"\nengine = "fbgemm"\nper_channel = false\n')
    config = load_config(path)
    assert isinstance(config.quantize, config_types()["torch-fx"])
    assert config.quantize.engine == "fbgemm" and config.quantize.per_channel is False
    # another backend's option at its default asks nothing (the shipped example lists them all) ...
    path.write_text('[run.quantize]\nbackend = "torch-fx"\nformat = "qdq"\n')
    assert "format" not in load_config(path).quantize.model_dump()
    # ... but a value the backend would ignore is refused, naming the file, the field and what it supports
    path.write_text('[run.quantize]\nbackend = "torch-fx"\nformat = "qoperator"\n')
    with pytest.raises(ConfigError, match=r"p.toml: field 'quantize.format': backend 'torch-fx' does not support"):
        load_config(path)
    path.write_text('[run.quantize]\nbackend = "torch-pt2e"\nengine = "fbgemm"\n')
    with pytest.raises(ConfigError, match=r"quantize.engine': quantization engine 'fbgemm' is not one of x86, qnnpack"):
        load_config(path)
