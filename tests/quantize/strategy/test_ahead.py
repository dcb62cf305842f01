"""NNCF started ahead in a child process (strategy/ahead.py), with real NNCF and real processes: the same file
as in process, its errors raised here, a dead child named, a child still running stopped, and auto's
manifest the same either way."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import onnx
import pytest

from edgeport.benchmarks.openvino_runtime import openvino_version
from edgeport.cli import main
from edgeport.errors import ConfigError, QuantizationError
from edgeport.quantize.apply import quantize
from edgeport.quantize.backends.nncf_onnx import NncfConfig
from edgeport.quantize.inputs.run import ort_session
from edgeport.quantize.noise import captured_warnings
from edgeport.quantize.strategy import ahead as ahead_module
from edgeport.quantize.strategy.ahead import Ahead, model_bytes
from tests.quantize.test_calibration_memory import calibration, conv_model

pytest.importorskip("nncf")  # a dev extra: installed by `make test`


def test_started_ahead_writes_the_same_file_as_nncf_in_process(tmp_path):
    model, feeds = conv_model(tmp_path / "m.onnx"), calibration(16)
    config = NncfConfig(reduce_range=False)
    with captured_warnings():
        child = Ahead(model, feeds, config, tmp_path / "ahead.onnx").result()
    here = quantize(model, feeds, config, tmp_path / "here.onnx")
    assert child.path == tmp_path / "ahead.onnx" and child.backend == "nncf"
    assert (tmp_path / "ahead.onnx").read_bytes() == (tmp_path / "here.onnx").read_bytes()
    assert child.report["calibration_runs"] == here.report["calibration_runs"] == 1  # 16 samples in one run
    assert child.report["calibration_batch"] == here.report["calibration_batch"] == 16


def test_the_child_s_error_is_raised_here_as_it_was(tmp_path):
    model = conv_model(tmp_path / "m.onnx")
    config = NncfConfig(reduce_range=False, exclude_nodes=("no_such_node",))
    with pytest.raises(ConfigError, match="no_such_node"):
        Ahead(model, calibration(8), config, tmp_path / "q.onnx").result()


def test_a_child_that_dies_without_an_answer_is_a_quantization_error_naming_the_model(tmp_path):
    model = conv_model(tmp_path / "m.onnx")
    ahead = Ahead(model, calibration(8), NncfConfig(reduce_range=False), tmp_path / "q.onnx")
    os.kill(ahead.pid, signal.SIGKILL)
    with pytest.raises(QuantizationError, match=rf"m\.onnx: backend 'nncf' failed: .*exit code -{int(signal.SIGKILL)}"):
        ahead.result()


def test_a_child_still_running_when_auto_stops_is_ended(tmp_path):
    model = conv_model(tmp_path / "m.onnx")
    ahead = Ahead(model, calibration(8), NncfConfig(reduce_range=False), tmp_path / "q.onnx")
    ahead.stop()  # auto failed or was interrupted before it needed NNCF's file
    with pytest.raises(ProcessLookupError):
        os.kill(ahead.pid, 0)


def test_model_bytes_counts_external_data(tmp_path):
    model = onnx.load(str(conv_model(tmp_path / "m.onnx")))
    onnx.save(model, str(tmp_path / "ext.onnx"), save_as_external_data=True, location="ext.data", size_threshold=0)
    assert model_bytes(tmp_path / "ext.onnx") == sum(
        p.stat().st_size for p in (tmp_path / "ext.onnx", tmp_path / "ext.data")
    )
    assert model_bytes(tmp_path / "m.onnx") == (tmp_path / "m.onnx").stat().st_size


def _auto(capsys, folder, output: str) -> dict:
    files = ["--calib", folder / "calib.npz", "--val", folder / "val.npz", "-o", folder / output]
    code = main(["quantize", "--quiet", "--json", "--speed-check", str(folder / "m.onnx"), *map(str, files)])
    captured = capsys.readouterr()
    assert code in (0, 1), captured.err
    return json.loads(captured.out)


@pytest.mark.skipif(openvino_version() is None, reason="auto tries NNCF where it chooses among runtimes")
def test_auto_records_nncf_the_same_whether_it_ran_ahead_or_in_process(tmp_path, capsys, monkeypatch):
    conv_model(tmp_path / "m.onnx")
    np.savez(tmp_path / "calib.npz", x=calibration(32)["x"])
    np.savez(tmp_path / "val.npz", x=calibration(16, seed=3)["x"])
    in_process = _auto(capsys, tmp_path, "a.onnx")
    started: list[Ahead] = []
    monkeypatch.setattr(ahead_module, "AHEAD_MIN_BYTES", 0)  # this small model too
    monkeypatch.setattr(ahead_module.Ahead, "result", _recording(started, ahead_module.Ahead.result))
    ahead = _auto(capsys, tmp_path, "b.onnx")
    assert len(started) == 1  # NNCF did run in the child
    nncf = [[a for a in m["auto"]["attempts"] if a["recipe"] == "nncf"][0] for m in (in_process, ahead)]
    assert nncf[0]["value"] == nncf[1]["value"] and nncf[1]["error"] is None
    assert in_process["auto"]["chosen"] == ahead["auto"]["chosen"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left


def _recording(started: list, result):
    def wrapper(self):
        started.append(self)
        return result(self)

    return wrapper


def test_warnings_captured_in_the_child_join_the_capture_open_here():
    from edgeport.quantize.noise import add_captured, capturing

    assert not capturing()
    with captured_warnings() as here:
        assert capturing()
        add_captured({"onnxruntime: Axis 1 is out-of-range": 3})  # what a child sends back
    assert here.lines() == ["third-party: onnxruntime: Axis 1 is out-of-range (x3)"]
    with captured_warnings(debug=True) as debug:  # --debug: everything goes through as it happens
        assert not capturing()
        add_captured({"x": 1})
    assert debug.lines() == []


def test_where_no_process_can_be_started_nncf_runs_in_process(tmp_path, monkeypatch):
    import multiprocessing.process

    from edgeport.quantize.strategy.ahead import started_ahead
    from edgeport.quantize.strategy.recipes import Recipe

    def refuse(self):
        raise OSError(11, "Resource temporarily unavailable")  # fork/spawn at a process limit

    monkeypatch.setattr(ahead_module, "AHEAD_MIN_BYTES", 0)
    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", refuse)
    recipe = Recipe("nncf", NncfConfig(reduce_range=False), "NNCF's int8")
    with started_ahead(recipe, conv_model(tmp_path / "m.onnx"), calibration(8), tmp_path / "nncf.onnx") as ahead:
        assert ahead == {}  # try_recipe quantizes it here, as below 32 MiB
        assert _spinning(ort_session(tmp_path / "m.onnx")) == "default"  # nothing beside this process


def test_while_the_child_runs_this_process_s_judging_sessions_do_not_spin(tmp_path, monkeypatch):
    from edgeport.quantize.strategy.ahead import started_ahead
    from edgeport.quantize.strategy.recipes import Recipe

    monkeypatch.setattr(ahead_module, "AHEAD_MIN_BYTES", 0)
    recipe = Recipe("nncf", NncfConfig(reduce_range=False), "NNCF's int8")
    model = conv_model(tmp_path / "m.onnx")
    with started_ahead(recipe, model, calibration(8), tmp_path / "nncf.onnx") as ahead:
        assert list(ahead) == ["nncf"]
        assert _spinning(ort_session(model)) == "0"
    assert _spinning(ort_session(model)) == "default"


def _spinning(session_or_options) -> str:
    options = getattr(session_or_options, "get_session_options", lambda: session_or_options)()
    try:
        return options.get_session_config_entry("session.intra_op.allow_spinning")
    except RuntimeError:  # not set: onnxruntime's default, spinning
        return "default"


def test_the_feeds_reach_the_child_by_their_input_names_whatever_they_are(tmp_path):
    # tf2onnx and paddle2onnx name inputs "serving_default_x:0" or "x/input": not file names, still feeds
    model = onnx.load(str(conv_model(tmp_path / "m.onnx")))
    renamed = "serving/x:0"
    for node in model.graph.node:
        node.input[:] = [renamed if name == "x" else name for name in node.input]
    model.graph.input[0].name = renamed
    onnx.save(model, str(tmp_path / "named.onnx"))
    feeds = {renamed: calibration(16)["x"]}
    config = NncfConfig(reduce_range=False)
    with captured_warnings():
        child = Ahead(tmp_path / "named.onnx", feeds, config, tmp_path / "ahead.onnx").result()
    quantize(tmp_path / "named.onnx", feeds, config, tmp_path / "here.onnx")
    assert (tmp_path / "ahead.onnx").read_bytes() == (tmp_path / "here.onnx").read_bytes()
    assert child.report["calibration_runs"] == 1 and child.report["calibration_batch"] == 16
    assert not list(tmp_path.glob("*.npz"))  # the child removed the feeds' file once read


def test_sessions_made_beside_the_child_do_not_spin_wait(tmp_path):
    import onnxruntime

    from edgeport.quantize.inputs.run import cores_shared

    with ahead_module._sessions_without_spinning():  # what NNCF's sessions are made with in the child
        assert _spinning(onnxruntime.SessionOptions()) == "0"
    assert _spinning(onnxruntime.SessionOptions()) == "default"  # restored on leaving
    model = conv_model(tmp_path / "m.onnx")
    assert _spinning(ort_session(model)) == "default"  # alone, spinning pays
    with cores_shared():  # while the child runs: this process's judging sessions do not spin either
        assert _spinning(ort_session(model)) == "0"
        assert _spinning(ort_session(model, spinning=True)) == "default"
    assert _spinning(ort_session(model)) == "default"
