"""The records of a measurement (edgeport/benchmarks/records.py): one RuntimeChoice in the settings, stored
in the flat form result files have always had."""

import pytest

from edgeport.benchmarks.records import ONNXRUNTIME, BenchSettings, RuntimeChoice, recorded_runtime
from edgeport.errors import ConfigError


def test_the_runtime_travels_as_one_choice_and_is_stored_as_two_flat_fields():
    assert BenchSettings().runtime == ONNXRUNTIME
    stored = BenchSettings(runtime=RuntimeChoice("openvino", "bf16"), threads=2).to_dict()
    assert list(stored)[-2:] == ["runtime", "precision"]  # where they always were: last
    assert stored["runtime"] == "openvino" and stored["precision"] == "bf16" and stored["threads"] == 2
    assert not any(isinstance(value, dict) for value in stored.values())
    assert recorded_runtime(stored) == ("openvino", "bf16")
    assert recorded_runtime({"batch": 1}) == ("ort", None)  # a result written before runtimes existed


def test_a_runtime_is_a_runtime_choice_and_checked():
    with pytest.raises(ConfigError, match="RuntimeChoice"):
        BenchSettings(runtime="openvino")  # type: ignore[arg-type]  # the mistake this test is about
    with pytest.raises(ConfigError, match="not one of"):
        RuntimeChoice("tensorrt")
    with pytest.raises(ConfigError, match="runs on the CPU"):
        BenchSettings(runtime=RuntimeChoice("openvino"), provider="cuda")
    assert RuntimeChoice("openvino", "f16").label() == "openvino/f16" and ONNXRUNTIME.label() == "ort"
