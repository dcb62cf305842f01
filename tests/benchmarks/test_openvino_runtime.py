"""OpenVINO as a benchmark runtime, through the CLI: the same statistics, rounds and raw samples as
onnxruntime, comparisons across runtimes, and a clear exit 2 where the runtime is not installed."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from edgeport.benchmarks import BenchSettings
from edgeport.benchmarks.openvino_runtime import OpenVinoSession, cpu_default_precision, fp32_openvino_choices
from edgeport.benchmarks.records import RuntimeChoice
from edgeport.cli import main
from edgeport.errors import ConfigError

# openvino is in the dev extra, so CI runs these; the refusal test at the end needs no openvino at all
needs_openvino = pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino not installed")
ROOT = Path(__file__).resolve().parents[2]


def _bench(capsys, *args):
    code = main(["bench", "--quiet", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@needs_openvino
def test_openvino_runs_the_onnx_file_and_agrees_with_onnxruntime(fp32_onnx, digits16):
    import onnxruntime as ort

    x = digits16.val.x[:4]
    ov = OpenVinoSession(fp32_onnx, threads=1, precision="f32")
    (name,) = [i.name for i in ov.get_inputs()]
    assert ov.get_inputs()[0].type == "tensor(float)" and ov.get_inputs()[0].shape[0] == "?"
    reference = ort.InferenceSession(str(fp32_onnx), providers=["CPUExecutionProvider"]).run(None, {name: x})[0]
    (logits,) = ov.run(None, {name: x})
    assert ov.precision == "f32"
    np.testing.assert_allclose(logits, reference, rtol=1e-3, atol=1e-3)


@needs_openvino
def test_the_fp32_baselines_are_f32_and_the_default_only_where_these_differ(fp32_onnx):
    """The CPU's default precision, as the plugin reports it, is what a session compiled without a hint runs
    at; where it is f32 the two baselines would be one compiled model, so only the default is compared."""
    compiled = OpenVinoSession(fp32_onnx, threads=1, precision=None).precision
    assert cpu_default_precision() == compiled
    labels = [choice.label() for choice in fp32_openvino_choices()]
    assert labels == (["openvino"] if compiled == "f32" else ["openvino/f32", "openvino"])


@needs_openvino
def test_bench_on_openvino_records_runtime_precision_and_raw_samples(capsys, fp32_onnx):
    code, out, err = _bench(
        capsys, fp32_onnx, "--runtime", "openvino", "--precision", "f32", "--iterations", 40, "--rounds", 4, "--json"
    )
    assert code == 0, err
    (result,) = json.loads(out)["results"]
    settings = result["settings"]
    assert settings["runtime"] == "openvino" and settings["precision"] == "f32" and settings["precision_used"] == "f32"
    assert len(result["samples_ms"]) == 40 and settings["round_sizes"] == [10, 10, 10, 10]
    assert result["environment"]["openvino"] and result["stats"]["p50_ms"] > 0


@needs_openvino
def test_vs_compares_the_same_file_across_runtimes(capsys, fp32_onnx, tmp_path):
    out_file = tmp_path / "result.json"
    args = ("--vs", f"{fp32_onnx}@openvino/f32", "--iterations", 40, "--rounds", 8, "-o", out_file)
    code, out, err = _bench(capsys, fp32_onnx, *args)
    assert code == 0, err
    report = json.loads(out_file.read_text())
    assert [r["settings"]["runtime"] for r in report["results"]] == ["ort", "openvino"]
    (comparison,) = report["comparisons"]
    assert comparison["verdict"] in ("faster", "slower", "no detectable difference")
    assert _column(out, 1) == ["ort cpu", "openvino f32"]  # the table names each model's runtime


def _column(table: str, index: int) -> list[str]:
    """One column's cells, a cell wrapped over several lines joined back (long intervals make rich wrap
    narrow columns, so the text of one cell may sit on two lines)."""
    cells: list[str] = []
    for line in table.splitlines():
        if not line.startswith("│"):
            continue
        parts = [part.strip() for part in line.strip("│").split("│")]
        if parts[0]:  # a row starts where its first cell has text
            cells.append(parts[index])
        elif cells and parts[index]:
            cells[-1] += " " + parts[index]
    return cells


@needs_openvino
def test_runtime_all_measures_every_installed_runtime_against_onnxruntime(capsys, fp32_onnx):
    code, out, err = _bench(capsys, fp32_onnx, "--runtime", "all", "--iterations", 20, "--rounds", 4, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert [r["model"] for r in report["results"]] == ["ort", "openvino"]
    assert [(c["a"], c["b"]) for c in report["comparisons"]] == [("ort", "openvino")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--precision", "bf16"), "--precision is OpenVINO's"),
        (("--runtime", "all", "--vs", "X.onnx"), "--runtime all compares"),
        (("--runtime", "openvino", "--provider", "cuda"), "runtime 'openvino' runs on the CPU"),
    ],
)
def test_runtime_options_that_do_not_fit_exit_2(capsys, fp32_onnx, args, message):
    code, _, err = _bench(capsys, fp32_onnx, *args)
    assert code == 2 and message in err


def test_a_precision_hint_needs_openvino():
    with pytest.raises(ConfigError, match="applies to runtime 'openvino'"):
        BenchSettings(runtime=RuntimeChoice("ort", "bf16"))


def test_without_openvino_installed_the_runtime_exits_2_with_the_install_command(fp32_onnx):
    # a real interpreter in which `import openvino` fails, as on a machine without the extra
    code = (
        "import sys; sys.modules['openvino'] = None\n"
        "from edgeport.cli import main\n"
        f"sys.exit(main(['bench', {str(fp32_onnx)!r}, '--runtime', 'openvino', '--iterations', '10', '--quiet']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 2
    assert "pip install 'edgeport[openvino]'" in done.stderr and len(done.stderr.strip().splitlines()) == 1


@needs_openvino
def test_verification_runs_the_int8_file_on_openvino_too(tmp_path, fp32_onnx, digits16):
    from edgeport.quantize import quant_config, quantize
    from edgeport.quantize.guard.verify import verify_int8

    out = tmp_path / "int8.onnx"
    quantize(fp32_onnx, {"input": digits16.train.x[:64]}, quant_config(backend="ort-static"), out)
    report = verify_int8(out, fp32_onnx, {"input": digits16.val.x}, digits16.val.y)
    other = report["other_runtimes"]["openvino"]
    assert other["precision_used"] in ("f32", "bf16") and other["top1_agreement"] > 90
    assert 0 < other["mean_cosine"] <= 1.0 + 1e-9


@needs_openvino
@pytest.mark.parametrize("backend", [None, "ort-static"])
def test_quantize_judges_the_int8_model_on_the_runtime_it_ships_with(tmp_path, capsys, fp32_onnx, digits16, backend):
    np.savez(tmp_path / "calib.npz", x=digits16.train.x[:64])
    np.savez(tmp_path / "val.npz", x=digits16.val.x, y=digits16.val.y)
    out = tmp_path / "int8.onnx"
    args = ["quantize", fp32_onnx, "--calib", tmp_path / "calib.npz", "--val", tmp_path / "val.npz"]
    args += ["--runtime", "openvino", "-o", out, "--quiet", "--json"] + (["--backend", backend] if backend else [])
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    manifest = json.loads(captured.out)
    assert "int8 run on openvino" in manifest["guard"]["judged_on"]
    if backend is None:  # auto judged its recipes there, and ranked the faithful ones there
        auto = manifest["auto"]
        assert auto["runtime"] == "openvino"
        faithful = [a for a in auto["attempts"] if a["within_tolerance"]]
        assert (auto["ranking_settings"] is not None) == (len(faithful) > 1)
        assert all(a["p50_ms"] for a in faithful) or len(faithful) == 1
    else:
        assert manifest["verification"]["judged_on_runtime"].startswith("openvino")
    # the integer kernels are counted where it ships too, not only on onnxruntime
    there = manifest["verification"]["coverage_on_runtime"]
    assert there["runtime"] == "openvino" and there["integer_kernels"] > 0
    assert there["integer_kernels"] + there["float_kernels"] == len(there["unfused"]) + there["integer_kernels"]


@needs_openvino
def test_openvino_coverage_counts_the_layers_its_compiled_model_runs_in_integers(tmp_path, fp32_onnx, digits16):
    from edgeport.benchmarks.records import ONNXRUNTIME
    from edgeport.quantize import quant_config, quantize
    from edgeport.quantize.guard.coverage import openvino_coverage
    from edgeport.quantize.verified import _count_where_it_ships

    out = tmp_path / "int8.onnx"
    quantize(fp32_onnx, {"input": digits16.train.x[:64]}, quant_config(backend="ort-static"), out)
    int8 = openvino_coverage(OpenVinoSession(out, threads=1, precision="f32"), out)
    fp32 = openvino_coverage(OpenVinoSession(fp32_onnx, threads=1, precision="f32"), fp32_onnx)
    layers = fp32["float_kernels"]
    assert layers >= 3 and fp32["integer_kernels"] == 0 and len(fp32["unfused"]) == layers
    assert int8["integer_kernels"] + int8["float_kernels"] == layers and int8["integer_kernels"] >= 2
    assert set(int8["integer_ops"]) <= {"Convolution", "FullyConnected", "MatMul"}
    # named by the ONNX nodes they came from, with the precision they run at
    names = {n.name for n in onnx.load(str(fp32_onnx)).graph.node}
    assert all(entry.endswith("f32)") for entry in fp32["unfused"])
    assert any(set(entry.split(" (")[0].split("+")) <= names for entry in fp32["unfused"])
    # counted for the report where the artifact ships on OpenVINO, not where it ships on onnxruntime
    verification: dict = {}
    _count_where_it_ships(verification, out, ONNXRUNTIME)
    assert verification == {}
    _count_where_it_ships(verification, out, RuntimeChoice("openvino"))
    assert verification["coverage_on_runtime"]["integer_kernels"] == int8["integer_kernels"]


def test_quantize_precision_needs_openvino(tmp_path, capsys, fp32_onnx, digits16):
    np.savez(tmp_path / "calib.npz", x=digits16.train.x[:16])
    code = main(["quantize", str(fp32_onnx), "--calib", str(tmp_path / "calib.npz"), "--precision", "bf16"])
    assert code == 2 and "applies to runtime 'openvino'" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.onnx"))


@needs_openvino
def test_outputs_keep_their_onnx_names_when_openvino_drops_an_identity(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from edgeport.quantize.guard.verify import run_all_outputs

    nodes = [helper.make_node("Relu", ["x"], ["a_relu"]), helper.make_node("Identity", ["a_relu"], ["y"])]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "m.onnx"))
    outputs = run_all_outputs(OpenVinoSession(tmp_path / "m.onnx", 1, None), {"x": -np.ones((3, 4), np.float32)})
    assert list(outputs) == ["y"] and not outputs["y"].any()


@needs_openvino
def test_the_gate_reads_the_entry_of_its_runtime_from_a_runtime_all_file(tmp_path, capsys, fp32_onnx):
    result = tmp_path / "all.json"
    code, _, err = _bench(capsys, fp32_onnx, "--runtime", "all", "--iterations", 40, "--rounds", 4, "-o", result)
    assert code == 0, err
    for runtime in ("ort", "openvino"):
        budget = tmp_path / f"{runtime}.toml"
        budget.write_text(f'[targets.t]\nruntime = "{runtime}"\np90_ms = 1000.0\n')
        code = main(["gate", "--budget", str(budget), "--result", str(result), "--artifact", str(fp32_onnx), "--json"])
        report = json.loads(capsys.readouterr().out)
        assert code == 0 and report["settings"]["runtime"] == runtime and report["verdict"] == "pass"
