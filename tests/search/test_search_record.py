"""The search's trial record and limits, without running a search: the stored layout, and who wins."""

from __future__ import annotations

import json
import sqlite3

import pytest

from edgeport.config import RunConfig
from edgeport.errors import ConfigError
from edgeport.search.limits import Clock, first_candidates, time_limit_s
from edgeport.search.options import SearchOptions
from edgeport.search.record import TrialRecord, trial_record
from edgeport.search.settings import SearchSettings
from edgeport.search.space import Candidate
from edgeport.search.store import TrialStore

STORED_KEYS = {"id", "position", "params", "status", "metrics", "artifacts", "timings", "error"}


def _candidate(index: int = 3) -> Candidate:
    return Candidate(f"cand{index}", index, {"quantize.backend": "none"}, RunConfig())


def test_the_candidates_index_is_stored_as_position_whatever_the_outcome():
    ok = trial_record(_candidate(), "ok", metrics={"val_accuracy": 90.0}, artifacts={"model": "m"}, timings={})
    failed = trial_record(_candidate(), "failed", error="student: boom")
    pruned = trial_record(_candidate(), "pruned", metrics={"pruned_at_rung": 1})
    for record in (ok, failed, pruned):
        assert record.to_dict().keys() == STORED_KEYS
        assert record.position == 3 and record.to_dict()["position"] == 3
    assert failed.to_dict()["metrics"] == {} and failed.error == "student: boom"


def test_a_record_is_frozen_and_knows_its_statuses():
    record = trial_record(_candidate(), "ok")
    with pytest.raises(AttributeError):
        record.status = "failed"  # type: ignore[misc]
    with pytest.raises(ValueError, match="'done' is not one of ok, failed, pruned"):
        TrialRecord("x", 0, {}, "done")  # type: ignore[arg-type]


def test_the_store_keeps_the_layout_earlier_searches_wrote(tmp_path):
    store = TrialStore(tmp_path / "search.db")
    store.add_trial(trial_record(_candidate(1), "failed", error="benchmark: no device"))
    store.add_trial(trial_record(_candidate(0), "ok", metrics={"val_accuracy": 91.5}, timings={"student": 1.0}))
    store.close()
    with sqlite3.connect(tmp_path / "search.db") as db:
        rows = db.execute(
            "SELECT id, position, params, status, metrics, artifacts, error, timings FROM trials"
        ).fetchall()
    by_id = {r[0]: r for r in rows}
    # A failed trial's row is what the dicts of earlier versions gave: empty JSON objects, not NULLs.
    assert by_id["cand1"][1:] == (1, '{"quantize.backend": "none"}', "failed", "{}", "{}", "benchmark: no device", "{}")
    assert json.loads(by_id["cand0"][4]) == {"val_accuracy": 91.5} and by_id["cand0"][6] is None
    reopened = TrialStore(tmp_path / "search.db")
    assert [t["id"] for t in reopened.trials()] == ["cand0", "cand1"]  # ordered by position
    assert reopened.done_ids() == {"cand0"}  # failed trials are retried on resume
    reopened.close()


def _settings(**extra) -> SearchSettings:
    return SearchSettings.model_validate({"space": {"quantize.backend": ["none"]}, **extra})


def test_max_trials_refuses_a_larger_space_unless_allowed():
    candidates = [_candidate(i) for i in range(3)]
    with pytest.raises(ConfigError, match="3 candidates, more than max_trials 2"):
        first_candidates(candidates, SearchOptions(max_trials=2), _settings())
    allowed = first_candidates(candidates, SearchOptions(allow_large_grid=True), _settings(max_trials=2))
    assert [c.index for c in allowed] == [0, 1]


def test_the_command_lines_time_limit_wins_over_the_search_table():
    assert time_limit_s(SearchOptions(), _settings()) is None
    assert time_limit_s(SearchOptions(), _settings(time_budget="2m")) == 120
    assert time_limit_s(SearchOptions(time_limit="90"), _settings(time_budget="2m")) == 90
    with pytest.raises(ConfigError, match="not a duration"):
        time_limit_s(SearchOptions(time_limit="soon"), _settings())
    assert not Clock(None).over_limit() and Clock(1e-9).limit_s == 1e-9
