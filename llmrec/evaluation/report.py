"""Rendering evaluations: a rich table for people, JSON for machines, Markdown for documents,
and a plot of every metric against k.

One run renders as a grid (metric × k). Several runs render side by side, one row per
metric@k, with each run's difference from the first, paired-test p-values and per-user
win/tie/loss counts; a difference whose randomisation-test p < 0.05 is marked with `*`.
"""

from __future__ import annotations

import io
import json
import os

from rich.console import Console
from rich.table import Table

from ..errors import InputError
from ..options import ReportFormat, flag
from .metrics import DISPLAY_NAMES
from .results import (
    SIGNIFICANCE,
    Evaluation,
    Report,
    accounting,
    as_report,
    measures,
    report_dict,
    run_labels,
)

__all__ = ["accounting", "plot_report", "render", "report_dict", "rich_table", "to_json"]

BEYOND_NAMES = {
    "coverage": "Coverage",
    "gini": "Gini",
    "novelty": "Novelty (bits)",
    "popularity": "Avg popularity",
    "ild": "Diversity (ILD)",
}
IMPRESSION_NAMES = {"auc": "AUC", "ctr": "CTR", "conversion": "Conversion"}
ALL_NAMES = {"auc": "AUC", **DISPLAY_NAMES, **BEYOND_NAMES, **IMPRESSION_NAMES}
WHOLE = "all"  # the column of measures without a cut-off (AUC, MRR of an impression)


def row_names(report: Report) -> list[str]:
    """Measure names (without @k) present in the report, accuracy first."""
    present = {key.split("@")[0] for run in report.runs for key in measures(run)}
    return [name for name in ALL_NAMES if name in present]


def _keys(report: Report, name: str) -> list[str]:
    """The keys of a measure: `name` alone when it has no cut-off, else `name@k` per k."""
    if any(name in measures(run) for run in report.runs):
        return [name]
    return [f"{name}@{k}" for k in report.ks]


def to_json(result: Evaluation | Report) -> str:
    return json.dumps(report_dict(result), indent=2) + "\n"


def _value(name: str, value: float) -> str:
    return f"{value:.1f}" if name == "popularity" else f"{value:.4f}"


def _cell(report: Report, run: Evaluation, key: str) -> str:
    name = key.split("@")[0]
    value = measures(run).get(key)
    if value is None:
        return "–"
    text = _value(name, value)
    interval = report.intervals.get(run.name, {}).get(key)
    if interval:
        text += f" [{_value(name, interval[0])}, {_value(name, interval[1])}]"
    return text


def grid_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    """One run: a header and one row per measure, one column per k."""
    run = report.runs[0]
    names = row_names(report)
    whole = [name for name in names if _keys(report, name) == [name]]
    header = ["metric", *([WHOLE] if whole else []), *(f"@{k}" for k in report.ks)]
    rows = []
    for name in names:
        if name in whole:
            cells = [_cell(report, run, name), *("–" for _ in report.ks)]
        else:
            cells = [
                *(["–"] if whole else []),
                *(_cell(report, run, key) for key in _keys(report, name)),
            ]
        rows.append([ALL_NAMES[name], *cells])
    return header, rows


def side_by_side_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    """Several runs: one row per measure@k; per extra run its value, Δ, p-values, W/T/L."""
    labels = run_labels(report)
    header = ["metric", labels[0]]
    for label in labels[1:]:
        header += [label, "Δ", "p (t)", "p (rand)", "W/T/L"]
    rows = []
    for name in row_names(report):
        for key in _keys(report, name):
            label = ALL_NAMES[name] + key[len(name) :]
            row = [label, _cell(report, report.runs[0], key)]
            for run, comparison in zip(report.runs[1:], report.comparisons, strict=True):
                row.append(_cell(report, run, key))
                row += _comparison_cells(comparison, key, name)
            rows.append(row)
    return header, rows


def _comparison_cells(comparison, key: str, name: str) -> list[str]:
    if key not in comparison.columns:
        return ["", "", "", ""]
    i = comparison.columns.index(key)
    test = comparison.test
    mark = "*" if test.p_randomization[i] < SIGNIFICANCE else ""
    diff = test.difference[i]
    return [
        f"{'+' if diff >= 0 else ''}{_value(name, diff)}{mark}",
        _p_value(test.p_ttest[i]),
        _p_value(test.p_randomization[i]),
        f"{test.wins[i]}/{test.ties[i]}/{test.losses[i]}",
    ]


def _p_value(p: float) -> str:
    return "<1e-16" if p < 1e-16 else f"{p:.3g}"


def table_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    return side_by_side_rows(report) if len(report.runs) > 1 else grid_rows(report)


def to_markdown(result: Evaluation | Report) -> str:
    report = as_report(result)
    header, rows = table_rows(report)
    lines = [
        "| " + " | ".join(header) + " |",
        "|---|" + "---:|" * (len(header) - 1),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]
    return "\n".join(lines) + f"\n\n{accounting(report)}.\n"


def rich_table(result: Evaluation | Report) -> Table:
    report = as_report(result)
    header, rows = table_rows(report)
    title = "llmrec evaluate"
    if len(report.runs) == 1:
        title += f" {report.runs[0].name}"
    table = Table(title=title)
    table.add_column(header[0])
    for column in header[1:]:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*row)
    return table


def render(result: Evaluation | Report, fmt: ReportFormat) -> str:
    """The report as text in `fmt` (table renders without colour, for files and pipes)."""
    if fmt == "json":
        return to_json(result)
    if fmt == "markdown":
        return to_markdown(result)
    buffer = io.StringIO()
    Console(file=buffer, width=400, color_system=None).print(rich_table(result))
    return buffer.getvalue() + accounting(result) + "\n"


def plot_report(result: Evaluation | Report, path: str) -> None:
    """Draw each per-user measure against k, one line per run, with interval bands."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise InputError(f"{flag('plot')} needs matplotlib: pip install 'llmrec[plot]'") from exc
    from ..io.atomic import atomic_path

    report = as_report(result)
    names = [
        n
        for n in row_names(report)
        if all(f"{n}@{report.ks[0]}" in r.per_user for r in report.runs)
    ]
    columns = 3
    rows = -(-len(names) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False)
    for axis, name in zip(axes.flat, names, strict=False):
        for label, run in zip(run_labels(report), report.runs, strict=True):
            means = [run.per_user[f"{name}@{k}"].mean() for k in report.ks]
            (line,) = axis.plot(report.ks, means, marker="o", label=label)
            interval = report.intervals.get(run.name)
            if interval:
                low = [interval[f"{name}@{k}"][0] for k in report.ks]
                high = [interval[f"{name}@{k}"][1] for k in report.ks]
                axis.fill_between(report.ks, low, high, color=line.get_color(), alpha=0.2)
        axis.set_title(ALL_NAMES[name])
        axis.set_xlabel("k")
        axis.set_xticks(report.ks)
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(names) :]:
        axis.set_visible(False)
    axes.flat[0].legend()
    suffix = " (bands: 95% bootstrap intervals)" if report.resamples else ""
    counted = report.runs[0].impressions.get("evaluated", report.runs[0].users_evaluated)
    figure.suptitle(f"llmrec evaluate: {counted:,} {report.runs[0].unit}{suffix}")
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format=os.path.splitext(path)[1].lstrip(".") or "png", dpi=110)
    plt.close(figure)
