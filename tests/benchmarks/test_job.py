"""`edgeport bench` (edgeport/benchmarks/job.py, its request and options), as a user runs it, and the
BenchRequest the command builds once."""

import json
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgeport.benchmarks.job import run_bench
from edgeport.benchmarks.records import BenchSettings, RuntimeChoice
from edgeport.benchmarks.request import BenchRequest, TorchModel
from edgeport.cli import main
from edgeport.errors import ConfigError


@pytest.fixture(scope="module")
def student_pair(tmp_path_factory):
    """The default digits student architecture (random weights) in fp32 and ORT static int8."""
    import torch

    from edgeport.exporter import write_onnx
    from edgeport.models import build_model
    from edgeport.quantize import quant_config, quantize

    folder = tmp_path_factory.mktemp("bench")
    torch.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((32, 1, 32, 32)).astype(np.float32)
    fp32 = write_onnx(build_model("cnn:width=2,depth=4", 1, 10, 32).eval(), x, folder / "fp32.onnx", "torchscript")
    quantize(fp32, {"input": x}, quant_config(reduce_range=True), folder / "int8.onnx")
    np.savez(folder / "inputs.npz", x=x[:4])
    return folder


def _bench(capsys, *args):
    code = main(["bench", "--quiet", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_bench_sweep_writes_result_json(student_pair, capsys):
    out = student_pair / "result.json"
    code, stdout, err = _bench(
        capsys,
        student_pair / "fp32.onnx",
        "--batch",
        "1,4",
        "--threads",
        "1",
        "--iterations",
        200,
        "--warmup",
        5,
        "-o",
        out,
    )
    assert code == 0, err
    assert "p50 ms" in stdout
    report = json.loads(out.read_text())
    assert [r["settings"]["batch"] for r in report["results"]] == [1, 4]
    first = report["results"][0]
    assert len(first["samples_ms"]) == 200 and first["stats"]["p50_ms"] == pytest.approx(
        float(np.percentile(first["samples_ms"], 50))
    )
    assert first["environment"]["cpu"]["logical_cores"] >= 1 and first["schema_version"] == 1
    assert first["session_create_ms"] > 0 and first["first_inference_ms"] > 0 and first["peak_rss_mb"] > 0


def _matmul_chain(path, layers: int):
    """[N, 256] through ``layers`` MatMuls of 256x256: work proportional to ``layers``, nothing else."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(layers)
    weights = [
        numpy_helper.from_array(rng.standard_normal((256, 256)).astype(np.float32) / 16, f"w{i}") for i in range(layers)
    ]
    names = ["x", *[f"h{i}" for i in range(1, layers)], "y"]
    nodes = [helper.make_node("MatMul", [names[i], f"w{i}"], [names[i + 1]]) for i in range(layers)]
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 256])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 256])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_bench_vs_finds_a_model_with_a_sixteenth_of_the_work_faster(tmp_path, capsys):
    # The A/B machinery on a difference no machine can hide (1 vs 16 equal layers). Whether int8 pays
    # on this CPU is a measurement for perf/, not an assertion here: on an AVX2-only EPYC the digits
    # student's int8 came out "slower" in one of three runs.
    light, heavy = _matmul_chain(tmp_path / "light.onnx", 1), _matmul_chain(tmp_path / "heavy.onnx", 16)
    code, stdout, err = _bench(capsys, light, "--vs", heavy, "--iterations", 400, "--json")
    assert code == 0, err
    comparison = json.loads(stdout)["comparisons"][0]
    assert comparison["verdict"] == "faster", comparison
    assert comparison["p50_ratio_ci"][1] < 1.0 and comparison["p_value"] < comparison["alpha"]
    assert comparison["test"] == "wilcoxon-paired-rounds" and comparison["margin"] == 0.0


def test_bench_fp32_versus_int8_student_verdict_agrees_with_its_statistics(student_pair, capsys):
    code, stdout, err = _bench(
        capsys, student_pair / "int8.onnx", "--vs", student_pair / "fp32.onnx", "--iterations", 1000, "--json"
    )
    assert code == 0, err
    comparison = json.loads(stdout)["comparisons"][0]
    low, high = comparison["p50_ratio_ci"]
    significant = comparison["p_value"] < comparison["alpha"]
    expected = "faster" if significant and high < 1.0 else "slower" if significant and low > 1.0 else None
    assert comparison["verdict"] == (expected or "no detectable difference"), comparison


def test_bench_real_inputs_and_shapes(student_pair, capsys):
    code, stdout, err = _bench(
        capsys, student_pair / "fp32.onnx", "--inputs", student_pair / "inputs.npz", "--iterations", 20, "--json"
    )
    assert code == 0, err
    result = json.loads(stdout)["results"][0]
    # 4 samples in the file are not a batch of 4: --batch (default 1) of them, and said so
    assert result["settings"]["batch"] == 1 and result["settings"]["inputs"] == "given"
    assert result["stats"]["p99_ms"] is None and "p99" in result["stats"]["unsupported"]
    code, stdout, _ = _bench(
        capsys, student_pair / "fp32.onnx", "--shape", "input=3x1x32x32", "--iterations", 20, "--json"
    )
    assert code == 0 and json.loads(stdout)["results"][0]["settings"]["batch"] == 3  # --shape is taken as given
    code, stdout, _ = _bench(capsys, student_pair / "fp32.onnx", "--warmup", "0.2s", "--duration", "0.5", "--json")
    settings = json.loads(stdout)["results"][0]["settings"]
    assert code == 0 and settings["warmup_s"] == 0.2 and settings["rounds_run"] >= 1


def test_bench_bad_input_exits_2(student_pair, tmp_path, capsys):
    (tmp_path / "text.onnx").write_text("not onnx")
    np.savez(tmp_path / "wrong.npz", images=np.zeros((1, 1, 32, 32), np.float32))
    np.savez(tmp_path / "f64.npz", x=np.zeros((1, 1, 32, 32)))
    np.savez(tmp_path / "shape.npz", x=np.zeros((1, 3, 32, 32), np.float32))
    model = student_pair / "fp32.onnx"
    cases = [
        ([tmp_path / "absent.onnx"], "model file not found"),
        ([tmp_path / "text.onnx"], "onnxruntime cannot load the model"),
        ([model, "--provider", "cuda"], "provider 'cuda'"),
        ([model, "--provider", "tpu"], "provider 'tpu' is not one of"),
        ([model, "--iterations", 0], "iterations must be a positive integer"),
        ([model, "--batch", "1,x"], "--batch expects comma-separated integers"),
        ([model, "--warmup", "fast"], "expected a count such as 50"),
        ([model, "--shape", "input=1x1"], "does not fit the model's shape"),
        ([model, "--shape", "pixels=1x1x32x32"], "not model inputs"),
        ([model, "--inputs", tmp_path / "wrong.npz"], "expected arrays named 'input'"),
        ([model, "--inputs", tmp_path / "f64.npz"], "the model expects float32"),
        ([model, "--inputs", tmp_path / "shape.npz"], "the model expects"),
    ]
    for args, message in cases:
        code, _, err = _bench(capsys, *args)
        assert code == 2, (args, err)
        assert err.startswith("error: ") and err.count("\n") == 1 and message in err, (message, err)


def test_threads_above_core_count_warn(student_pair, capsys):
    code, stdout, _ = _bench(
        capsys, student_pair / "fp32.onnx", "--threads", (os.cpu_count() or 1) + 1, "--iterations", 20, "--json"
    )
    assert code == 0 and "more than the" in json.loads(stdout)["warnings"][0]


def test_bench_a_pytorch_model_from_the_cli(tmp_path, capsys, trained_cnn):
    from edgeport.models import ModelSpec
    from edgeport.models.checkpoint import save_checkpoint

    save_checkpoint(trained_cnn, tmp_path / "w.safetensors", ModelSpec.parse("cnn:width=1,depth=3"), 1, 10, 16)
    code, stdout, err = _bench(
        capsys,
        "--torch",
        "cnn:width=1,depth=3",
        "--weights",
        tmp_path / "w.safetensors",
        "--num-classes",
        10,
        "--shape",
        "input=1x1x16x16",
        "--batch",
        "1,2",
        "--iterations",
        30,
        "--warmup",
        2,
        "--json",
    )
    assert code == 0, err
    results = json.loads(stdout)["results"]
    assert [r["settings"]["batch"] for r in results] == [1, 2]
    assert all(r["settings"]["provider"] == "pytorch-cpu" and len(r["samples_ms"]) == 30 for r in results)
    code, _, err = _bench(capsys, "--torch", "cnn", "--weights", tmp_path / "w.safetensors")
    assert code == 2 and "needs its input" in err


def test_inputs_are_measured_at_the_batch_asked_and_it_is_said(student_pair, tmp_path):
    from edgeport.core.progress import Progress

    class Said(Progress):
        lines: list[str] = []

        def log(self, message: str) -> None:
            self.lines.append(message)

    said = Said()
    request = BenchRequest(
        str(student_pair / "fp32.onnx"),
        inputs_path=str(student_pair / "inputs.npz"),
        batches=(2, 8),
        settings=BenchSettings(iterations=10, warmup=2, rounds=2),
    )
    results = run_bench(request, said)["results"]
    assert [r["settings"]["batch"] for r in results] == [2, 8]
    assert said.lines == [
        f"--inputs {student_pair / 'inputs.npz'}: 4 sample(s); measuring batch 2, 8 from the first 4 (repeated) "
        "(--batch N sets it)"
    ]


def test_a_fixed_batch_model_is_fed_its_own_batch_from_the_inputs(tmp_path, capsys):
    model = tmp_path / "fixed.onnx"
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "fixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 5])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), model)
    np.savez(tmp_path / "x.npz", x=np.ones((10, 5), np.float32))
    code, stdout, err = _bench(capsys, model, "--inputs", tmp_path / "x.npz", "--iterations", 10, "--json")
    assert code == 0, err
    assert json.loads(stdout)["results"][0]["settings"]["batch"] == 3  # the model's own batch, not 1 or 10
    code, _, err = _bench(capsys, model, "--inputs", tmp_path / "x.npz", "--batch", 4, "--iterations", 10)
    assert code == 2 and "fixes its batch at 3" in err and len(err.strip().splitlines()) == 1


def test_a_request_is_checked_when_built(tmp_path):
    with pytest.raises(ConfigError, match="--shape: the arrays of --inputs fix every input's shape"):
        BenchRequest("m.onnx", inputs_path="x.npz", shapes={"input": (1, 1, 32, 32)})
    with pytest.raises(ConfigError, match="--threads .* is more than the"):
        BenchRequest("m.onnx", threads=(1, 10_000))
    with pytest.raises(AttributeError):
        BenchRequest("m.onnx").output = str(tmp_path / "other.json")  # type: ignore[misc]  # frozen: built once


def test_run_bench_measures_what_the_request_asks(student_pair, tmp_path):
    out = tmp_path / "result.json"
    request = BenchRequest(
        str(student_pair / "fp32.onnx"),
        BenchSettings(warmup=2, iterations=30, rounds=3, seed=3),
        threads=(1,),
        batches=(2,),
        output=str(out),
        vs=str(student_pair / "int8.onnx"),
        margin=0.05,
    )
    report = run_bench(request)
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    assert report["model"] == request.model and report["vs"] == request.vs
    assert [r["model"] for r in report["results"]] == ["a", "b"]
    assert all(r["settings"]["batch"] == 2 and r["settings"]["seed"] == 3 for r in report["results"])
    assert report["comparisons"][0]["margin"] == 0.05 and report["comparisons"][0]["batch"] == 2
    # one runtime choice per model, from the settings unless --vs names B's
    assert {(r["settings"]["runtime"], r["settings"]["precision"]) for r in report["results"]} == {("ort", None)}


def test_a_request_without_onnx_or_torch_model_is_refused():
    with pytest.raises(ConfigError, match="give MODEL.onnx"):
        run_bench(BenchRequest(None))
    assert TorchModel("cnn", "w.safetensors").engine is None  # the engine is torch's default unless chosen


def test_vs_at_runtime_names_b_runtime(student_pair):
    # B.onnx@ort: the text after @ is B's runtime; a file named so is B itself (split_runtime)
    request = BenchRequest(
        str(student_pair / "fp32.onnx"),
        BenchSettings(warmup=1, iterations=10, rounds=2, runtime=RuntimeChoice("ort")),
        vs=f"{student_pair / 'int8.onnx'}@ort",
    )
    report = run_bench(request)
    assert report["results"][1]["model_path"] == str(student_pair / "int8.onnx")
    assert report["vs"] == request.vs
