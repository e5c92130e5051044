"""`llmrec rank`."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from ..errors import LlmrecError
from .common import (
    Concurrency,
    Debug,
    Engine,
    HalfLife,
    HistoryTextCol,
    ItemCol,
    LastN,
    MaxHistory,
    Quiet,
    RayAddress,
    Strategy,
    TimeCol,
    UserCol,
    WeightCol,
    WeightMode,
    check_outputs,
    command,
    history_note,
    progress,
    ray_options,
    say,
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
    from ..profiles import Weighting
    from ..ranking.blend import parse_blend
    from ..ranking.run import rank_to_file

    if users is None and user_history is None:
        raise LlmrecError("give --users users.parquet or --user-history history.csv")
    if k < 1:
        raise LlmrecError(f"-k {k}: must be at least 1")
    if baseline is None and items is None:
        raise LlmrecError("give --items items.parquet (or rank with --baseline popular|random)")
    check_outputs([output], [items, users, user_history])
    ray = ray_options(engine, ray_address, concurrency)
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
        notes.append(history_note(result.history))
    say(quiet, "llmrec rank: " + "; ".join(notes))
