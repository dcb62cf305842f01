"""A search's tables, plot and report (Markdown, and self-contained HTML with the plot inlined)."""

from __future__ import annotations

import base64
import csv
import html
import io
from pathlib import Path

from edgeport.core.artifacts import atomic_write_bytes


def _param_names(trials: list[dict]) -> list[str]:
    names: list[str] = []
    for trial in trials:
        names += [k for k in trial["params"] if k not in names]
    return names


def _row(trial: dict, metric: str) -> dict:
    m = trial.get("metrics", {})
    lat = m.get("latency") or {}
    row = {
        "val_accuracy": m.get("val_accuracy"),
        "test_accuracy": m.get("test_accuracy"),
        "fp32_val_accuracy": m.get("fp32_val_accuracy"),
        "teacher_val_accuracy": m.get("teacher_val_accuracy"),
        "p50_ms": lat.get("p50_ms"),
        "p90_ms": lat.get("p90_ms"),
    }
    if metric in ("p50", "p90"):  # the statistics with a bootstrap interval
        ci = lat.get(f"{metric}_ci_ms")
        row.update({f"{metric}_ci_low_ms": ci[0] if ci else None, f"{metric}_ci_high_ms": ci[1] if ci else None})
    else:
        row[f"{metric}_ms"] = lat.get(f"{metric}_ms")
    footprint = m.get("footprint") or {}
    return {
        **row,
        "size_bytes": m.get("size_bytes"),
        "kind": m.get("kind"),
        # worst of the trial's cold starts; empty when the search set no footprint constraint
        "peak_rss_mb": footprint.get("peak_rss_mb_worst"),
        "cold_start_ms": footprint.get("cold_start_ms_worst"),
        "device": m.get("latency_device"),  # the pool device that measured it; empty without --pool
    }


def trials_csv(trials: list[dict], metric: str) -> str:
    params = _param_names(trials)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    metric_cols = list(_row({}, metric))
    writer.writerow(["id", "status", *params, *metric_cols, "pareto", "chosen", "error"])
    for trial in trials:
        row = _row(trial, metric)
        writer.writerow(
            [
                trial["id"],
                trial["status"],
                *(trial["params"].get(p) for p in params),
                *("" if row[c] is None else row[c] for c in metric_cols),
                int(trial.get("pareto", False)),
                int(trial.get("chosen", False)),
                trial.get("error") or "",
            ]
        )
    return buffer.getvalue()


def plot_pareto(path: Path, trials: list[dict], metric: str, budget_ms: float | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [t for t in trials if t["status"] == "ok"]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    lat = lambda t: t["metrics"]["latency"][f"{metric}_ms"]  # noqa: E731
    acc = lambda t: t["metrics"]["val_accuracy"]  # noqa: E731
    for kind, marker in (("onnx-fp32", "s"), ("onnx-int8", "o")):
        points = [t for t in ok if t["metrics"]["kind"] == kind]
        if points:
            ax.scatter(
                [lat(t) for t in points],
                [acc(t) for t in points],
                marker=marker,
                color="0.6",
                label=f"trials ({kind.split('-')[1]})",
                zorder=2,
            )
    front = sorted((t for t in ok if t.get("pareto")), key=lat)
    if front:
        ax.plot(
            [lat(t) for t in front], [acc(t) for t in front], "-o", color="tab:blue", label="Pareto front", zorder=3
        )
    chosen = [t for t in ok if t.get("chosen")]
    if chosen:
        ax.scatter(
            [lat(chosen[0])],
            [acc(chosen[0])],
            s=220,
            facecolors="none",
            edgecolors="tab:red",
            linewidths=2,
            label="chosen",
            zorder=4,
        )
    if budget_ms is not None:
        ax.axvline(budget_ms, color="tab:red", linestyle="--", linewidth=1, label=f"budget {budget_ms:g} ms")
    low, high = ax.get_ylim()
    ax.set_ylim(low, min(high, 100.5))
    ax.set_xlabel(f"latency {metric} (ms)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("edgeport search: accuracy vs latency")
    ax.grid(True, alpha=0.3)
    if ok:
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def _fmt(value, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _param(value) -> str:
    """A searched value as the search space gives it: 0.0005 and 0.001 must not both read 0.00."""
    return "-" if value is None else str(value)


def _table(summary: dict, trials: list[dict]) -> tuple[list[str], list[list[str]]]:
    metric = summary["selection"]["latency_metric"]
    params = _param_names(trials)
    head = ["id", "status", *params, "val %", "test %", f"{metric} ms", f"{metric} 95% CI", "note"]
    rows = []
    for t in trials:
        m = t.get("metrics", {})
        lat = m.get("latency") or {}
        ci = lat.get(f"{metric}_ci_ms") if metric in ("p50", "p90") else None
        note = "chosen" if t.get("chosen") else ("Pareto" if t.get("pareto") else "")
        if t["status"] == "failed":
            note = t.get("error") or "failed"
        elif t["status"] == "pruned":
            note = f"pruned at {m.get('pruned_at_epochs')} epochs ({_fmt(m.get('rung_val_accuracy'))}%)"
        elif t.get("violations"):
            note = (note + "; " if note else "") + "; ".join(t["violations"])
        rows.append(
            [
                t["id"][:8],
                t["status"],
                *(_param(t["params"].get(p)) for p in params),
                _fmt(m.get("val_accuracy")),
                _fmt(m.get("test_accuracy")),
                _fmt(lat.get(f"{metric}_ms"), 4),
                f"{ci[0]:.4f}-{ci[1]:.4f}" if ci else "-",
                note,
            ]
        )
    return head, rows


def _headline(summary: dict) -> list[str]:
    sel = summary["selection"]
    lines = [
        f"Policy: {sel['policy']} (latency {sel['latency_metric']}"
        + (f", budget {sel['latency_budget_ms']:g} ms" if sel.get("latency_budget_ms") else "")
        + (
            f", max drop {sel['max_accuracy_drop']:g} points vs {sel['accuracy_reference']}"
            if sel["policy"] == "max-accuracy" and sel.get("max_accuracy_drop") is not None
            else ""
        )
        + (f", accuracy floor {sel['accuracy_floor']:g}%" if sel["policy"] == "min-latency" else "")
        + ")."
    ]
    best = summary.get("best")
    if best:
        m = best["metrics"]
        lines.append(
            f"Chosen: trial {summary['chosen'][:8]} ({m['kind']}): validation {m['val_accuracy']:.2f}%, "
            f"test {m.get('test_accuracy', float('nan')):.2f}%, "
            f"{sel['latency_metric']} {m['latency'][sel['latency_metric'] + '_ms']:.4f} ms; "
            f"{summary['chosen_because']}. Artifact: best/model.onnx."
        )
    else:
        lines.append(f"No candidate chosen: {summary['chosen_because']}.")
    run = summary["run"]
    lines.append(f"Stage reuse: {summary['stage_summary']}.")
    lines.append(
        f"Trials: {summary['status_counts']['ok']} ok, {summary['status_counts']['failed']} failed, "
        f"{summary['status_counts']['pruned']} pruned, of {summary['candidates']} candidates"
        + (f"; {run['skipped_by_time_budget']} not started (time budget)" if run.get("skipped_by_time_budget") else "")
        + f". Executor {run['executor']} x{run['workers']}; latency measured on "
        f"{run['bench_target']}, one benchmark at a time with no other stage running."
    )
    halving = run.get("halving")
    if halving and halving.get("rungs"):
        rungs = ", ".join(
            f"{r['students']} students x {r['epochs']} epochs -> kept {r['kept']}" for r in halving["rungs"]
        )
        lines.append(
            f"Successive halving (factor {halving['factor']}): {rungs}; survivors trained "
            f"{halving['full_epochs']} epochs."
        )
    lines.append(
        "Accuracy used to choose is validation accuracy; test accuracy is measured only for the chosen "
        "and Pareto candidates."
    )
    return lines


def render_markdown(summary: dict, trials: list[dict]) -> str:
    head, rows = _table(summary, trials)
    out = [
        "# edgeport search report",
        "",
        *(f"- {line}" for line in _headline(summary)),
        "",
        "![accuracy vs latency](pareto.png)",
        "",
        "## Trials",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    out += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    out += [
        "",
        "Files: trials.csv / trials.json (every trial), pareto.json (front and choice), pareto.png, "
        "best/ (the chosen artifact and its manifest), search.db (the trial store), manifest.json.",
        "",
    ]
    return "\n".join(out)


def render_html(summary: dict, trials: list[dict], plot: Path) -> str:
    head, rows = _table(summary, trials)
    image = base64.b64encode(plot.read_bytes()).decode() if plot.is_file() else ""
    body = ["<h1>edgeport search report</h1>", "<ul>"]
    body += [f"<li>{html.escape(line)}</li>" for line in _headline(summary)]
    body += [
        "</ul>",
        f'<img alt="accuracy vs latency" src="data:image/png;base64,{image}">' if image else "",
        "<h2>Trials</h2>",
        "<table>",
        "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>",
    ]
    for row, trial in zip(rows, trials, strict=True):
        cls = ' class="chosen"' if trial.get("chosen") else (' class="pareto"' if trial.get("pareto") else "")
        body.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
    body.append("</table>")
    style = (
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;"
        "font-size:0.85em}td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}"
        "tr.chosen{background:#fde2e2}tr.pareto{background:#e2ecfd}img{max-width:100%}"
    )
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>edgeport search</title>'
        f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
