"""The `llmrec` command line: a thin Typer skin over the stage functions.

Each command parses options, calls one stage function, and reports on stderr: rich progress
bars (only on a terminal, never with --quiet) and one closing summary line. Data goes to files
or stdout. User errors print one line and exit 2; anything else exits 1 without a traceback
unless --debug is given.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from . import __version__
from .errors import EXIT_BAD_INPUT, EXIT_FAILURE, LlmrecError

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
    rich_markup_mode=None,
)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")]
Engine = Annotated[
    str,
    typer.Option(
        help="local | ray: run on this machine, or on a Ray cluster (pip install 'llmrec[ray]')."
    ),
]
RayAddress = Annotated[
    str | None,
    typer.Option(
        help="With --engine ray: 'auto' (the cluster this machine belongs to) or "
        "ray://HOST:10001 [default: start a private local Ray on 127.0.0.1]."
    ),
]
Concurrency = Annotated[
    int | None,
    typer.Option(
        help="With --engine ray: workers at once [default: one per GPU share, else per CPU]."
    ),
]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks of unexpected errors.")]
UserCol = Annotated[str, typer.Option(help="History column holding user ids.")]
ItemCol = Annotated[str, typer.Option(help="History column holding item ids.")]
TimeCol = Annotated[
    str | None,
    typer.Option(
        help="History column giving the order: unix seconds, ISO dates or any number "
        "[default: 'timestamp' if present, else file order]."
    ),
]
Strategy = Annotated[
    str, typer.Option(help="How history events are weighted: mean | decay | last | weighted.")
]
HalfLife = Annotated[
    str | None,
    typer.Option(
        help="Recency decay: weight halves every N events (5) or span of time (30d, 12h)."
    ),
]
LastN = Annotated[int | None, typer.Option(help="With --strategy last: the N most recent events.")]
WeightCol = Annotated[
    str | None,
    typer.Option(help="With --strategy weighted: a rating (centred per user) or quantity column."),
]
HistoryTextCol = Annotated[
    str | None,
    typer.Option(help="History column of free text (e.g. 'Apple iPhone 12') instead of item ids."),
]
WeightMode = Annotated[
    str, typer.Option(help="auto | centered | log | raw (auto: centred for ratings, else log).")
]
MaxHistory = Annotated[int | None, typer.Option(help="Use only each user's N most recent events.")]


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

    return app.command(name=func.__name__)(wrapper)


@contextlib.contextmanager
def progress(quiet: bool) -> Iterator[Progress]:
    """A progress display on stderr, shown only on a terminal and never with --quiet."""
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
        yield bar


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


@command
def embed(
    items: Annotated[
        str,
        typer.Argument(
            metavar="ITEMS", help="Item table: .csv .tsv .jsonl .parquet (.gz/.zst), or -."
        ),
    ],
    output: Annotated[
        str, typer.Option("--output", "-o", help="Vector table to write (Parquet).")
    ] = "items.parquet",
    id_col: Annotated[str, typer.Option(help="Column holding item ids.")] = "item_id",
    text: Annotated[
        str | None, typer.Option(help="Text template over columns, e.g. '{title}. {description}'.")
    ] = None,
    text_cols: Annotated[
        str | None, typer.Option(help="Comma-separated text columns, joined with '. '.")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(help="Local Hugging Face model folder [default: bundled all-MiniLM-L6-v2]."),
    ] = None,
    allow_download: Annotated[
        bool,
        typer.Option("--allow-download", help="Allow fetching --model from the Hugging Face hub."),
    ] = False,
    allow_pickle: Annotated[
        bool,
        typer.Option(
            "--allow-pickle", help="Allow pickle (.bin) weights; only for folders you trust."
        ),
    ] = False,
    pooling: Annotated[
        str | None, typer.Option(help="mean | cls | last [default: the model's, else mean].")
    ] = None,
    max_length: Annotated[
        int, typer.Option(help="Tokens per text; longer texts are truncated.")
    ] = 256,
    batch_size: Annotated[int, typer.Option(help="Texts per forward pass.")] = 64,
    normalize: Annotated[bool, typer.Option(help="L2-normalise vectors.")] = True,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | mps.")] = "auto",
    dtype: Annotated[
        str,
        typer.Option(
            help="float32 | bfloat16 | float16: 16-bit runs about 2–3× faster on GPUs and "
            "CPUs with BF16 support (cosine to float32 ≈ 0.9999)."
        ),
    ] = "float32",
    reuse: Annotated[
        str | None,
        typer.Option(
            help="Previous item table: unchanged texts keep its vectors, only new or changed "
            "ones are encoded [default: OUTPUT, when it exists and the model matches]."
        ),
    ] = None,
    no_reuse: Annotated[
        bool, typer.Option("--no-reuse", help="Encode every text, ignoring a previous OUTPUT.")
    ] = False,
    chunk_rows: Annotated[
        int | None,
        typer.Option(
            help="Items encoded and written at a time (one Parquet row group); memory follows "
            "it, and a killed run resumes from the last finished chunk [default: 4096]."
        ),
    ] = None,
    engine: Engine = "local",
    ray_address: RayAddress = None,
    num_gpus_per_worker: Annotated[
        float, typer.Option(help="With --engine ray: GPUs per encoding worker (0: CPU only).")
    ] = 0.0,
    concurrency: Concurrency = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Embed item texts into a vector table with a language model.

    Re-running into the same OUTPUT encodes only new or changed texts; a killed run restarts
    from its finished chunks.
    """
    from .embed import CHUNK_ROWS, embed_to_file, read_item_texts
    from .encoder import DEVICES, DTYPES, Encoder

    _check_choice("--device", device, DEVICES)
    _check_choice("--dtype", dtype, DTYPES)
    if reuse and no_reuse:
        raise LlmrecError("give either --reuse or --no-reuse, not both")
    _check_outputs([output], [items] + ([reuse] if reuse else []))
    ray = _ray_options(engine, ray_address, concurrency, num_gpus_per_worker)
    if ray and reuse:
        raise LlmrecError("--engine ray encodes every text; --reuse works with --engine local")
    started = time.perf_counter()
    encoder = Encoder.load(
        model,
        pooling=pooling,
        max_length=max_length,
        device=device,
        dtype=dtype,
        allow_download=allow_download,
        allow_pickle=allow_pickle,
    )
    texts = read_item_texts(items, id_col=id_col, template=text, text_cols=_split_list(text_cols))
    chunk_rows = CHUNK_ROWS if chunk_rows is None else chunk_rows
    with progress(quiet) as bar:
        task = bar.add_task("embedding", total=None)
        report = {
            "on_start": lambda n: bar.update(task, total=n),
            "on_batch": lambda n: bar.advance(task, n),
        }
        if ray:
            from .cluster import embed_on_ray

            run = embed_on_ray(
                texts,
                output,
                encoder,
                model=model,
                options=ray,
                chunk_rows=chunk_rows,
                batch_size=batch_size,
                normalize=normalize,
                allow_download=allow_download,
                allow_pickle=allow_pickle,
                **report,
            )
        else:
            run = embed_to_file(
                texts,
                output,
                encoder,
                reuse=reuse,
                reuse_output=not no_reuse,
                chunk_rows=chunk_rows,
                batch_size=batch_size,
                normalize=normalize,
                **report,
            )
    sources = [f"{run.encoded:,} encoded"]
    if run.reused:
        sources.append(f"{run.reused:,} reused from {reuse or output}")
    if run.resumed_chunks:
        plural = "s" if run.resumed_chunks != 1 else ""
        sources.append(f"{run.resumed_chunks:,} finished chunk{plural} resumed")
    say(
        quiet,
        f"llmrec embed: {run.rows:,} items ({run.unique_texts:,} distinct texts: "
        f"{', '.join(sources)}; {run.truncated:,} truncated at {encoder.max_length} tokens) "
        f"→ {output}, dim {encoder.dim}, {encoder.name} {encoder.dtype} "
        f"{'on Ray (Parquet shards)' if ray else 'on ' + encoder.device}, "
        f"{time.perf_counter() - started:.1f} s"
        + (f"; {run.reuse_note}" if run.reuse_note else ""),
    )


def _ray_options(engine: str, address: str | None, concurrency: int | None, gpus: float = 0.0):
    """RayOptions for --engine ray (None for local); Ray-only options need --engine ray."""
    _check_choice("--engine", engine, ("local", "ray"))
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
    from .cluster import RayOptions, require_ray

    require_ray()
    return RayOptions(address, concurrency, gpus)


@command
def profile(
    history: Annotated[
        str,
        typer.Argument(metavar="HISTORY", help="Interactions: user and item id per row (+ time)."),
    ],
    items: Annotated[str, typer.Option(help="Item vector table from 'llmrec embed'.")],
    output: Annotated[
        str, typer.Option("--output", "-o", help="User vector table to write (Parquet).")
    ] = "users.parquet",
    user_col: UserCol = "user_id",
    item_col: ItemCol = "item_id",
    time_col: TimeCol = None,
    strategy: Strategy = "mean",
    half_life: HalfLife = None,
    last_n: LastN = None,
    max_history: MaxHistory = None,
    weight_col: WeightCol = None,
    weight_mode: WeightMode = "auto",
    history_text_col: HistoryTextCol = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Turn each user's history into a user vector."""
    from .profile import Weighting, profile_history
    from .vectors import read_vectors, write_vectors

    _check_outputs([output], [history, items])
    started = time.perf_counter()
    weighting = Weighting(strategy, half_life, last_n, max_history, weight_col, weight_mode)
    with progress(quiet) as bar:
        task = bar.add_task("profiling", total=3)
        item_table = read_vectors(items, "items")
        bar.advance(task)
        users, mapped = profile_history(
            history,
            item_table,
            text_col=history_text_col,
            user_col=user_col,
            item_col=item_col,
            time_col=time_col,
            weighting=weighting,
        )
        bar.advance(task)
        write_vectors(users, output)
        bar.advance(task)
    say(
        quiet,
        f"llmrec profile: {len(users):,} users → {output}, "
        f"{time.perf_counter() - started:.1f} s; "
        + (
            f"{mapped.item_index.max() + 1:,} distinct history texts embedded"
            if history_text_col
            else _history_note(mapped)
        ),
    )


@command
def rank(
    items: Annotated[
        str | None,
        typer.Option(help="Item vector table from 'llmrec embed' (with --baseline: the catalog)."),
    ] = None,
    users: Annotated[
        str | None, typer.Option(help="User vector table from 'llmrec profile'.")
    ] = None,
    user_history: Annotated[
        str | None,
        typer.Option(
            help="Interactions: profile users on the fly (or, with --users, only exclude seen items)."
        ),
    ] = None,
    k: Annotated[int, typer.Option("-k", help="Items per user.")] = 10,
    output: Annotated[
        str, typer.Option("--output", "-o", help="Rankings CSV to write; - for stdout.")
    ] = "rankings.csv",
    include_seen: Annotated[
        bool, typer.Option("--include-seen", help="Keep items already in a user's history.")
    ] = False,
    baseline: Annotated[
        str | None,
        typer.Option(help="Rank without embeddings: popular | random (needs --user-history)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of --baseline random.")] = 0,
    blend: Annotated[
        str | None,
        typer.Option(
            help="Mix scores, e.g. text=1,cooc=0.5,pop=0.1: text similarity, item-to-item "
            "co-occurrence (cooc) or EASE (ease) learned from --user-history, popularity (pop)."
        ),
    ] = None,
    ease_lambda: Annotated[float, typer.Option(help="EASE regularisation.")] = 500.0,
    cache_dir: Annotated[
        str | None,
        typer.Option(
            help="Keep fitted cooc/ease models here; reused while the history is unchanged."
        ),
    ] = None,
    interests: Annotated[
        int,
        typer.Option(help="Score text by each user's best match among their N most recent items."),
    ] = 0,
    diversify: Annotated[
        float,
        typer.Option(help="Re-rank by maximal marginal relevance: 0 = off … 1 = only diversity."),
    ] = 0.0,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain", help="Add a 'because' column: the history item behind each pick."
        ),
    ] = False,
    fast: Annotated[
        bool,
        typer.Option(
            "--fast",
            help="Score in bfloat16, then re-score each user's 3k best candidates in float32 "
            "(users too close to call are ranked again in float32). Faster only on CPUs with "
            "bfloat16 instructions (AVX512-BF16, AMX); lists match the exact ranking on ≥ 99.99 % "
            "of entries in the benchmark, not guaranteed for every input. Plain text scoring "
            "only: not with --baseline, --interests or cooc/ease/pop blends.",
        ),
    ] = False,
    user_col: UserCol = "user_id",
    item_col: ItemCol = "item_id",
    time_col: TimeCol = None,
    strategy: Strategy = "mean",
    half_life: HalfLife = None,
    last_n: LastN = None,
    max_history: MaxHistory = None,
    weight_col: WeightCol = None,
    weight_mode: WeightMode = "auto",
    history_text_col: HistoryTextCol = None,
    engine: Engine = "local",
    ray_address: RayAddress = None,
    concurrency: Concurrency = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Score users against items and write each user's top k as CSV (user_id,rank,item_id,score)."""
    from .profile import Weighting
    from .rank import parse_blend, rank_to_file

    if users is None and user_history is None:
        raise LlmrecError("give --users users.parquet or --user-history history.csv")
    if k < 1:
        raise LlmrecError(f"-k {k}: must be at least 1")
    if baseline is None and items is None:
        raise LlmrecError("give --items items.parquet (or rank with --baseline popular|random)")
    _check_outputs([output], [items, users, user_history])
    ray = _ray_options(engine, ray_address, concurrency)
    started = time.perf_counter()
    with progress(quiet) as bar:
        task = bar.add_task("ranking", total=None)
        result = rank_to_file(
            items,
            output,
            k,
            users_path=users,
            history_path=user_history,
            exclude_seen=not include_seen,
            baseline=baseline,
            seed=seed,
            blend=parse_blend(blend) if blend else None,
            ease_lambda=ease_lambda,
            explain=explain,
            diversify_strength=diversify,
            interests=interests,
            fast=fast,
            ray=ray,
            profile_options=dict(
                user_col=user_col,
                item_col=item_col,
                time_col=time_col,
                text_col=history_text_col,
                cache_dir=cache_dir,
                weighting=Weighting(
                    strategy, half_life, last_n, max_history, weight_col, weight_mode
                ),
            ),
            on_start=lambda n: bar.update(task, total=n),
            on_block=lambda n: bar.advance(task, n),
        )
    notes = [
        f"{result.users:,} users × {result.items:,} items → {result.rows:,} rows in "
        f"{'stdout' if output == '-' else output}, {time.perf_counter() - started:.1f} s"
    ]
    if k > result.items:
        notes.append(f"k={k} is more than the {result.items:,} items in the catalog")
    if result.history is not None:
        notes.append(_history_note(result.history))
    say(quiet, "llmrec rank: " + "; ".join(notes))


@command
def evaluate(
    rankings: Annotated[
        list[str],
        typer.Argument(
            metavar="RANKINGS...",
            help="Rankings CSV files (user_id,rank,item_id[,score]); the first is the reference.",
        ),
    ],
    truth: Annotated[str, typer.Option(help="Held-out interactions (user_id,item_id).")],
    k: Annotated[str, typer.Option("-k", help="Cut-offs, comma-separated.")] = "5,10,20",
    format: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help="table | json | markdown [default: from -o's ending, else table].",
        ),
    ] = None,
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="Write the report here instead of stdout.")
    ] = None,
    items: Annotated[
        str | None,
        typer.Option(help="Item vector table: catalog coverage, Gini and intra-list diversity."),
    ] = None,
    train: Annotated[
        str | None,
        typer.Option(help="Training history: novelty and popularity (and the catalog)."),
    ] = None,
    ci: Annotated[
        bool, typer.Option("--ci", help="Add 95% bootstrap intervals over users.")
    ] = False,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples with --ci.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap and randomisation tests.")] = 0,
    per_user: Annotated[
        str | None, typer.Option(help="Also write per-user values (run, user_id, metrics...).")
    ] = None,
    plot: Annotated[
        str | None, typer.Option(help="Also draw each metric against k (PNG/SVG/PDF).")
    ] = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Compute Precision, Recall, NDCG, MAP, MRR and HitRate at each k against held-out truth;
    with several runs, compare them to the first with paired tests."""
    from .evaluate import evaluate_report, parse_ks, per_user_frame
    from .report import FORMATS, accounting, plot_report, render, rich_table
    from .tables import open_output, write_frame

    outputs = [path for path in (output, per_user, plot) if path]
    _check_outputs(outputs, [*rankings, truth, items, train])
    fmt = format or {".json": "json", ".md": "markdown"}.get(Path(output or "").suffix, "table")
    _check_choice("--format", fmt, FORMATS)
    started = time.perf_counter()
    report = evaluate_report(
        rankings,
        truth,
        parse_ks(k),
        items_path=items,
        train_path=train,
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
    say(
        quiet,
        f"llmrec evaluate: {len(report.runs)} run(s), "
        f"{report.runs[0].users_evaluated:,} users → {written}, "
        f"{time.perf_counter() - started:.1f} s",
    )


@command
def split(
    interactions: Annotated[
        str,
        typer.Argument(
            metavar="INTERACTIONS", help="Interactions: user and item id per row (+ time)."
        ),
    ],
    history_out: Annotated[str, typer.Option(help="Where to write the history part.")],
    heldout_out: Annotated[str, typer.Option(help="Where to write the held-out part.")],
    strategy: Annotated[str, typer.Option(help="leave-last | temporal.")] = "leave-last",
    n: Annotated[int, typer.Option(help="leave-last: interactions held out per user.")] = 1,
    cutoff: Annotated[
        str | None, typer.Option(help="temporal: hold out from this date/time on.")
    ] = None,
    fraction: Annotated[
        float | None, typer.Option(help="temporal: hold out the latest fraction of rows.")
    ] = None,
    min_history: Annotated[
        int, typer.Option(help="Hold out only users keeping at least N history rows.")
    ] = 1,
    user_col: UserCol = "user_id",
    item_col: ItemCol = "item_id",
    time_col: TimeCol = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Split interactions into history and held-out files, deterministically."""
    from .split import split_frame
    from .tables import ALL, read_table, require_values, write_frame

    _check_outputs([history_out, heldout_out], [interactions])
    frame = read_table(
        interactions,
        required=[user_col, item_col],
        strings=ALL,
        what="interactions",
        hint="name it with --user-col / --item-col",
    )
    require_values(frame, user_col, interactions)
    history, heldout = split_frame(
        frame,
        path=interactions,
        user_col=user_col,
        time_col=time_col,
        strategy=strategy,
        n=n,
        cutoff=cutoff,
        fraction=fraction,
        min_history=min_history,
    )
    if heldout.empty:
        raise LlmrecError(
            f"{interactions}: nothing was held out; lower --min-history or "
            "change --n / --cutoff / --fraction"
        )
    write_frame(history, history_out)
    write_frame(heldout, heldout_out)
    say(
        quiet,
        f"llmrec split: {len(history):,} history rows → {history_out}, "
        f"{len(heldout):,} held-out rows of {heldout[user_col].nunique():,} users → "
        f"{heldout_out}",
    )


@command
def info(
    file: Annotated[
        str, typer.Argument(metavar="FILE", help="A vector table written by embed or profile.")
    ],
    format: Annotated[str, typer.Option("--format", "-f", help="table | json.")] = "table",
    debug: Debug = False,
) -> None:
    """Show what a vector table holds: kind, rows, dim, model, pooling, strategy, version."""
    from rich.table import Table

    from .vectors import read_meta

    _check_choice("--format", format, ("table", "json"))
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


def _history_note(mapped) -> str:
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


def _split_list(text: str | None) -> list[str] | None:
    return [part.strip() for part in text.split(",") if part.strip()] if text else None


def _check_choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise LlmrecError(f"{option} {value!r}: choose one of {', '.join(choices)}")


def _check_outputs(outputs: list[str], inputs: list[str | None]) -> None:
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


def main() -> None:
    """Console-script entry point; keeps the hub offline unless a command allows downloads."""
    if "--allow-download" not in sys.argv:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    app()
