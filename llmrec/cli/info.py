"""`llmrec info`."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ..options import INFO_FORMATS, check_choice
from .common import Debug, command


@command
def info(
    file: Annotated[
        str, typer.Argument(metavar="FILE", help="A vector table written by embed or profile.")
    ],
    format: Annotated[
        str, typer.Option("--format", "-f", help=f"{' | '.join(INFO_FORMATS)}.")
    ] = "table",
    debug: Debug = False,
) -> None:
    """Show what a vector table holds: kind, rows, dim, model, pooling, strategy, version."""

    from ..io.vectors import read_meta

    check_choice("format", format, INFO_FORMATS)
    meta = read_meta(file)
    if format == "json":
        sys.stdout.write(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        return
    table = Table(title=file, show_header=False)
    for key in (
        "kind",
        "rows",
        "dim",
        "model",
        "model_fingerprint",
        "pooling",
        "normalized",
        "max_length",
        "template",
        "strategy",
        "half_life",
        "last_n",
        "max_history",
        "weight_col",
        "weight_mode",
        "version",
    ):
        if key in meta:
            table.add_row(key, meta[key])
    Console(highlight=False).print(table)
