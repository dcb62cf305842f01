"""Trust: a model spec names a model, never a command; files edgeport wrote never choose code or folders.

Issue 20, items 3 and 21 and the suspected `cache` field of search.json. Every vector runs the real
command line and asserts the marker file a hostile spec would create does not exist, the exit code is
2 and the refusal is one line.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from edgeport.cli import main
from edgeport.search.cache import RESULT, StageCache
from tests.bad_input.conftest import one_line_error, run_cli
from tests.helpers import tiny_config

# A module in the working folder that leaves a mark when imported: importing it is running it.
PLANTED = """
from pathlib import Path
from torch import nn

Path("IMPORTED").write_text("imported")


def build(in_channels, num_classes):
    return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))
"""

# Names a user module could export that are not model factories.
NOT_FACTORIES = """
import functools
import os
from os import system as shell
from torch import nn

touch = functools.partial(os.system, "touch PARTIAL")


class Settings:
    def __init__(self, in_channels=1, num_classes=10):
        pass


def build(in_channels, num_classes):
    return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))
"""


def _hostile_specs(marker: Path) -> list[str]:
    return [
        f"os:system:command=touch {marker}",
        f"subprocess:run:args=touch {marker},shell=true",
        f"builtins:eval:source=open('{marker}'.strip() + '','w')",
        f"shutil:rmtree:path={marker.parent / 'victim'}",
        f"numpy:save:file={marker},arr=1",  # an installed package, not a model library
        f"edgeport.core.artifacts:atomic_write_text:path={marker},text=x",  # edgeport's own code
    ]


def _refused(capsys, marker: Path, *args) -> str:
    code, out, err = run_cli(capsys, *args)
    assert code == 2, (code, out, err)
    assert not marker.exists(), "the spec ran a command"
    return one_line_error(err)


@pytest.fixture
def marker(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "victim").mkdir()
    (tmp_path / "victim" / "keep.txt").write_text("keep")
    yield tmp_path / "PWNED"
    assert (tmp_path / "victim" / "keep.txt").is_file()


# --- 3. a spec on the command line, in a project file, to quantize and bench ---------------------------


@pytest.mark.parametrize("option", ["--teacher", "--student"])
@pytest.mark.parametrize("index", range(6))
def test_run_refuses_a_spec_that_names_a_function_of_python_or_an_installed_package(
    capsys, marker, tmp_path, option, index
):
    spec = _hostile_specs(marker)[index]
    line = _refused(capsys, marker, "run", option, spec, "--out", tmp_path / "runs", "--quiet")
    assert spec.split(":")[0] in line and "spec" in line
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_run_refuses_a_hostile_spec_from_a_project_file(capsys, marker, tmp_path):
    project = tmp_path / "edgeport.toml"
    project.write_text(f'[run.teacher]\nmodel = "os:system:command=touch {marker}"\n')
    line = _refused(capsys, marker, "run", "--config", project, "--out", tmp_path / "runs", "--quiet")
    assert "os:system" in line and "standard library" in line


@pytest.mark.parametrize("module", ["this", "antigravity"])
def test_a_standard_library_module_is_refused_without_being_imported(capsys, marker, tmp_path, module):
    # Importing `this` prints the Zen of Python, `antigravity` opens a web browser: both run on import.
    import sys

    sys.modules.pop(module, None)
    code, out, err = run_cli(capsys, "run", "--teacher", f"{module}:build", "--out", tmp_path / "runs", "--quiet")
    assert code == 2 and "standard library" in one_line_error(err)
    assert module not in sys.modules and "Beautiful is better" not in out + err


def _weights(tmp_path: Path) -> Path:
    """A real checkpoint of a registered model: the spec, not the weights, is what gets refused."""
    from edgeport.models import ModelSpec, build_model
    from edgeport.models.checkpoint import save_checkpoint

    spec = ModelSpec.parse("cnn:width=0.5,depth=2")
    return save_checkpoint(build_model(spec, 1, 10, 16), tmp_path / "w.safetensors", spec, 1, 10, 16)


def test_quantize_torch_refuses_a_hostile_spec(capsys, marker, tmp_path, cnn_files):
    out = tmp_path / "m.int8.onnx"
    line = _refused(
        capsys,
        marker,
        "quantize",
        "--torch",
        f"os:system:command=touch {marker}",
        "--weights",
        _weights(tmp_path),
        "--num-classes",
        "10",
        "--calib",
        cnn_files / "calib.npz",
        "--backend",
        "torch-fx",
        "--quiet",
        "-o",
        out,
    )
    assert "os:system" in line and not out.exists()


def test_bench_torch_refuses_a_hostile_spec(capsys, marker, tmp_path):
    out = tmp_path / "bench.json"
    line = _refused(
        capsys,
        marker,
        "bench",
        "--torch",
        f"subprocess:run:args=touch {marker},shell=true",
        "--weights",
        _weights(tmp_path),
        "--shape",
        "input=1x1x16x16",
        "--num-classes",
        "10",
        "-o",
        out,
    )
    assert "subprocess:run" in line and not out.exists()


@pytest.mark.parametrize(
    "attr,why",
    [("shell", "not a Python function"), ("touch", "not a Python function"), ("Settings", "torch.nn.Module")],
)
def test_a_user_module_may_name_only_a_model_factory(capsys, marker, tmp_path, attr, why):
    (tmp_path / "mymodels.py").write_text(NOT_FACTORIES)
    line = _refused(capsys, marker, "run", "--teacher", f"mymodels:{attr}", "--out", tmp_path / "runs", "--quiet")
    assert f"mymodels:{attr}" in line and why in line
    assert not (tmp_path / "PARTIAL").exists()


def test_a_factory_in_the_working_folder_still_resolves(marker, tmp_path):
    import sys

    from edgeport.models import ModelSpec

    (tmp_path / "mymodels.py").write_text(NOT_FACTORIES)
    try:
        ModelSpec.parse("mymodels:build").validate()
    finally:
        sys.modules.pop("mymodels", None)


# --- 3. a tampered search.json on search --resume; the suspected `cache` field ----------------------------


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> Path:
    """OUT of one finished tiny search: one candidate (fp32), one student epoch."""
    root = tmp_path_factory.mktemp("trust-search")
    config = tiny_config(root, '"quantize.backend" = ["none"]', student_epochs=1)
    assert main(["search", "--config", str(config), "--out", str(root / "out"), "--quiet"]) == 0
    return root / "out"


def _copy(searched: Path, tmp_path: Path) -> Path:
    """A private copy of the search's OUT (its search folder and its default stage cache)."""
    out = tmp_path / "out"
    shutil.copytree(searched, out)
    folder = next(out.glob("search-*"))
    definition = json.loads((folder / "search.json").read_text())
    definition["cache"] = str((out / ".cache" / "stages").resolve())
    (folder / "search.json").write_text(json.dumps(definition))
    return folder


def _tamper(folder: Path, **changes) -> None:
    path = folder / "search.json"
    definition = json.loads(path.read_text())
    run = json.loads(definition["run"])
    for dotted, value in changes.items():
        section, field = dotted.split("__")
        run[section][field] = value
    definition["run"] = json.dumps(run)
    path.write_text(json.dumps(definition))


def test_resume_refuses_a_hostile_spec_from_search_json(capsys, marker, searched, tmp_path):
    folder = _copy(searched, tmp_path)
    with sqlite3.connect(folder / "search.db") as db:  # a trial left to run: its teacher would be built
        db.execute("DELETE FROM trials")
    _tamper(folder, teacher__model=f"os:system:command=touch {marker}")
    line = _refused(capsys, marker, "search", "--resume", folder, "--quiet")
    assert "os:system" in line and "search.json" in line


def test_resume_never_imports_a_factory_only_search_json_names(capsys, marker, searched, tmp_path):
    folder = _copy(searched, tmp_path)
    (tmp_path / "planted.py").write_text(PLANTED)
    _tamper(folder, student__model="planted:build")
    line = _refused(capsys, marker, "search", "--resume", folder, "--quiet")
    assert "planted:build" in line and "--config" in line
    assert not (tmp_path / "IMPORTED").exists()


def test_resume_never_takes_its_cache_folder_from_search_json(capsys, marker, searched, tmp_path):
    folder = _copy(searched, tmp_path)
    foreign = tmp_path / "foreign"
    # What a stale build folder of a killed process looked like: the cleanup removed such names.
    (foreign / ".tmp" / "teacher-0123456789abcdef0123-999999-abcdefgh").mkdir(parents=True)
    (foreign / ".tmp" / "teacher-0123456789abcdef0123-999999-abcdefgh" / "data.txt").write_text("keep")
    definition = json.loads((folder / "search.json").read_text())
    definition["cache"] = str(foreign)
    (folder / "search.json").write_text(json.dumps(definition))
    before = sorted(p.relative_to(foreign) for p in foreign.rglob("*"))
    line = _refused(capsys, marker, "search", "--resume", folder, "--quiet")
    assert "--cache" in line and str(foreign) in line
    assert sorted(p.relative_to(foreign) for p in foreign.rglob("*")) == before


def test_cache_cleanup_removes_only_build_folders_it_made(tmp_path):
    cache = StageCache(tmp_path / "cache")
    foreign = [cache.tmp / "teacher-0123456789abcdef0123-999999-abcdefgh", cache.tmp / "a-b-999999-c"]
    for folder in foreign:
        folder.mkdir()
    mine = cache.new_build_dir("export", "0123456789abcdef0123")
    assert cache.remove_stale_builds() == 0  # this process is alive: its build folder stays
    assert mine.is_dir() and all(folder.is_dir() for folder in foreign)


# --- 21. a poisoned stage cache entry -------------------------------------------------------------------


def _entry_result(cache_root: Path, stage: str) -> Path:
    results = list((cache_root / stage).glob(f"*/{RESULT}"))
    assert len(results) == 1, results
    return results[0]


def test_a_poisoned_cache_entry_is_rebuilt_not_chosen(capsys, searched, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(searched, out)
    config = tiny_config(tmp_path, '"quantize.backend" = ["none"]', student_epochs=1)
    first = json.loads(next(out.glob("search-*/manifest.json")).read_text())["best"]["metrics"]
    poisoned = _entry_result(out / ".cache" / "stages", "export")
    result = json.loads(poisoned.read_text())
    result["val_accuracy"] = 99.9
    poisoned.write_text(json.dumps(result))

    code, stdout, err = run_cli(capsys, "search", "--config", config, "--out", out, "--json", "--quiet")
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["best"]["metrics"]["val_accuracy"] == first["val_accuracy"] != 99.9
    assert summary["stage_counts"]["export"]["built"] >= 1
    assert "warning:" in err and str(poisoned.parent) in err


def test_a_cache_entry_without_its_digest_is_rebuilt(tmp_path, capsys):
    cache = StageCache(tmp_path / "cache")
    build = cache.new_build_dir("export", "k1")
    (build / "model.onnx").write_bytes(b"model")
    stored = cache.commit("export", "k1", build, {"val_accuracy": 50.0})
    assert cache.lookup("export", "k1")["val_accuracy"] == 50.0
    result_path = Path(stored["folder"]) / RESULT
    result = json.loads(result_path.read_text())
    result.pop("digest")
    result_path.write_text(json.dumps(result))
    assert cache.lookup("export", "k1") is None and not cache.entry("export", "k1").exists()
    assert "warning:" in capsys.readouterr().err
