"""`llmrec train`."""

from __future__ import annotations

from typing import Annotated

import typer

from ..options import GPU_DEVICES, ITEM_IDS, HistoryColumns, TrainOptions
from .common import Debug, Quiet, check_outputs, command, history_note, progress_of, say

MODEL = "Model"
STOPPING = "Stopping"


@command
def train(
    history: Annotated[
        str,
        typer.Argument(metavar="HISTORY", help="Interactions: user and item id per row (+ time)."),
    ],
    items: Annotated[str, typer.Option(help="Item vector table from 'llmrec embed'.")],
    output: Annotated[str, typer.Option("--output", "-o", help="Model folder to write.")] = "model",
    item_ids: Annotated[
        str,
        typer.Option(
            rich_help_panel=MODEL,
            help=f"{' | '.join(ITEM_IDS)}: learn an ID vector for each item seen in training, "
            "on top of its text (auto: when the history's items average ≥ 5 events; only: "
            "ID vectors without text, as SASRec; items added later are then unreachable).",
        ),
    ] = "auto",
    max_len: Annotated[
        int, typer.Option(rich_help_panel=MODEL, help="Latest events the model reads per user.")
    ] = 50,
    dim: Annotated[int, typer.Option(rich_help_panel=MODEL, help="Width of the model.")] = 64,
    layers: Annotated[int, typer.Option(rich_help_panel=MODEL, help="Transformer layers.")] = 2,
    heads: Annotated[int, typer.Option(rich_help_panel=MODEL, help="Attention heads.")] = 2,
    dropout: Annotated[float, typer.Option(rich_help_panel=MODEL, help="Dropout.")] = 0.3,
    id_dropout: Annotated[
        float,
        typer.Option(
            rich_help_panel=MODEL,
            help="Share of ID vectors dropped per batch, so items added later rank by text alone.",
        ),
    ] = 0.25,
    epochs: Annotated[
        int,
        typer.Option(
            rich_help_panel=STOPPING,
            help="Most epochs on the inner split before the final one on everything.",
        ),
    ] = 8,
    patience: Annotated[
        int,
        typer.Option(
            rich_help_panel=STOPPING,
            help="Stop after this many epochs without a better NDCG@10 on the inner split.",
        ),
    ] = 2,
    time_budget: Annotated[
        str | None,
        typer.Option(
            rich_help_panel=STOPPING,
            help="Start no epoch that would end after this, e.g. 4m or 1h.",
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Sequences per step.")] = 128,
    learning_rate: Annotated[float, typer.Option(help="AdamW learning rate.")] = 2e-3,
    full_softmax_max: Annotated[
        int,
        typer.Option(
            help="Above this many items, a sampled softmax (with logQ correction) replaces the "
            "full one."
        ),
    ] = 200_000,
    device: Annotated[
        str,
        typer.Option(help=f"{' | '.join(GPU_DEVICES)}; GPUs train in bfloat16 autocast."),
    ] = "auto",
    seed: Annotated[int, typer.Option(help="Same seed, same weights (on the CPU).")] = 0,
    user_col: Annotated[str, typer.Option(help="User id column of HISTORY.")] = "user_id",
    item_col: Annotated[str, typer.Option(help="Item id column of HISTORY.")] = "item_id",
    time_col: Annotated[
        str | None,
        typer.Option(help="Column ordering events [default: timestamp if present, else rows]."),
    ] = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Fit a sequential model (a small causal transformer over each user's latest items, item
    inputs from their text vectors) for 'llmrec rank --model'. A killed run resumes where its
    last finished epoch left off."""
    from ..api import train as train_model

    check_outputs([output], [history, items])
    options = TrainOptions(
        max_len=max_len,
        dim=dim,
        layers=layers,
        heads=heads,
        dropout=dropout,
        item_ids=item_ids,
        id_dropout=id_dropout,
        epochs=epochs,
        patience=patience,
        time_budget=time_budget,
        batch_size=batch_size,
        learning_rate=learning_rate,
        full_softmax_max=full_softmax_max,
        device=device,
        seed=seed,
    )
    columns = HistoryColumns(user_col=user_col, item_col=item_col, time_col=time_col)
    with progress_of(quiet, "training") as shown:
        result = train_model(history, items, output, options, columns=columns, progress=shown)
    resumed = f"resumed after epoch {result.resumed_at}; " if result.resumed_at else ""
    say(
        quiet,
        f"llmrec train: {resumed}{len(result.epochs)} epochs ({result.stopped}) in "
        f"{result.seconds:.1f} s; best inner NDCG@10 {result.best_ndcg:.4f} at epoch "
        f"{result.best_epoch}; {result.parameters:,} parameters, item ids "
        f"{options.item_ids if options.item_ids == 'only' else 'on' if result.item_ids else 'off'}; {result.users:,} users × {result.items:,} items "
        f"→ {output}; {history_note(result.history)}",
    )
