"""`llmrec evaluate`."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ..options import REPORT_FORMATS, check_choice
from .common import Debug, Quiet, check_outputs, command, say


@command
def evaluate(
    rankings: Annotated[
        list[str],
        typer.Argument(
            metavar="RANKINGS...",
            help="Rankings CSV files (user_id,rank,item_id[,score]); the first is the reference.",
        ),
    ],
    truth: Annotated[
        str | None,
        typer.Option(
            rich_help_panel="Input and output", help="Held-out interactions (user_id,item_id)."
        ),
    ] = None,
    impressions: Annotated[
        str | None,
        typer.Option(
            rich_help_panel="Input and output",
            help="Instead of --truth, an impression log "
            "(impression_id,user_id,item_id,clicked[,converted]): AUC, MRR and nDCG per "
            "impression as MIND, CTR@k and conversion@k.",
        ),
    ] = None,
    k: Annotated[
        str,
        typer.Option("-k", rich_help_panel="Input and output", help="Cut-offs, comma-separated."),
    ] = "5,10,20",
    format: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            rich_help_panel="Input and output",
            help=f"{' | '.join(REPORT_FORMATS)} [default: from -o's ending, else table].",
        ),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            rich_help_panel="Input and output",
            help="Write the report here instead of stdout.",
        ),
    ] = None,
    items: Annotated[
        str | None,
        typer.Option(
            rich_help_panel="Beyond accuracy",
            help="Item vector table: catalog coverage, Gini and intra-list diversity.",
        ),
    ] = None,
    train: Annotated[
        str | None,
        typer.Option(
            rich_help_panel="Beyond accuracy",
            help="Training history: novelty and popularity (and the catalog).",
        ),
    ] = None,
    ci: Annotated[
        bool,
        typer.Option(
            "--ci",
            rich_help_panel="Intervals and tests",
            help="Add 95% bootstrap intervals over users.",
        ),
    ] = False,
    bootstrap: Annotated[
        int,
        typer.Option(rich_help_panel="Intervals and tests", help="Bootstrap resamples with --ci."),
    ] = 1000,
    seed: Annotated[
        int,
        typer.Option(
            rich_help_panel="Intervals and tests",
            help="Seed of the bootstrap and randomisation tests.",
        ),
    ] = 0,
    per_user: Annotated[
        str | None,
        typer.Option(
            rich_help_panel="Input and output",
            help="Also write per-user values (run, user_id, metrics...).",
        ),
    ] = None,
    plot: Annotated[
        str | None,
        typer.Option(
            rich_help_panel="Input and output",
            help="Also draw each metric against k (PNG/SVG/PDF).",
        ),
    ] = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Compute Precision, Recall, NDCG, MAP, MRR and HitRate at each k against held-out truth,
    or AUC, MRR, nDCG, CTR@k and conversion@k over the impressions of an impression log; with
    several runs, compare them to the first with paired tests."""
    from ..api import evaluate as evaluate_runs
    from ..evaluation.report import accounting, plot_report, render, rich_table
    from ..evaluation.scoring import parse_ks, per_user_frame
    from ..io.atomic import open_output
    from ..io.tables import write_frame

    outputs = [path for path in (output, per_user, plot) if path]
    check_outputs(outputs, [*rankings, truth, impressions, items, train])
    fmt = format or {".json": "json", ".md": "markdown"}.get(Path(output or "").suffix, "table")
    check_choice("format", fmt, REPORT_FORMATS)
    started = time.perf_counter()
    report = evaluate_runs(
        rankings,
        truth,
        parse_ks(k),
        impressions=impressions,
        items=items,
        train=train,
        ci=ci,
        resamples=bootstrap,
        seed=seed,
    )
    if per_user:
        write_frame(per_user_frame(report.runs), per_user)
    if plot:
        plot_report(report, plot)
    if output is None and fmt == "table":
        # on a terminal rich fits the screen; in a file or pipe, lines are never wrapped
        width = None if sys.stdout.isatty() else 400
        Console(highlight=False, width=width).print(rich_table(report))
        say(quiet, accounting(report))
        return
    text = render(report, fmt)
    if output is None:
        sys.stdout.write(text)
    else:
        with open_output(output) as handle:
            handle.write(text)
    written = ", ".join(outputs) or "stdout"
    first = report.runs[0]
    counted = (
        f"{first.impressions['evaluated']:,} impressions"
        if first.impressions
        else (f"{first.users_evaluated:,} users")
    )
    say(
        quiet,
        f"llmrec evaluate: {len(report.runs)} run(s), {counted} → {written}, "
        f"{time.perf_counter() - started:.1f} s",
    )
