"""`llmrec rank`."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from ..options import (
    ANN_INDEXES,
    BASELINES,
    GPU_DEVICES,
    HistoryColumns,
    RankOptions,
    SearchOptions,
    Weighting,
)
from .common import (
    Concurrency,
    Debug,
    Engine,
    Quiet,
    RayAddress,
    check_outputs,
    command,
    history_note,
    history_options,
    progress_of,
    ray_options,
    say,
    told_weighting,
)
from .tuning import tuned_options


@command
@history_options
def rank(
    ctx: typer.Context,
    items: Annotated[
        str | None,
        typer.Option(
            rich_help_panel="Input and output",
            help="Item vector table from 'llmrec embed' (with --baseline: the catalog).",
        ),
    ] = None,
    users: Annotated[
        str | None,
        typer.Option(
            rich_help_panel="Input and output", help="User vector table from 'llmrec profile'."
        ),
    ] = None,
    user_history: Annotated[
        str | None,
        typer.Option(
            rich_help_panel="Input and output",
            help="Interactions: profile users on the fly (or, with --users, only exclude seen items).",
        ),
    ] = None,
    k: Annotated[
        int, typer.Option("-k", rich_help_panel="Input and output", help="Items per user.")
    ] = 10,
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            rich_help_panel="Input and output",
            help="Rankings CSV to write; - for stdout.",
        ),
    ] = "rankings.csv",
    include_seen: Annotated[
        bool,
        typer.Option(
            "--include-seen",
            rich_help_panel="Input and output",
            help="Keep items already in a user's history.",
        ),
    ] = False,
    baseline: Annotated[
        str | None,
        typer.Option(
            rich_help_panel="Scoring",
            help=f"Rank without embeddings: {' | '.join(BASELINES)} (needs --user-history).",
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(rich_help_panel="Scoring", help="Seed of --baseline random.")
    ] = 0,
    blend: Annotated[
        str | None,
        typer.Option(
            rich_help_panel="Scoring",
            help="Mix scores, e.g. text=1,cooc=0.5,pop=0.1: text similarity, item-to-item "
            "co-occurrence (cooc) or EASE (ease) learned from --user-history, popularity (pop), "
            "a trained model (seq, with --model).",
        ),
    ] = None,
    ease_lambda: Annotated[
        float | None,
        typer.Option(
            rich_help_panel="Scoring",
            help="EASE regularisation [default: 500; 100 in the recommended recipe].",
        ),
    ] = None,
    cache_dir: Annotated[
        str | None,
        typer.Option(
            rich_help_panel="Scoring",
            help="Keep fitted cooc/ease models here; reused while the history is unchanged.",
        ),
    ] = None,
    interests: Annotated[
        int,
        typer.Option(
            rich_help_panel="Scoring",
            help="Score text by each user's best match among their N most recent items.",
        ),
    ] = 0,
    diversify: Annotated[
        float,
        typer.Option(
            rich_help_panel="Scoring",
            help="Re-rank by maximal marginal relevance: 0 = off … 1 = only diversity.",
        ),
    ] = 0.0,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain",
            rich_help_panel="Scoring",
            help="Add a 'because' column: the history item behind each pick.",
        ),
    ] = False,
    fast: Annotated[
        bool,
        typer.Option(
            "--fast",
            rich_help_panel="Scoring",
            help="Score in bfloat16, then re-score each user's 3k best candidates in float32 "
            "(users too close to call are ranked again in float32). Faster only on CPUs with "
            "bfloat16 instructions (AVX512-BF16, AMX); lists match the exact ranking on ≥ 99.99 % "
            "of entries in the benchmark, not guaranteed for every input. Plain text scoring "
            "only: not with --baseline, --interests or cooc/ease/pop blends.",
        ),
    ] = False,
    device: Annotated[
        str,
        typer.Option(
            rich_help_panel="Search",
            help=f"{' | '.join(GPU_DEVICES)}: where vector tiles are scored (auto: a CUDA GPU if "
            "there is one); exact in float32 (with --fast: bfloat16, re-scored in float32).",
        ),
    ] = "auto",
    index: Annotated[
        str | None,
        typer.Option(
            rich_help_panel="Search",
            help=f"{' | '.join(ANN_INDEXES)}: search a faiss index instead of every item "
            "(approximate; for catalogs of millions; needs llmrec[ann]).",
        ),
    ] = None,
    index_path: Annotated[
        str | None,
        typer.Option(
            rich_help_panel="Search",
            help="Keep the --index here; reused while the item vectors are unchanged.",
        ),
    ] = None,
    nprobe: Annotated[
        int | None,
        typer.Option(
            rich_help_panel="Search",
            help="IVF lists each user scans: more is slower and finds more [default: 1/32 of "
            "them, at least 16].",
        ),
    ] = None,
    ef_search: Annotated[
        int | None,
        typer.Option(
            rich_help_panel="Search",
            help="HNSW search beam: more is slower and finds more [default: 128].",
        ),
    ] = None,
    recall_check: Annotated[
        int,
        typer.Option(
            rich_help_panel="Search",
            help="Rank N random users exactly too and print the index's recall@k.",
        ),
    ] = 0,
    config: Annotated[
        str | None,
        typer.Option(
            rich_help_panel="Scoring",
            help="Options chosen by 'llmrec tune' (its JSON); options given here override them.",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            rich_help_panel="Scoring",
            help="Model folder from 'llmrec train': rank by its scores (the blend part seq; "
            "alone unless --blend says otherwise).",
        ),
    ] = None,
    columns: HistoryColumns | None = None,
    weighting: Weighting | None = None,
    engine: Engine = "local",
    ray_address: RayAddress = None,
    concurrency: Concurrency = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Score users against items and write each user's top k as CSV (user_id,rank,item_id,score).

    Profiling users from --user-history with no scoring option given, rank uses the recommended
    recipe, the best training-free one across our datasets: --strategy decay --half-life 1
    --blend text=0.25,cooc=1,ease=0.5,pop=0.1 --ease-lambda 100. 'llmrec tune' fits one to your
    history; --strategy mean --blend text=1 ranks by text similarity alone.
    """
    from ..api import rank as rank_users
    from ..ranking.blend import parse_blend

    check_outputs([output], [items, users, user_history, config, model, index_path])
    weighting = told_weighting(ctx, weighting)
    if config:
        tuned, weighting = tuned_options(ctx, config, user_history, weighting or Weighting(), quiet)
        blend = tuned.get("blend", blend)
        ease_lambda = tuned.get("ease_lambda", ease_lambda)
        interests = tuned.get("interests", interests)
        model = tuned.get("model", model)
    options = RankOptions(
        k=k,
        exclude_seen=not include_seen,
        baseline=baseline,
        seed=seed,
        blend=parse_blend(blend) if blend else None,
        ease_lambda=ease_lambda,
        cache_dir=cache_dir,
        explain=explain,
        diversify_strength=diversify,
        interests=interests,
        fast=fast,
        model=model,
        search=SearchOptions(
            device=device,
            index=index,
            index_path=index_path,
            nprobe=nprobe,
            ef_search=ef_search,
            recall_check=recall_check,
        ),
    )
    ray = ray_options(engine, ray_address, concurrency)
    started = time.perf_counter()
    with progress_of(quiet, "ranking") as shown:
        result = rank_users(
            items,
            output,
            options,
            users=users,
            history=user_history,
            columns=columns,
            weighting=weighting,
            ray=ray,
            progress=shown,
        )
    notes = [
        f"{result.users:,} users × {result.items:,} items → {result.rows:,} rows in "
        f"{'stdout' if output == '-' else output}, {time.perf_counter() - started:.1f} s"
    ]
    if result.device != "cpu":
        notes.append(f"scored on {result.device}")
    if result.search is not None:
        notes.append(result.search.summary())
    if k > result.items:
        notes.append(f"k={k} is more than the {result.items:,} items in the catalog")
    if result.history is not None:
        notes.append(history_note(result.history))
    if result.recommended:
        notes.append("the recommended recipe")
    say(quiet, "llmrec rank: " + "; ".join(notes))
    if result.recommended:
        say(
            quiet,
            f"llmrec rank: hint: 'llmrec tune {user_history} --items {items}' fits the recipe "
            "to this history, once; then rank --config tuned.json",
        )
