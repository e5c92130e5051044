"""What every command shares: the Typer app, one-line errors and exit codes, logs on stderr
(plain or JSON), progress bars, and the options several commands declare.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import functools
import inspect
import json
import os
import sys
from collections.abc import Callable, Iterator
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..errors import EXIT_BAD_INPUT, EXIT_FAILURE, LlmrecError
from ..options import ENGINES, HistoryColumns, Weighting, check_choice
from ..version import __version__
from .examples import epilog

try:  # recent typer ships its own copy of click, whose exceptions its parser raises
    from typer._click import exceptions as click_errors
except ImportError:  # older typer uses click itself
    from click import exceptions as click_errors

LOG_FORMATS = ("text", "json")


# How messages for people reach stderr: set once per run by --log-format (or LLMREC_LOG_FORMAT).
_log = {"format": os.environ.get("LLMREC_LOG_FORMAT", "text"), "command": "llmrec"}


def log(level: str, message: str, **fields) -> None:
    """Write one message on stderr: the plain line, or with --log-format json one JSON object
    per line (time, level, command, message and any fields) for log collectors."""
    if _log["format"] != "json":
        print(message, file=sys.stderr, flush=True)
        return
    record = {
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds"),
        "level": level,
        "command": _log["command"],
        "message": message,
        **fields,
    }
    print(json.dumps(record, ensure_ascii=False), file=sys.stderr, flush=True)


class OneLineErrors(typer.core.TyperGroup):
    """Click's usage errors as one line on stderr (exit 2), like every other llmrec error."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            result = super().main(args, prog_name, complete_var, False, **extra)
        except click_errors.NoArgsIsHelpError as exc:
            print(exc.ctx.get_help())
            sys.exit(0)
        except click_errors.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx else "llmrec"
            message = " ".join(exc.format_message().split())
            log("error", f"{where}: error: {message} (see '{where} --help')", exit_code=2)
            sys.exit(EXIT_BAD_INPUT)
        except click_errors.ClickException as exc:
            log("error", f"llmrec: error: {exc.format_message()}", exit_code=exc.exit_code)
            sys.exit(exc.exit_code)
        except typer.Abort:
            log("error", "llmrec: aborted", exit_code=EXIT_FAILURE)
            sys.exit(EXIT_FAILURE)
        sys.exit(result if isinstance(result, int) else 0)


app = typer.Typer(
    cls=OneLineErrors,
    name="llmrec",
    help="Recommendations from item descriptions with transformer language models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)


stderr = Console(stderr=True, highlight=False, soft_wrap=True)


Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")]


Engine = Annotated[
    str,
    typer.Option(
        rich_help_panel="Engine",
        help="local | ray: run on this machine, or on a Ray cluster (pip install 'llmrec[ray]').",
    ),
]


RayAddress = Annotated[
    str | None,
    typer.Option(
        rich_help_panel="Engine",
        help="With --engine ray: 'auto' (the cluster this machine belongs to) or "
        "ray://HOST:10001 [default: start a private local Ray on 127.0.0.1].",
    ),
]


Concurrency = Annotated[
    int | None,
    typer.Option(
        rich_help_panel="Engine",
        help="With --engine ray: workers at once [default: one per GPU share, else per CPU].",
    ),
]


Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks of unexpected errors.")]


HISTORY_PANEL = "History: columns and weighting"
# The options that read a history and weight its events, shared by `profile` and `rank`:
# (name, type, default, help), declared here once and added by `history_options`.
_HISTORY_OPTIONS = [
    ("user_col", str, "user_id", "History column holding user ids."),
    ("item_col", str, "item_id", "History column holding item ids."),
    (
        "time_col",
        str | None,
        None,
        "History column giving the order: unix seconds, ISO dates or any number "
        "[default: 'timestamp' if present, else file order].",
    ),
    ("strategy", str, "mean", "How history events are weighted: mean | decay | last | weighted."),
    (
        "half_life",
        str | None,
        None,
        "Recency decay: weight halves every N events (5) or span of time (30d, 12h).",
    ),
    ("last_n", int | None, None, "With --strategy last: the N most recent events."),
    ("max_history", int | None, None, "Use only each user's N most recent events."),
    (
        "weight_col",
        str | None,
        None,
        "With --strategy weighted: a rating (centred per user) or quantity column.",
    ),
    (
        "weight_mode",
        str,
        "auto",
        "auto | centered | log | raw (auto: centred for ratings, else log).",
    ),
    (
        "history_text_col",
        str | None,
        None,
        "History column of free text (e.g. 'Apple iPhone 12') instead of item ids.",
    ),
]


UserCol = Annotated[str, typer.Option(help=_HISTORY_OPTIONS[0][3])]
ItemCol = Annotated[str, typer.Option(help=_HISTORY_OPTIONS[1][3])]
TimeCol = Annotated[str | None, typer.Option(help=_HISTORY_OPTIONS[2][3])]


def left_default(ctx: typer.Context, name: str) -> bool:
    """Whether option `name` was left at its default (not given on the command line or by
    the environment)."""
    source = ctx.get_parameter_source(name)
    return source is None or source.name in ("DEFAULT", "DEFAULT_MAP")


def told_weighting(ctx: typer.Context, weighting: Weighting) -> Weighting | None:
    """`weighting`, or None when none of its options was given (the stage then chooses)."""
    told = [f.name for f in dataclasses.fields(Weighting) if not left_default(ctx, f.name)]
    return weighting if told else None


def history_options(func: Callable) -> Callable:
    """Give a command the shared history options; it receives them as `columns`
    (HistoryColumns) and `weighting` (Weighting) instead of ten separate values."""
    signature = inspect.signature(func, eval_str=True)
    kept = [p for name, p in signature.parameters.items() if name not in ("columns", "weighting")]
    added = [
        inspect.Parameter(
            name,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            default=default,
            annotation=Annotated[kind, typer.Option(help=help, rich_help_panel=HISTORY_PANEL)],
        )
        for name, kind, default, help in _HISTORY_OPTIONS
    ]
    tail = [p for p in kept if p.name in ("quiet", "debug")]
    head = [p for p in kept if p.name not in ("quiet", "debug")]

    @functools.wraps(func)
    def wrapper(**kwargs):
        values = {name: kwargs.pop(name) for name, *_ in _HISTORY_OPTIONS}
        columns = HistoryColumns(
            values["user_col"], values["item_col"], values["time_col"], values["history_text_col"]
        )
        weighting = Weighting(
            values["strategy"],
            values["half_life"],
            values["last_n"],
            values["max_history"],
            values["weight_col"],
            values["weight_mode"],
        )
        return func(**kwargs, columns=columns, weighting=weighting)

    wrapper.__signature__ = signature.replace(parameters=head + added + tail)
    wrapper.__annotations__ = {p.name: p.annotation for p in head + added + tail}
    return wrapper


def command(func: Callable) -> Callable:
    """Register a subcommand whose errors become one line on stderr and an exit code."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        debug = kwargs.get("debug", False)
        _log["command"] = func.__name__
        try:
            return func(*args, **kwargs)
        except LlmrecError as exc:
            if debug:
                raise
            log("error", f"llmrec {func.__name__}: error: {exc}", exit_code=exc.exit_code)
            raise typer.Exit(exc.exit_code) from None
        except (typer.Exit, typer.Abort):
            raise
        except BrokenPipeError:
            # the reader of stdout went away (e.g. `| head`): stop quietly, as shell tools do
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(141) from None
        except KeyboardInterrupt:
            log("error", "llmrec: interrupted", exit_code=130)
            raise typer.Exit(130) from None
        except Exception as exc:
            if debug:
                raise
            detail = " ".join(str(exc).split())[:300]
            log(
                "error",
                f"llmrec {func.__name__}: internal error: {type(exc).__name__}: "
                f"{detail} (rerun with --debug for the traceback)",
                exit_code=EXIT_FAILURE,
            )
            raise typer.Exit(EXIT_FAILURE) from None

    return app.command(name=func.__name__, epilog=epilog(func.__name__))(wrapper)


class BarProgress:
    """A verb's progress (`llmrec.api.Progress`) drawn as one task of a rich progress bar."""

    def __init__(self, bar: Progress, description: str) -> None:
        self.bar, self.task = bar, bar.add_task(description, total=None)

    def start(self, total: int | None) -> None:
        self.bar.update(self.task, total=total)

    def advance(self, done: int = 1, note: str | None = None) -> None:
        self.bar.update(self.task, advance=done, **({"description": note} if note else {}))


@contextlib.contextmanager
def progress_of(quiet: bool, description: str) -> Iterator[BarProgress]:
    """A verb's progress bar on stderr, shown only on a terminal and never with --quiet."""
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=True,
        disable=quiet or not sys.stderr.isatty(),
    )
    with bar:
        yield BarProgress(bar, description)


def say(quiet: bool, message: str) -> None:
    """The closing summary of a command (or a note), unless --quiet."""
    if not quiet:
        log("info", message)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"llmrec {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    log_format: Annotated[
        str,
        typer.Option(
            help="text | json: messages on stderr as plain lines, or one JSON object per line "
            "(time, level, command, message, exit_code) for log collectors "
            "[env LLMREC_LOG_FORMAT]."
        ),
    ] = "",
) -> None:
    """Turn item descriptions into recommendations: embed → profile → rank → evaluate."""
    if log_format and log_format not in LOG_FORMATS:
        log(
            "error", f"llmrec: error: --log-format {log_format!r}: choose text or json", exit_code=2
        )
        raise typer.Exit(EXIT_BAD_INPUT)
    if log_format:
        _log["format"] = log_format


def ray_options(engine: str, address: str | None, concurrency: int | None, gpus: float = 0.0):
    """RayOptions for --engine ray (None for local); Ray-only options need --engine ray."""
    check_choice("engine", engine, ENGINES)
    if engine == "local":
        if address or concurrency or gpus:
            raise LlmrecError(
                "--ray-address, --concurrency and --num-gpus-per-worker need --engine ray"
            )
        return None
    if concurrency is not None and concurrency < 1:
        raise LlmrecError(f"--concurrency {concurrency}: must be at least 1")
    if gpus < 0:
        raise LlmrecError(f"--num-gpus-per-worker {gpus}: must be 0 or more")
    from ..engine.ray import RayOptions, require_ray

    require_ray()
    return RayOptions(address, concurrency, gpus)


def history_note(mapped) -> str:
    """What of the history could not be used, or that all of it was."""
    notes = []
    if mapped.unknown_events:
        notes.append(
            f"{mapped.unknown_events:,} history rows name {mapped.unknown_items:,} items "
            "not in the item table (skipped)"
        )
    if mapped.users_without_known:
        notes.append(f"{mapped.users_without_known:,} users with no known item left out")
    return "; ".join(notes) or "every history item found in the item table"


def split_list(text: str | None) -> list[str] | None:
    return [part.strip() for part in text.split(",") if part.strip()] if text else None


def check_outputs(outputs: list[str], inputs: list[str | None]) -> None:
    """Refuse an output that would overwrite an input (or another output) of the same run."""
    seen: dict[str, str] = {}
    for path in [p for p in inputs if p and p != "-"]:
        seen.setdefault(os.path.abspath(path), "input")
    for output in outputs:
        if output == "-":
            continue
        role = seen.get(os.path.abspath(output))
        if role:
            raise LlmrecError(
                f"{output}: would overwrite the {role} file of the same name; choose another path"
            )
        folder = os.path.dirname(os.path.abspath(output))
        if not os.path.isdir(folder):
            raise LlmrecError(f"{output}: output folder {folder!r} does not exist")
        seen[os.path.abspath(output)] = "output"
