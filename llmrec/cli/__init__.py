"""The `llmrec` command line: a thin Typer skin over the stage functions.

Each command parses options, calls one stage function, and reports on stderr: rich progress
bars (only on a terminal, never with --quiet) and one closing summary line. Data goes to files
or stdout. User errors print one line and exit 2; anything else exits 1 without a traceback
unless --debug is given.
"""

from __future__ import annotations

import os
import sys

from . import embedding, evaluation, info, profiles, ranking, splitting, training, tuning  # noqa: F401  (registers the commands)
from .common import app


def main() -> None:
    """Console-script entry point; keeps the hub offline unless a command allows downloads."""
    if "--allow-download" not in sys.argv:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    app()
