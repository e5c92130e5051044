"""Rendering an evaluation: a rich table for people, JSON for machines, Markdown for documents."""

from __future__ import annotations

import io
import json

from rich.console import Console
from rich.table import Table

from .evaluate import Evaluation
from .metrics import DISPLAY_NAMES, METRICS

FORMATS = ("table", "json", "markdown")
CONVENTIONS = (
    "binary relevance; users in the truth but missing from the rankings score 0; "
    "Precision@k divides by k; AP@k and Recall@k divide by |R|; "
    "IDCG@k uses min(|R|, k) hits (as ranx and trec_eval)"
)


def report_dict(result: Evaluation) -> dict:
    """The report as plain data: k values, metric means, user accounting, sources."""
    return {
        "k": result.ks,
        "metrics": {key: round(value, 6) for key, value in result.summary().items()},
        "users": {
            "evaluated": result.users_evaluated,
            "missing_from_rankings": result.users_missing,
            "ranked_without_truth": result.users_ignored,
        },
        "longest_list": result.longest_list,
        "sources": result.sources,
        "conventions": CONVENTIONS,
    }


def to_json(result: Evaluation) -> str:
    return json.dumps(report_dict(result), indent=2) + "\n"


def accounting(result: Evaluation) -> str:
    """One sentence on which users were scored, and on lists shorter than the largest k."""
    short = ""
    if result.longest_list < max(result.ks):
        short = (
            f"; lists hold at most {result.longest_list} items, so metrics at larger k "
            "count only those"
        )
    return (
        f"{result.users_evaluated:,} users evaluated; {result.users_missing:,} in the truth "
        f"but missing from the rankings (scored 0); {result.users_ignored:,} ranked without "
        f"truth (ignored){short}"
    )


def to_markdown(result: Evaluation) -> str:
    summary = result.summary()
    lines = [
        "| metric | " + " | ".join(f"@{k}" for k in result.ks) + " |",
        "|---|" + "---:|" * len(result.ks),
    ]
    for name in METRICS:
        values = " | ".join(f"{summary[f'{name}@{k}']:.4f}" for k in result.ks)
        lines.append(f"| {DISPLAY_NAMES[name]} | {values} |")
    return "\n".join(lines) + f"\n\n{accounting(result)}.\n"


def rich_table(result: Evaluation) -> Table:
    summary = result.summary()
    title = result.sources.get("rankings", "")
    table = Table(title=f"llmrec evaluate {title}".strip())
    table.add_column("metric")
    for k in result.ks:
        table.add_column(f"@{k}", justify="right")
    for name in METRICS:
        table.add_row(DISPLAY_NAMES[name], *(f"{summary[f'{name}@{k}']:.4f}" for k in result.ks))
    return table


def render(result: Evaluation, fmt: str) -> str:
    """The report as text in `fmt` (table renders without colour, for files and pipes)."""
    if fmt == "json":
        return to_json(result)
    if fmt == "markdown":
        return to_markdown(result)
    buffer = io.StringIO()
    Console(file=buffer, width=100, color_system=None).print(rich_table(result))
    return buffer.getvalue() + accounting(result) + "\n"
