"""The stage cache's explicit version: part of every key, recorded in the cache root, checked before any work."""

from __future__ import annotations

import json

import pytest

from edgeport.cli import main
from edgeport.core.schemas import STAGE_CACHE
from edgeport.errors import ArtifactError
from edgeport.search import cache as cache_module
from edgeport.search.cache import RESULT, VERSION_FILE, StageCache, stage_key
from tests.helpers import tiny_config


def _old_cache(root, version: str | None):
    """A cache folder as an older edgeport left it: one entry, and its version file (None: none at all)."""
    entry = root / "teacher" / "0123456789abcdef0123"
    entry.mkdir(parents=True)
    (entry / RESULT).write_text(json.dumps({"files": {}}))
    if version is not None:
        (root / VERSION_FILE).write_text(f"{version}\n")
    return root


def _commit(cache: StageCache, key: str) -> dict:
    build = cache.new_build_dir("export", key)
    (build / "model.onnx").write_bytes(b"model")
    return cache.commit("export", key, build, {"val_accuracy": 50.0})


def test_a_new_cache_records_its_version(tmp_path):
    cache = StageCache(tmp_path / "new")
    assert (cache.root / VERSION_FILE).read_text().strip() == str(STAGE_CACHE)
    empty = tmp_path / "empty"
    (empty / ".tmp").mkdir(parents=True)  # hidden folders hold no entries: still a new cache
    StageCache(empty)
    assert (empty / VERSION_FILE).read_text().strip() == str(STAGE_CACHE)


def test_the_version_is_part_of_every_key(monkeypatch):
    key = stage_key("export", export={"exporter": "dynamo"}, student="abc")
    monkeypatch.setattr(cache_module, "STAGE_CACHE", STAGE_CACHE + 1)
    assert stage_key("export", export={"exporter": "dynamo"}, student="abc") != key


def test_a_cache_of_this_version_still_hits(tmp_path):
    first = StageCache(tmp_path / "cache")
    _commit(first, "k1")
    again = StageCache(tmp_path / "cache")  # a later search opening the same folder
    assert again.lookup("export", "k1")["val_accuracy"] == 50.0


@pytest.mark.parametrize(("version", "shown"), [(None, "1"), ("1", "1"), ("7", "7"), ("x", "'x'")])
def test_a_cache_of_another_version_is_refused(tmp_path, version, shown):
    root = _old_cache(tmp_path / "old", version)
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    with pytest.raises(ArtifactError) as refused:
        StageCache(root)
    message = str(refused.value)
    assert f"cache version {shown}" in message and f"cache version {STAGE_CACHE}:" in message
    assert str(root) in message and "delete" in message and "--cache" in message
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # nothing written, nothing removed


def test_search_refuses_an_older_cache_before_any_work(tmp_path, capsys):
    old = _old_cache(tmp_path / "old-cache", None)
    config = tiny_config(tmp_path, '"quantize.backend" = ["none"]', student_epochs=1)
    out = tmp_path / "out"
    code = main(["search", "--config", str(config), "--out", str(out), "--cache", str(old), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert str(old) in err and "older edgeport (cache version 1" in err and f"cache version {STAGE_CACHE}:" in err
    assert not out.exists() or not list(out.glob("search-*"))  # refused before the search folder
