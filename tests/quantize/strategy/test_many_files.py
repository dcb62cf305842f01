"""With several runtimes installed, auto weighs every faithful recipe's file on every runtime: NNCF's int8
is one more recipe (where installed), each file is judged as each runtime runs it and timed beside the
others, and the fastest faithful one is the artifact, with its own config, lineage and verdict."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeport.benchmarks.openvino_runtime import openvino_version
from edgeport.benchmarks.records import ONNXRUNTIME
from edgeport.cli import main
from edgeport.exporter.metadata import read_metadata
from edgeport.quantize.backends.nncf_onnx import nncf_installed
from edgeport.quantize.config import AutoConfig
from edgeport.quantize.guard.judge import Validation
from edgeport.quantize.inputs.graph import GraphProfile
from edgeport.quantize.source import ModelSource
from edgeport.quantize.strategy.judging import judging_for
from edgeport.quantize.strategy.options import Candidates, Option, options_to_compare
from edgeport.quantize.strategy.payoff import measure_payoff
from edgeport.quantize.strategy.recipes import nncf_recipe, recipes_for
from edgeport.quantize.strategy.timing import one_run
from edgeport.quantize.tolerance import Tolerance

needs_openvino = pytest.mark.skipif(not openvino_version(), reason="the openvino extra is not installed")


def test_nncf_is_one_more_recipe_only_when_asked():
    conv = GraphProfile({"Conv": 20, "Gemm": 1}, 1, [], 0)
    encoder = GraphProfile({"MatMul": 4, "Softmax": 1, "LayerNormalization": 1}, 2, ["scores"], 1)
    assert all(r.quantizer == "onnxruntime" for r in recipes_for(conv, AutoConfig()))
    for profile, scheme in ((conv, "its defaults"), (encoder, "its transformer scheme")):
        nncf = nncf_recipe(profile, AutoConfig())
        assert nncf.name == "nncf" and nncf.quantizer == "nncf" and nncf.config.backend == "nncf"
        assert scheme in nncf.why


def test_other_files_are_options_on_every_runtime():
    labels = [o.label for o in options_to_compare(ONNXRUNTIME, True, with_own=True, others=("int8 (nncf)",))]
    assert "int8 on ort" in labels and "int8 (nncf) on ort" in labels
    if openvino_version():
        assert "int8 (nncf) on openvino" in labels
    assert all(o.model == "fp32" for o in options_to_compare(ONNXRUNTIME, False, others=("int8 (nncf)",)))


def _linear(folder: Path, slow: bool) -> Path:
    """y = x W; ``slow`` adds a large MatMul chain whose result is multiplied by zero: the same outputs,
    several times the work."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=(16, 8)).astype(np.float32), "W")]
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"])]
    if slow:
        inits += [
            numpy_helper.from_array(rng.normal(size=(16, 1024)).astype(np.float32), "A"),
            numpy_helper.from_array(rng.normal(size=(1024, 1024)).astype(np.float32), "B"),
            numpy_helper.from_array(np.zeros((1,), np.float32), "zero"),
        ]
        nodes += [
            helper.make_node("MatMul", ["x", "A"], ["a"]),
            helper.make_node("MatMul", ["a", "B"], ["b"]),
            helper.make_node("ReduceSum", ["b"], ["s"], keepdims=1),
            helper.make_node("Mul", ["s", "zero"], ["nothing"]),
            helper.make_node("Add", ["h", "nothing"], ["y"]),
        ]
    else:
        nodes += [helper.make_node("Identity", ["h"], ["y"])]
    graph = helper.make_graph(
        nodes,
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / ("slow.onnx" if slow else "fast.onnx")
    onnx.save(model, path)
    return path


@needs_openvino
def test_the_fastest_faithful_file_is_the_one_weighed(tmp_path):
    """Two faithful files: the request's own ("int8") and another recipe's, several times faster; choosing
    the runtime weighs the faster one, on whichever runtime runs it fastest."""
    fast, slow = _linear(tmp_path, slow=False), _linear(tmp_path, slow=True)
    inputs = {"x": np.random.default_rng(1).normal(size=(16, 16)).astype(np.float32)}
    validation = Validation(inputs, None, Tolerance(min_cosine=0.99), "val")
    judging = judging_for(ModelSource(onnx_path=fast), inputs, validation)
    guard = judging.judge(slow)
    other = tmp_path / "other.onnx"
    shutil.copy(fast, other)
    paths = {"fp32": fast, "int8": slow, "int8 (other)": other}
    judged = {Option("int8 (other)", ONNXRUNTIME): (True, "within tolerance")}
    candidates = Candidates(paths, one_run(fast, inputs), inputs, judging.judge_outputs, judged)
    payoff = measure_payoff(candidates, guard, ONNXRUNTIME, choose_runtime=True)
    labels = {m.option.label: m for m in payoff.alternatives}
    assert {"int8 on ort", "int8 on openvino", "int8 (other) on ort", "int8 (other) on openvino"} <= set(labels)
    assert labels["int8 (other) on ort"].verdict == "within tolerance"  # given, not judged again
    on_openvino = labels["int8 (other) on openvino"]
    # judged as OpenVINO runs it (the verdict given for onnxruntime is never copied), or not judged at all where
    # a faithful option ran clearly faster: it can never ship then
    assert on_openvino.verdict != "within tolerance"
    assert on_openvino.faithful or (on_openvino.faithful is None and on_openvino.verdict.startswith("not judged: "))
    assert payoff.int8_model == "int8 (other)"
    assert payoff.own() is labels[f"int8 (other) on {payoff.runtime.label()}"]
    assert payoff.describe()["int8_model"] == "int8 (other)"


def test_an_option_that_runs_the_timed_sample_but_fails_on_the_validation_set_does_not_run(tmp_path):
    from edgeport.core.progress import SILENT
    from edgeport.quantize.strategy.options import judge_and_measure

    model = _linear(tmp_path, slow=False)
    inputs = {"x": np.random.default_rng(1).normal(size=(4, 16)).astype(np.float32)}

    def judge_outputs(outputs):
        raise RuntimeError("cannot read these outputs")

    candidates = Candidates({"fp32": model, "int8": model}, one_run(model, inputs), inputs, judge_outputs)
    measured, results = judge_and_measure(
        [Option("fp32", ONNXRUNTIME), Option("int8", ONNXRUNTIME)], candidates, SILENT
    )
    int8 = measured[1]
    assert int8.faithful is False and int8.verdict == "does not run: RuntimeError: cannot read these outputs"
    assert set(results) == {"fp32 on ort", "int8 on ort"}  # timed before it was judged


@needs_openvino
def test_auto_ships_the_file_it_weighed_with_its_own_lineage(tmp_path, capsys):
    model = _linear(tmp_path, slow=False)
    rng = np.random.default_rng(2)
    np.savez(tmp_path / "calib.npz", x=rng.normal(size=(32, 16)).astype(np.float32))
    np.savez(tmp_path / "val.npz", x=rng.normal(size=(32, 16)).astype(np.float32))
    out = tmp_path / "linear.int8.onnx"
    args = ["quantize", str(model), "--calib", str(tmp_path / "calib.npz"), "--val", str(tmp_path / "val.npz")]
    code = main([*args, "-o", str(out), "--speed-check", "--quiet", "--json"])
    manifest = json.loads(capsys.readouterr().out)
    auto, speed = manifest["auto"], manifest["speed"]
    assert code in (0, 1) and auto["ranked_with_runtimes"] is True and auto["ranking_settings"] is None
    recipes = [a["recipe"] for a in auto["attempts"]]
    assert ("nncf" in recipes) is nncf_installed()
    faithful = [a["recipe"] for a in auto["attempts"] if a["within_tolerance"]]
    weighed = {a["model"] for a in speed["alternatives"] if a["model"] != "fp32"}
    # auto's first choice is "int8"; every other faithful recipe's file is weighed under its own name
    assert "int8" in weighed and len(weighed) == len(faithful) >= 2, (faithful, weighed)
    assert weighed - {"int8"} <= {f"int8 ({name})" for name in faithful}
    shipped = speed["int8_model"]
    chosen = next(a for a in auto["attempts"] if a["recipe"] == auto["chosen"])
    assert shipped == "int8" or shipped == f"int8 ({chosen['recipe']})"  # the artifact is the weighed file
    artifact = tmp_path / manifest["artifact"]["path"]
    assert read_metadata(artifact)["backend"] == chosen["backend"] == manifest["lineage"]["quantization"]["backend"]


def test_an_option_clearly_slower_than_a_faithful_one_is_measured_no_more(tmp_path):
    """Two faithful int8 files, one doing several times the work: after two rounds the slow one stops being
    measured (its figures are those rounds'), the fast one and the fp32 reference run every round."""
    from edgeport.core.progress import SILENT
    from edgeport.quantize.strategy.options import OPTIONS, judge_and_measure

    fast, slow = _linear(tmp_path, slow=False), _linear(tmp_path, slow=True)
    inputs = {"x": np.random.default_rng(1).normal(size=(16, 16)).astype(np.float32)}
    judging = judging_for(ModelSource(onnx_path=fast), inputs, Validation(inputs, None, Tolerance(min_cosine=0.99)))
    candidates = Candidates(
        {"fp32": fast, "int8": slow, "int8 (other)": fast}, one_run(fast, inputs), inputs, judging.judge_outputs
    )
    options = [Option("fp32", ONNXRUNTIME), Option("int8", ONNXRUNTIME), Option("int8 (other)", ONNXRUNTIME)]
    measured, results = judge_and_measure(options, candidates, SILENT, keep=[Option("fp32", ONNXRUNTIME)])
    rounds = {m.option.label: m.rounds for m in measured}
    assert rounds == {"fp32 on ort": OPTIONS.rounds, "int8 (other) on ort": OPTIONS.rounds, "int8 on ort": 2}
    slow_one = next(m for m in measured if m.option.label == "int8 on ort")
    assert slow_one.faithful is None and slow_one.verdict.startswith("not judged: int8 (other) on ort is faithful")
    assert slow_one.describe(1.0)["rounds"] == 2 and len(results["int8 on ort"].samples_ms) < len(
        results["int8 (other) on ort"].samples_ms
    )
