"""The gate's verdict for people (table), scripts (JSON), CI test reports (JUnit XML) and GitHub Actions.

The files written here (--junit, $GITHUB_STEP_SUMMARY) are checked before the gate reads or measures
anything (``check_outputs``); a write that still fails afterwards is an ArtifactError naming the file
and the verdict, raised only after the verdict has been printed.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from edgeport.benchmarks.records import ONNXRUNTIME
from edgeport.core.artifacts import atomic_write_bytes, check_output_file, read_only, refuse_non_regular, same_file
from edgeport.errors import ArtifactError, EdgeportError

JUNIT = "--junit report"
SUMMARY = "GITHUB_STEP_SUMMARY file"


def _measured(check: dict) -> str:
    value = check["measured"]
    if value is None:
        return "-"
    return f"{value:.4g} {check['unit']}"


def _interval(check: dict) -> str:
    interval = check["interval"]
    return f"{interval[0]:.4g} - {interval[1]:.4g}" if interval else "-"


def rows(report: dict) -> list[list[str]]:
    return [
        [c["name"], c["budget"], _measured(c), _interval(c), c["verdict"].upper(), c["reason"]]
        for c in report["checks"]
    ]


HEADER = ["check", "budget", "measured", "95% interval", "verdict", "why"]


def print_table(report: dict) -> None:
    # rich (and edgeport.core.console, which imports it) only for the table: a gate that reports as JSON
    # or JUnit, and the gate library that imports check_outputs from here, do without it.
    from rich.table import Table
    from rich.text import Text

    from edgeport.core.console import make_console

    console = make_console()  # off a terminal (a CI log) 100 columns: the table fits, the reasons follow it
    table = Table(title=f"edgeport gate: target {report['target']} ({report['mode']} mode)", title_style=None)
    for column in HEADER[:-1]:  # "why" goes under the table, one whole line per check: a sentence per cell
        table.add_column(column, overflow="fold")  # would make the table too wide for a log, or cut it
    colours = {"pass": "green", "fail": "red", "inconclusive": "yellow"}
    for row, check in zip(rows(report), report["checks"], strict=True):
        cells: list[str | Text] = list(row[:-1])  # plain text: the console reads no markup (core/console.py)
        cells[4] = Text(row[4], style=colours[check["verdict"]])
        table.add_row(*cells)
    console.print(table)
    for row in rows(report):
        console.print(f"why {row[0]}: {row[-1]}", highlight=False, soft_wrap=True)
    console.print(
        f"artifact sha256 {report['artifact']['sha256'][:16]}..., {report['samples']} latency samples"
        + f" on runtime {report['settings'].get('runtime', ONNXRUNTIME.name)}"
        + _runtime_from(report["settings"].get("runtime_from"))
        + (f" ({report['extra_measurements']} extra measurement(s))" if report["extra_measurements"] else "")
    )
    verdict = report["verdict"].upper()
    note = " (allowed by --allow-inconclusive)" if report["verdict"] == "inconclusive" and report["passed"] else ""
    console.print(Text(f"gate {verdict}{note}", style="bold"))


def _runtime_from(source: str | None) -> str:
    """Why the gate measured on that runtime, when the budget did not say."""
    if source in (None, "budget"):
        return ""
    return " (the budget names none: onnxruntime)" if source == "default" else f" (as {source} deploys it)"


def _tolerated(report: dict, check: dict) -> bool:
    """An inconclusive check that --allow-inconclusive lets through."""
    return check["verdict"] == "inconclusive" and report["allow_inconclusive"]


def junit_xml(report: dict) -> bytes:
    """One testsuite, one testcase per check: a failed check is a <failure>; an inconclusive one too,
    unless --allow-inconclusive let it through, then it is <skipped> with the reason."""
    failures = sum(c["verdict"] != "pass" and not _tolerated(report, c) for c in report["checks"])
    skipped = sum(_tolerated(report, c) for c in report["checks"])
    suite = ET.Element(
        "testsuite",
        name=f"edgeport gate {report['target']}",
        tests=str(len(report["checks"])),
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
    )
    for check in report["checks"]:
        case = ET.SubElement(suite, "testcase", classname=f"edgeport.gate.{report['target']}", name=check["name"])
        if check["verdict"] != "pass":
            message = f"{check['verdict']}: measured {_measured(check)}, budget {check['budget']}: {check['reason']}"
            tag = "skipped" if _tolerated(report, check) else "failure"
            element = ET.SubElement(
                case, tag, message=message, **({} if tag == "skipped" else {"type": check["verdict"]})
            )
            element.text = f"interval {_interval(check)}"
    root = ET.Element("testsuites", name="edgeport gate", tests=str(len(report["checks"])), failures=str(failures))
    root.append(suite)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def step_summary_path() -> Path | None:
    """$GITHUB_STEP_SUMMARY, when set to something."""
    value = os.environ.get("GITHUB_STEP_SUMMARY")
    return Path(value) if value else None


def _check_summary(path: Path, inputs: list[tuple[str, Path]]) -> None:
    """The step summary is appended to: an existing file must be a writable regular file (its folder need
    not be writable). Appending to a FIFO would block the gate until a reader came; a device would take
    the summary away."""
    if not path.exists():
        check_output_file(path, tuple(p for _, p in inputs), what=SUMMARY)
        return
    if path.is_dir():
        raise ArtifactError(f"{path}: the {SUMMARY} is a folder")
    refuse_non_regular(path, SUMMARY)
    for what, source in inputs:
        if same_file(path, source):
            raise ArtifactError(f"{path}: the {SUMMARY} is the gate's input {what}; point it at another file")
    if read_only(path):
        raise ArtifactError(f"{path}: the {SUMMARY} exists and is read-only")


def check_outputs(junit: str | Path | None, summary: str | Path | None, inputs: list[tuple[str, Path]]) -> None:
    """Refuse, before the gate reads or measures anything, a --junit report or step summary that is one of
    the gate's ``inputs`` (``(what, path)``; same file after resolving links) or cannot be written."""
    try:
        if junit is not None:
            junit = Path(junit)
            for what, source in inputs:
                if source.exists() and same_file(junit, source):
                    raise ArtifactError(
                        f"{junit}: the {JUNIT} is the gate's input {what} ({source}); write it to another path"
                    )
            check_output_file(junit, tuple(p for _, p in inputs), what=JUNIT)
        if summary is not None:
            summary = Path(summary)
            if junit is not None and same_file(junit, summary):
                raise ArtifactError(f"{junit}: the {JUNIT} is also the {SUMMARY}; write it to another path")
            _check_summary(summary, inputs)
    except OSError as exc:  # e.g. a path inside a folder this user may not enter
        raise ArtifactError(
            f"{exc.filename or junit or summary}: cannot check the output ({exc.strerror or exc})"
        ) from exc


def write_junit(report: dict, path: str | Path) -> None:
    try:
        atomic_write_bytes(path, junit_xml(report))
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot write the {JUNIT} ({exc.strerror or exc})") from exc


def github_markdown(report: dict) -> str:
    lines = [
        f"### edgeport gate: {report['target']} — {report['verdict'].upper()}",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows(report)]
    lines += [
        "",
        f"Artifact `{report['artifact']['sha256'][:16]}`, {report['samples']} samples, mode {report['mode']}.",
        "",
    ]
    return "\n".join(lines)


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotations(report: dict) -> list[str]:
    """Workflow commands GitHub shows on the run: `::error` for failed checks, `::warning` for an
    inconclusive check that --allow-inconclusive let through."""
    lines = []
    for c in report["checks"]:
        if c["verdict"] == "pass":
            continue
        level = "warning" if _tolerated(report, c) else "error"
        title = _escape_property(f"edgeport gate {report['target']} {c['name']}")
        lines.append(
            f"::{level} title={title}::"
            + _escape_data(f"{c['verdict']}: measured {_measured(c)}, budget {c['budget']} ({c['reason']})")
        )
    return lines


def emit_github(report: dict, echo, to_stderr: bool = False) -> None:
    """``to_stderr``: when stdout carries JSON (the runner reads workflow commands from both streams).
    The annotations are printed even when the summary cannot be written; that failure is raised after them."""
    summary = step_summary_path()
    error = None
    if summary:
        try:
            refuse_non_regular(summary, SUMMARY)  # checked before measuring too; a FIFO would block the open
            with open(summary, "a", encoding="utf-8") as handle:
                handle.write(github_markdown(report) + "\n")
        except ArtifactError as exc:
            error = exc
        except OSError as exc:
            error = ArtifactError(f"{summary}: cannot append to the {SUMMARY} ({exc.strerror or exc})")
    else:
        echo("note: GITHUB_STEP_SUMMARY is not set; printing annotations only", err=True)
    for line in github_annotations(report):
        echo(line, err=to_stderr)
    if error is not None:
        raise error


def emit(report: dict, junit, github: bool, as_json: bool, echo, print_json) -> None:
    """Every output of a verdict. A report that cannot be written never hides or changes the verdict: the
    verdict is printed and the other reports written first, then one ArtifactError names what failed."""
    errors: list[str] = []
    if junit:
        try:
            write_junit(report, junit)
        except EdgeportError as exc:
            errors.append(str(exc))
    if as_json:
        print_json(report)
    else:
        print_table(report)
    if github:
        try:
            emit_github(report, echo, to_stderr=as_json)
        except EdgeportError as exc:
            errors.append(str(exc))
    if errors:
        raise ArtifactError(
            f"{'; '.join(errors)}; the verdict was {report['verdict'].upper()} but the report could not be written"
        )
