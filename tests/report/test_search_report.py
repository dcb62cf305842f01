"""edgeport.report.search_report: trials.csv, pareto.png, report.md and report.html of a search, from
trial records built here (as edgeport.search.finish marks them), with no search run."""

from __future__ import annotations

import base64
import csv
import io
import re
import struct

import pytest

from edgeport.report.search_report import plot_pareto, render_html, render_markdown, trials_csv
from tests.report.manifests import search_summary, selection, trial

PNG = b"\x89PNG\r\n\x1a\n"
REASON = "highest validation accuracy among 3 feasible of 5 finished trials"


def judged() -> list[dict]:
    """Five finished trials, one failed, one pruned, marked as finish._judge marks them.

    (val %, p90 ms): T0 (96.0, 0.10), T1 (94.0, 0.08), T2 (95.0, 0.20), T3 (96.0, 0.12), T4 (97.0, 0.30).
    Not dominated: T0, T1, T4 (T2 and T3 are both less accurate or equal, and slower, than T0). With a
    0.25 ms budget T4 is infeasible, so T0 is chosen.
    """
    trials = [
        trial(0, 96.0, 0.10, test=95.5),
        trial(1, 94.0, 0.08, test=93.1),
        trial(2, 95.0, 0.20, kind="onnx-fp32"),
        trial(3, 96.0, 0.12),
        trial(4, 97.0, 0.30, kind="onnx-fp32", test=96.67),
        trial(5, None, None, status="failed", error="export: RuntimeError: op <Foo> | unsupported"),
        trial(
            6,
            None,
            None,
            status="pruned",
            metrics={"pruned_at_rung": 1, "pruned_at_epochs": 2, "rung_val_accuracy": 80.5},
        ),
    ]
    front, chosen = {0, 1, 4}, 0
    for t in trials:
        t["pareto"] = t["position"] in front
        t["chosen"] = t["position"] == chosen
        t["violations"] = ["p90 0.3 ms > budget 0.25 ms"] if t["position"] == 4 else []
    return trials


def summary_of(trials: list[dict], **changes) -> dict:
    sel = selection(latency_budget_ms=0.25)
    summary = search_summary(trials, trials[0]["id"], REASON, sel)
    summary.update(changes)
    return summary


def table_rows(markdown: str) -> dict[str, list[str]]:
    """The trials table of report.md, by short trial id."""
    rows = [line for line in markdown.splitlines() if line.startswith("| ") and not line.startswith("| id |")]
    cells = [[c.strip() for c in line.strip().strip("|").split(" | ")] for line in rows]
    return {row[0]: row for row in cells}


def short(position: int) -> str:
    return f"{position:04d}abcd"


def test_trials_table_marks_exactly_the_pareto_front_and_the_chosen_trial():
    trials = judged()
    rows = table_rows(render_markdown(summary_of(trials), trials))
    assert set(rows) == {short(i) for i in range(7)}
    notes = {key: row[-1] for key, row in rows.items()}
    assert notes[short(0)] == "chosen"  # chosen wins over Pareto
    assert notes[short(1)] == "Pareto"
    assert notes[short(4)] == "Pareto; p90 0.3 ms > budget 0.25 ms"  # on the front, but over budget
    assert notes[short(2)] == notes[short(3)] == ""  # dominated by trial 0
    assert sum(note.startswith("Pareto") for note in notes.values()) == 2
    assert [k for k, note in notes.items() if "chosen" in note] == [short(0)]


def test_trials_table_header_and_figures():
    trials = judged()
    markdown = render_markdown(summary_of(trials), trials)
    assert "| id | status | student.lr | quantize.backend | val % | test % | p90 ms | p90 95% CI | note |" in markdown
    assert table_rows(markdown)[short(0)] == [
        short(0),
        "ok",
        "0.001",
        "ort-static",
        "96.00",
        "95.50",
        "0.1000",
        "0.0950-0.1050",
        "chosen",
    ]
    assert table_rows(markdown)[short(2)][5] == "-"  # test accuracy is not measured off the front


def test_searched_values_are_shown_as_given_not_rounded():
    """Learning rates 0.001 .. 0.005 once all read 0.00 (two decimals, as for accuracies)."""
    trials = judged()
    rows = table_rows(render_markdown(summary_of(trials), trials))
    assert [rows[short(i)][2] for i in range(5)] == ["0.001", "0.002", "0.003", "0.004", "0.005"]


def test_a_parameter_a_trial_does_not_use_is_a_dash():
    trials = judged()
    trials[2]["params"] = {"student.lr": 0.003, "quantize.backend": "none", "quantize.per_channel": None}
    trials[3]["params"] = {**trials[3]["params"], "quantize.per_channel": False}
    markdown = render_markdown(summary_of(trials), trials)
    assert "| quantize.per_channel |" in markdown
    rows = table_rows(markdown)
    assert rows[short(2)][3:5] == ["none", "-"] and rows[short(3)][4] == "False" and rows[short(0)][4] == "-"


def test_failed_and_pruned_trials_say_why():
    trials = judged()
    rows = table_rows(render_markdown(summary_of(trials), trials))
    failed, pruned = rows[short(5)], rows[short(6)]
    assert failed[1] == "failed" and failed[4:8] == ["-", "-", "-", "-"]
    # a '|' in an error would split the Markdown cell: it becomes '/'
    assert failed[-1] == "export: RuntimeError: op <Foo> / unsupported"
    assert pruned[1] == "pruned" and pruned[-1] == "pruned at 2 epochs (80.50%)"


def test_a_metric_without_a_bootstrap_interval_has_no_interval():
    trials = judged()
    summary = summary_of(trials, selection=selection(latency_metric="mean"))
    markdown = render_markdown(summary, trials)
    assert "| mean ms | mean 95% CI |" in markdown
    row = table_rows(markdown)[short(0)]
    assert row[6:8] == ["0.0850", "-"]


def test_headline_states_the_policy_the_choice_and_the_trial_counts():
    trials = judged()
    markdown = render_markdown(summary_of(trials), trials)
    bullets = [line[2:] for line in markdown.splitlines() if line.startswith("- ")]
    assert bullets[0] == "Policy: max-accuracy (latency p90, budget 0.25 ms)."
    assert bullets[1] == (
        f"Chosen: trial {short(0)} (onnx-int8): validation 96.00%, test 95.50%, p90 0.1000 ms; {REASON}. "
        "Artifact: best/model.onnx."
    )
    assert bullets[3].startswith("Trials: 5 ok, 1 failed, 1 pruned, of 7 candidates. Executor process x2;")
    assert "not started (time budget)" not in bullets[3]


@pytest.mark.parametrize(
    "changes, policy",
    [
        ({}, "Policy: max-accuracy (latency p90)."),
        (
            {"max_accuracy_drop": 1.5, "accuracy_reference": "teacher"},
            "Policy: max-accuracy (latency p90, max drop 1.5 points vs teacher).",
        ),
        (
            {"policy": "min-latency", "accuracy_floor": 93.0, "latency_metric": "p50"},
            "Policy: min-latency (latency p50, accuracy floor 93%).",
        ),
        (
            {"policy": "weighted", "latency_budget_ms": 2.5, "max_accuracy_drop": 1.5},
            "Policy: weighted (latency p90, budget 2.5 ms).",  # the drop applies to max-accuracy only
        ),
    ],
)
def test_headline_policy_line(changes, policy):
    trials = judged()
    markdown = render_markdown(summary_of(trials, selection=selection(**changes)), trials)
    assert f"- {policy}\n" in markdown


def test_no_choice_says_why_and_names_no_artifact():
    trials = judged()
    for t in trials:
        t["chosen"] = False
    summary = search_summary(trials, None, "none of 5 finished trials meets the constraints (...)")
    markdown = render_markdown(summary, trials)
    assert "- No candidate chosen: none of 5 finished trials meets the constraints (...).\n" in markdown
    assert "Chosen:" not in markdown and "| chosen |" not in markdown


def test_time_budget_and_successive_halving_are_reported_when_they_happened():
    trials = judged()
    halving = {
        "factor": 3,
        "full_epochs": 9,
        "students": 9,
        "rungs": [{"students": 9, "epochs": 1, "kept": 3}, {"students": 3, "epochs": 3, "kept": 1}],
    }
    summary = summary_of(trials)
    summary["run"].update(skipped_by_time_budget=4, halving=halving)
    markdown = render_markdown(summary, trials)
    assert "of 7 candidates; 4 not started (time budget). Executor" in markdown
    assert (
        "- Successive halving (factor 3): 9 students x 1 epochs -> kept 3, 3 students x 3 epochs -> kept 1; "
        "survivors trained 9 epochs.\n"
    ) in markdown
    summary["run"]["halving"] = {"factor": 3, "rungs": [], "note": "nothing to halve"}
    assert "Successive halving" not in render_markdown(summary, trials)


def test_markdown_links_the_plot_and_names_the_other_files():
    trials = judged()
    markdown = render_markdown(summary_of(trials), trials)
    assert markdown.startswith("# edgeport search report\n")
    assert "![accuracy vs latency](pareto.png)" in markdown
    assert "pareto.json (front and choice)" in markdown and markdown.endswith("\n")


def test_csv_has_every_trial_every_parameter_and_its_front_and_choice_flags():
    trials = judged()
    rows = list(csv.DictReader(io.StringIO(trials_csv(trials, "p90"))))
    assert [r["id"] for r in rows] == [t["id"] for t in trials]  # the full id, not the short one
    assert [r["pareto"] for r in rows] == ["1", "1", "0", "0", "1", "0", "0"]
    assert [r["chosen"] for r in rows] == ["1", "0", "0", "0", "0", "0", "0"]
    first = rows[0]
    assert float(first["student.lr"]) == 0.001 and first["quantize.backend"] == "ort-static"
    assert float(first["val_accuracy"]) == 96.0 and float(first["p90_ms"]) == 0.1
    assert float(first["p90_ci_low_ms"]) == pytest.approx(0.095) and float(first["p90_ci_high_ms"]) == pytest.approx(
        0.105
    )
    assert first["kind"] == "onnx-int8" and first["size_bytes"] == "15000"
    assert rows[2]["test_accuracy"] == ""  # not measured: empty, not 'None'
    # the error keeps its comma-free text whole, in one quoted or unquoted cell
    assert rows[5]["error"] == "export: RuntimeError: op <Foo> | unsupported" and rows[5]["val_accuracy"] == ""
    assert rows[6]["status"] == "pruned" and rows[6]["p90_ms"] == ""


def test_csv_columns_follow_the_latency_metric():
    trials = judged()
    header = trials_csv(trials, "p90").splitlines()[0].split(",")
    assert {"p90_ci_low_ms", "p90_ci_high_ms"} <= set(header) and "mean_ms" not in header
    header = trials_csv(trials, "mean").splitlines()[0].split(",")
    assert "mean_ms" in header and not any("ci" in h for h in header)
    assert header[-3:] == ["pareto", "chosen", "error"]


def test_csv_quotes_a_comma_in_an_error():
    trials = judged()
    trials[5]["error"] = 'student: ValueError: expected 3, got "4"'
    rows = list(csv.DictReader(io.StringIO(trials_csv(trials, "p90"))))
    assert rows[5]["error"] == 'student: ValueError: expected 3, got "4"'


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG)
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk comes first
    return width, height


@pytest.fixture(scope="module")
def plot(tmp_path_factory):
    """One pareto.png for the module (matplotlib's first figure is the slow part)."""
    path = tmp_path_factory.mktemp("search") / "pareto.png"
    plot_pareto(path, judged(), "p90", 0.25)
    return path


def test_plot_is_a_png_of_the_documented_size(plot):
    assert png_size(plot.read_bytes()) == (770, 495)  # 7 x 4.5 inches at 110 dpi


def test_plot_without_finished_trials_still_writes_an_image(tmp_path):
    """Every trial failed: an empty plot (no legend to draw), not a crash that loses the report."""
    trials = [t for t in judged() if t["status"] != "ok"]
    path = tmp_path / "pareto.png"
    plot_pareto(path, trials, "p90", None)
    assert png_size(path.read_bytes()) == (770, 495)


def test_html_is_self_contained_with_the_plot_inlined(plot):
    trials = judged()
    page = render_html(summary_of(trials), trials, plot)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    (source,) = re.findall(r'<img [^>]*src="([^"]+)"', page)
    assert source.startswith("data:image/png;base64,")
    assert base64.b64decode(source.split(",", 1)[1]) == plot.read_bytes()
    assert not re.search(r"https?://|<link|<script|src=\"(?!data:)", page)  # nothing fetched from elsewhere


def test_html_without_a_plot_file_has_no_broken_image(tmp_path):
    trials = judged()
    page = render_html(summary_of(trials), trials, tmp_path / "missing.png")
    assert "<img" not in page and "<table>" in page


def test_html_rows_are_classed_by_front_and_choice_and_text_is_escaped(plot):
    trials = judged()
    page = render_html(summary_of(trials), trials, plot)
    classes = re.findall(r'<tr( class="\w+")?><td>(\w+)</td>', page)
    assert classes == [
        (' class="chosen"', short(0)),
        (' class="pareto"', short(1)),
        ("", short(2)),
        ("", short(3)),
        (' class="pareto"', short(4)),
        ("", short(5)),
        ("", short(6)),
    ]
    assert "op &lt;Foo&gt; | unsupported" in page and "<Foo>" not in page  # HTML needs no "|" -> "/"
    assert "<li>Policy: max-accuracy (latency p90, budget 0.25 ms).</li>" in page


def test_html_table_matches_the_markdown_table(plot):
    trials = judged()
    summary = summary_of(trials)
    markdown_rows = table_rows(render_markdown(summary, trials))
    page = render_html(summary, trials, plot)
    for key, cells in markdown_rows.items():
        html_cells = re.search(rf"<tr[^>]*><td>{key}</td>(.*?)</tr>", page)
        assert html_cells is not None
        shown = [key, *re.findall(r"<td>(.*?)</td>", html_cells.group(1))]
        assert [c.replace("&lt;", "<").replace("&gt;", ">") for c in shown] == [
            c.replace(" / ", " | ") if key == short(5) else c for c in cells
        ]
