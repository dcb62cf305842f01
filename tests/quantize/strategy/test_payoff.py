"""Exit 0 means ship it: an int8 model ships only when faithful and faster than fp32 on its runtime."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeport.benchmarks.openvino_runtime import fp32_openvino_choices, openvino_version
from edgeport.benchmarks.records import ONNXRUNTIME, RuntimeChoice
from edgeport.cli import main
from edgeport.core.bench_defaults import PAYS_BELOW
from edgeport.quantize.strategy.options import Measured, Option, judge_as_needed, options_to_compare
from edgeport.quantize.strategy.payoff import Payoff
from edgeport.quantize.strategy.timing import EXTRA_LOOKS, SHIP_CONFIDENCE
from tests.helpers import assert_chosen_by_the_tie_rule, bench_result

ROOT = Path(__file__).resolve().parents[3]


def _payoff(fp32: float, int8: float, faithful: bool = True, options=()) -> Payoff:
    payoff = Payoff(
        ONNXRUNTIME, fp32, int8, faithful, list(options), options_fp32_p50_ms=fp32, options_base="fp32 on ort"
    )
    return payoff


def test_a_faithful_int8_model_ships_only_when_faster():
    assert _payoff(1.0, 0.6).ships and _payoff(1.0, 0.6).line() == ""
    slower = _payoff(1.0, 1.4, options=[Measured(Option("fp32", ONNXRUNTIME), 1.0, True, "the fp32 reference")])
    assert not slower.ships and slower.faster is False
    assert slower.line().startswith("int8 ran at 1.40x fp32's p50 on ort")
    assert not _payoff(1.0, 0.98).ships  # a 2 % "win" is noise, not a reason to ship int8
    assert "keep the fp32 model on ort" in slower.line()
    assert not _payoff(1.0, 0.5, faithful=False).ships  # faster is not enough


def test_a_win_within_the_noise_does_not_ship():
    """0.90x by its point ratio, but the interval of that ratio reaches 1.0: not faster beyond noise."""
    noisy = Payoff(ONNXRUNTIME, 1.0, 0.9, True, ratio_ci=(0.8, 1.05))
    assert not noisy.faster and not noisy.ships
    assert noisy.line().startswith("int8 ran at 0.90x [0.80, 1.05] fp32's p50 on ort")
    assert "not faster beyond noise" in noisy.line()
    clear = Payoff(ONNXRUNTIME, 1.0, 0.9, True, ratio_ci=(0.86, 0.94))
    assert clear.ships and clear.describe()["int8_over_fp32_ci"] == [0.86, 0.94]


def test_the_fastest_faithful_option_is_named_and_an_unfaithful_one_never_is():
    openvino = RuntimeChoice("openvino")
    options = [
        Measured(Option("fp32", ONNXRUNTIME), 1.0, True, "the fp32 reference"),
        Measured(Option("int8", openvino), 0.3, False, "OUTSIDE TOLERANCE"),  # fastest, but not faithful
        Measured(Option("fp32", openvino), 0.6, True, "within tolerance"),
    ]
    payoff = _payoff(1.0, 1.2, options=options)
    assert payoff.fastest() is options[2]
    assert payoff.line().endswith("fastest faithful option measured: fp32 on openvino at 0.60x fp32 on ort")
    assert payoff.describe()["fastest_faithful"] == "fp32 on openvino"


def test_a_faster_faithful_option_beside_a_shipping_int8_model_is_named():
    openvino = RuntimeChoice("openvino")
    own = Measured(Option("int8", ONNXRUNTIME), 0.8, True, "within tolerance")
    options = [
        Measured(Option("fp32", ONNXRUNTIME), 1.0, True, "the fp32 reference"),
        own,
        Measured(Option("fp32", openvino), 0.5, True, "within tolerance"),
        Measured(Option("int8", openvino), 0.3, False, "OUTSIDE TOLERANCE"),  # faster still, but not faithful
    ]
    payoff = _payoff(1.0, 0.8, options=options)
    assert payoff.ships and payoff.faster_than_shipped() is options[2]
    close = [*options[:2], Measured(Option("fp32", openvino), 0.78, True, "within tolerance")]
    assert _payoff(1.0, 0.8, options=close).faster_than_shipped() is None  # within the margin: no advice


def test_the_summary_lists_every_runtime_measured(capsys):
    from edgeport.report.quantize_summary import _options_cell

    alternatives = [
        {"option": "fp32 on ort", "p50_ms": 1.0, "p50_over_fp32": 1.0, "faithful": True, "verdict": "reference"},
        {
            "option": "int8 on openvino",
            "p50_ms": None,
            "p50_over_fp32": None,
            "faithful": False,
            "verdict": "does not run: RuntimeError: unsupported op",
        },
        {"option": "fp32 on openvino", "p50_ms": 0.6, "p50_over_fp32": 0.6, "faithful": True, "verdict": "ok"},
    ]
    alternatives.append(
        {
            "option": "int8 on ort",
            "p50_ms": 2.0,
            "p50_over_fp32": 2.0,
            "faithful": None,
            "verdict": "not judged: fp32 on openvino is faithful and ran at 0.30x its p50",
        }
    )
    assert _options_cell({"alternatives": alternatives}).splitlines() == [
        "fp32 on openvino: 0.60x, faithful",
        "fp32 on ort: 1.00x, faithful",
        "int8 on ort: 2.00x, not judged: a faithful option was faster",
        "int8 on openvino: not measured, does not run",
    ]


def test_options_are_judged_fastest_first_and_only_while_a_verdict_can_matter():
    openvino = RuntimeChoice("openvino")
    fp32_ort, fp32_ov = Option("fp32", ONNXRUNTIME), Option("fp32", openvino)
    int8_ort, int8_ov = Option("int8", ONNXRUNTIME), Option("int8", openvino)
    nncf_ort, nncf_ov = Option("int8 (nncf)", ONNXRUNTIME), Option("int8 (nncf)", openvino)
    medians = {fp32_ort: 10.0, fp32_ov: 10.1, int8_ort: 6.0, int8_ov: 12.0, nncf_ort: 5.0, nncf_ov: 6.1}
    results = {o.label: bench_result([m] * 5, seed) for seed, (o, m) in enumerate(medians.items())}
    unfaithful = {nncf_ort}  # the fastest int8 misses: the next fastest is judged
    judged: list[Option] = []

    def judge(option: Option) -> tuple[bool, str]:
        judged.append(option)
        return option not in unfaithful, "a verdict"

    verdicts: dict = {fp32_ort: (True, "the fp32 reference")}
    judge_as_needed(list(medians), results, verdicts, judge)
    # fp32 on OpenVINO is slower than the reference, if only by 1%: never the fastest faithful fp32, never judged.
    # int8: nncf on ort (missed), then int8 on ort (faithful); nncf on openvino ties with it (6.1 against 6.0),
    # so it is judged too (the tie rule may ship the one listed first); int8 on openvino ran at 2x: left out
    assert judged == [nncf_ort, int8_ort, nncf_ov]
    assert verdicts[fp32_ov][0] is None and verdicts[fp32_ov][1].startswith("not judged: fp32 on ort is faithful")
    assert verdicts[int8_ov][0] is None and "int8 on ort is faithful and ran at 0.50x" in verdicts[int8_ov][1]
    assert verdicts[nncf_ort][0] is False and verdicts[nncf_ov][0] is True


def test_choosing_the_runtime_int8_that_does_not_beat_the_fastest_fp32_names_that_fp32():
    """int8 on OpenVINO is the fastest faithful int8 (0.9x fp32 on ort) but not faster beyond noise than fp32
    on OpenVINO: the fp32 option is what to ship, never the int8 model that was just refused."""
    openvino = RuntimeChoice("openvino")
    options = [
        Measured(Option("fp32", ONNXRUNTIME), 1.0, True, "the fp32 reference"),
        Measured(Option("int8", ONNXRUNTIME), 0.95, True, "within tolerance"),
        Measured(Option("fp32", openvino), 0.92, True, "within tolerance"),
        Measured(Option("int8", openvino), 0.9, True, "within tolerance"),
    ]
    payoff = Payoff(
        openvino, 0.92, 0.9, True, options, 1.0, "fp32 on ort", ratio_ci=(0.8, 1.1), baseline=options[2].option
    )
    assert not payoff.ships and payoff.fastest() is options[2]
    assert payoff.line().startswith("int8 on openvino, the fastest faithful int8, ran at 0.98x [0.80, 1.10] the p50")
    assert payoff.line().endswith("keep the fp32 model on openvino: the fastest faithful option measured")
    assert payoff.describe()["deploy"] is None and payoff.describe()["baseline"] == "fp32 on openvino"


def test_options_cover_every_installed_runtime():
    labels = [o.label for o in options_to_compare(ONNXRUNTIME, int8_faithful=True)]
    assert labels[:1] == ["fp32 on ort"] and "int8 on ort" not in labels  # what does not ship is no option
    if openvino_version():
        fp32 = {f"fp32 on {choice.label()}" for choice in fp32_openvino_choices()}
        assert fp32 | {"int8 on openvino"} <= set(labels)
    assert all(o.model == "fp32" for o in options_to_compare(ONNXRUNTIME, int8_faithful=False))


def _tiny_model(folder):
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.normal(size=(16, 8)).astype(np.float32), "W")
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Relu", ["h"], ["y"])]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, folder / "tiny.onnx")
    np.savez(folder / "calib.npz", x=rng.normal(size=(64, 16)).astype(np.float32))
    np.savez(folder / "val.npz", x=rng.normal(size=(32, 16)).astype(np.float32))
    return folder / "tiny.onnx"


def test_the_exit_code_follows_the_measured_speed(tmp_path, capsys):
    model = _tiny_model(tmp_path)
    out = tmp_path / "tiny.int8.onnx"
    code = main(
        ["quantize", str(model), "--calib", str(tmp_path / "calib.npz"), "--val", str(tmp_path / "val.npz")]
        + ["--backend", "ort-static", "--speed-check", "--quiet", "-o", str(out)]
    )
    err = capsys.readouterr().err
    manifest = json.loads((tmp_path / "tiny.int8.manifest.json").read_text())
    speed = manifest["speed"]
    interval = speed["int8_over_fp32_ci"]
    faster = speed["int8_over_fp32"] <= PAYS_BELOW and (interval is None or interval[1] < 1.0)
    # whatever this machine measured, the verdict, the exit code and the file name agree with it
    assert manifest["ships"] is faster and code == (0 if faster else 1), err
    # measured again only while open, and the interval at the confidence split over every look it could take
    assert speed["int8_over_fp32_confidence"] == round(SHIP_CONFIDENCE, 4)
    assert 0 <= speed["extra_measurements"] <= EXTRA_LOOKS
    assert out.is_file() is faster and (tmp_path / "tiny.int8.rejected.onnx").is_file() is not faster
    assert manifest["artifact"]["path"] == ("tiny.int8.onnx" if faster else "tiny.int8.rejected.onnx")
    measured = {a["option"]: a for a in speed["alternatives"]}
    if openvino_version():  # no --runtime: the int8 file on every installed runtime against fp32 on every one
        fp32 = {f"fp32 on {choice.label()}" for choice in fp32_openvino_choices()}
        assert fp32 | {"fp32 on ort", "int8 on ort", "int8 on openvino"} <= set(measured)
        timed = [a for a in speed["alternatives"] if a["faithful"] and a["p50_ms"] is not None]
        int8s = {a["option"]: a for a in timed if a["model"] == "int8"}
        fastest_fp32 = min((a for a in timed if a["model"] == "fp32"), key=lambda a: a["p50_ms"])
        # the decision is read against the fastest faithful fp32, for the fastest faithful int8 (the first
        # listed unless another is clearly faster), as measured (and measured again while open)
        weighed = int8s[f"int8 on {speed['runtime']}"]
        assert_chosen_by_the_tie_rule({name: a["p50_ms"] for name, a in int8s.items()}, weighed["option"])
        assert speed["baseline"] == fastest_fp32["option"]
        if speed["extra_measurements"] == 0:
            assert speed["int8_over_fp32"] == pytest.approx(weighed["p50_ms"] / fastest_fp32["p50_ms"], rel=1e-3)
        assert (speed["deploy"] is not None) is faster
        if faster:  # how to deploy it, and the guard's verdict as that runtime ran it
            assert speed["deploy"]["runtime"] == speed["runtime"].split("/")[0]
            assert speed["deploy"]["verdict"] == weighed["verdict"]
            assert f"ships as int8 on {speed['runtime']}" in manifest["verdict"]
    if not faster:
        assert manifest["verdict"].startswith("NOT FASTER THAN FP32: int8 ")
        assert "does not ship" in err and speed["fastest_faithful"]
        assert any(a["option"] == "fp32 on ort" and a["faithful"] for a in speed["alternatives"])


def test_without_openvino_installed_the_choice_is_onnxruntime_alone(tmp_path):
    # a real interpreter in which `import openvino` fails, as on a machine without the extra (make run and
    # make test install it; users may not)
    model = _tiny_model(tmp_path)
    args = [str(model), "--calib", str(tmp_path / "calib.npz"), "--val", str(tmp_path / "val.npz")]
    code = (
        "import sys; sys.modules['openvino'] = None\n"
        "from edgeport.cli import main\n"
        f"sys.exit(main(['quantize', *{args!r}, '--speed-check', '--quiet', '--json']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode in (0, 1), done.stderr
    manifest = json.loads(done.stdout)
    speed = manifest["speed"]
    assert {a["runtime"] for a in speed["alternatives"]} == {"ort"} and speed["runtime"] == "ort"
    assert manifest["verification"]["other_runtimes"] == {} and "openvino" not in done.stderr
    assert manifest["ships"] is (done.returncode == 0)


def test_without_the_speed_check_a_faithful_model_ships(tmp_path, capsys):
    model = _tiny_model(tmp_path)
    out = tmp_path / "tiny.int8.onnx"
    args = ["quantize", str(model), "--calib", str(tmp_path / "calib.npz"), "--backend", "ort-static"]
    code = main([*args, "--no-speed-check", "--quiet", "-o", str(out)])  # as EDGEPORT_SPEED_CHECK=0 does
    manifest = json.loads((tmp_path / "tiny.int8.manifest.json").read_text())
    assert code == 0, capsys.readouterr().err
    assert out.is_file() and manifest["ships"] is True and manifest["speed"] is None


def test_auto_skips_a_fallback_that_cannot_pay(tmp_path, capsys):
    """No recipe meets an unreachable tolerance: the fallback runs only if the most faithful recipe, every
    layer int8, is faster than fp32 at all (keeping layers in float cannot make a slower model pay)."""
    model = _tiny_model(tmp_path)
    args = ["quantize", str(model), "--calib", str(tmp_path / "calib.npz"), "--val", str(tmp_path / "val.npz")]
    code = main([*args, "--min-cosine", "0.999999999", "--speed-check", "--quiet", "--json"])
    auto = json.loads(capsys.readouterr().out)["auto"]
    fallbacks = [a for a in auto["attempts"] if a["recipe"].endswith("+fallback")]
    assert code == 1
    if auto["fallback_skipped"]:
        assert not fallbacks and "cannot make it pay" in auto["fallback_skipped"]
        measured = auto["fallback_skipped"].split(" ran at ")[1]
        ratio = float(measured.split("x")[0])
        # skipped only when clearly no faster: the whole interval above the margin, not its point alone
        low = float(measured.split("[")[1].split(",")[0]) if measured.split("x")[1].startswith(" [") else ratio
        assert ratio >= low > PAYS_BELOW
    else:
        assert len(fallbacks) == 1


def test_an_int8_file_faster_by_the_margin_but_within_noise_is_measured_again_until_it_is_clear():
    from edgeport.benchmarks.speedup import speedup_of
    from edgeport.quantize.strategy.timing import SHIP_CONFIDENCE, settled_int8
    from tests.helpers import bench_result

    listed = ["int8 (nncf) on ort", "int8 (dynamic+fallback) on ort"]  # the most faithful first
    noisy = {listed[0]: bench_result([1.0] * 5, 1), listed[1]: bench_result([0.6, 0.6, 0.6, 0.6, 1.3], 2)}
    opened = speedup_of(noisy[listed[1]], noisy[listed[0]], confidence=SHIP_CONFIDENCE)
    assert opened.open  # the point pays (0.6x), one round stretched the interval past 1.0
    calls: list[tuple[str, str]] = []

    def again(faster: list[float]):
        def measure(a: str, b: str):
            calls.append((a, b))
            return bench_result(faster, 3 + len(calls)), bench_result([1.0] * 5, 9 + len(calls))

        return measure

    assert settled_int8(listed, noisy, again([0.6] * 5)) == (listed[1], 1)
    assert calls == [(listed[1], listed[0])]  # the fastest and the first listed, once: then it was clear
    calls.clear()
    assert settled_int8(listed, noisy, again([1.0] * 5)) == (listed[0], 1)  # a tie after all: the first listed
    calls.clear()
    assert settled_int8(listed, noisy, again([0.6, 1.3, 0.6, 1.3, 0.6])) == (listed[0], 2)  # open to the end
    assert len(calls) == 2  # as many looks as the ship decision takes, no more
    calls.clear()
    clear = {listed[0]: bench_result([1.0] * 5, 1), listed[1]: bench_result([0.6] * 5, 2)}
    assert settled_int8(listed, clear, again([0.6] * 5)) == (listed[1], 0) and not calls  # clear at once
    close = {listed[0]: bench_result([1.0] * 5, 1), listed[1]: bench_result([0.97] * 5, 2)}
    assert settled_int8(listed, close, again([0.6] * 5)) == (listed[0], 0) and not calls  # within the margin
