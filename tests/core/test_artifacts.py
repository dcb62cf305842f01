import json
import os

import pytest

from edgeport.core.artifacts import Artifact, atomic_write_json, sha256_file, sha256_json
from edgeport.core.staging import RunFolder
from edgeport.errors import ArtifactError


def test_atomic_write_and_hash(tmp_path):
    path = tmp_path / "a.json"
    atomic_write_json(path, {"b": 1})
    assert json.loads(path.read_text()) == {"b": 1}
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    assert not [p for p in tmp_path.iterdir() if p.name != "a.json"]
    art = Artifact.from_file(path, "onnx-fp32")
    assert art.sha256 == sha256_file(path) and art.size_bytes == path.stat().st_size
    assert sha256_json({"a": 1, "b": 2}) == sha256_json({"b": 2, "a": 1})
    with pytest.raises(ArtifactError, match="kind 'pickle'"):
        Artifact.from_file(path, "pickle")


def _umask():
    current = os.umask(0)
    os.umask(current)
    return current


def test_run_folder_is_removed_on_failure(tmp_path):
    with pytest.raises(RuntimeError):
        with RunFolder(tmp_path, "r1") as folder:
            (folder.path / "half.onnx").write_text("x")
            raise RuntimeError("stage failed")
    assert list(tmp_path.iterdir()) == []


def test_run_folder_commits_only_with_a_manifest(tmp_path):
    with RunFolder(tmp_path, "r2") as folder:
        with pytest.raises(ArtifactError, match="no manifest.json"):
            folder.commit()
        atomic_write_json(folder.path / "manifest.json", {})
        final = folder.commit()
    assert final == tmp_path / "r2" and (final / "manifest.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["r2"]
    with pytest.raises(ArtifactError, match="already exists"):
        RunFolder(tmp_path, "r2")


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ArtifactError, match="not writable"):
        RunFolder(blocker / "runs", "r3")
