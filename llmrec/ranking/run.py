"""Users × items → top-K per user, written as CSV (`user_id,rank,item_id,score[,because]`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd

from ..data.history import History, Seen
from ..engine.ray import RayOptions
from ..errors import InputError
from ..io.atomic import open_output
from .diversify import diversify
from .explain import Explainer
from .plan import baseline_plan, vector_plan
from .scorers import Scorer
from .scorers.vector import VectorScorer
from .tiles import scored_top_k, vector_top_k
from .topk import DEFAULT_BLOCK_BYTES

RANKING_COLUMNS = ["user_id", "rank", "item_id", "score"]


def rank_blocks(
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    scorer: Scorer,
    k: int,
    *,
    seen: Seen | None = None,
    budget_bytes: int = DEFAULT_BLOCK_BYTES,
    on_block: Callable[[int], None] | None = None,
    explainer: Explainer | None = None,
    diversity: tuple[float, np.ndarray] | None = None,
    fast: bool = False,
    ray: RayOptions | None = None,
) -> Iterator[pd.DataFrame]:
    """Yield ranking rows (user_id, rank, item_id, score[, because]) block by block, in user
    order.

    Users and items must be sorted by id so that the output is sorted by user and ties fall
    to the smaller item id. Seen items get −inf and never appear in the output. `diversity`
    (λ, item vectors) re-ranks the top candidates by maximal marginal relevance. A
    `VectorScorer` is ranked by tiles (`vector_top_k`), which `fast` lets score in bfloat16,
    and which `ray` spreads over a Ray cluster in user blocks.
    """
    if k < 1:
        raise InputError(f"-k {k}: must be at least 1")
    kk = min(k, len(item_ids))
    fetch = min(max(5 * k, 50), len(item_ids)) if diversity else kk
    if isinstance(scorer, VectorScorer):
        run = vector_top_k
        if ray is not None:
            from .on_ray import top_k_on_ray

            run = partial(top_k_on_ray, options=ray)
        tops = run(
            scorer.users, scorer.items, fetch, seen=seen, budget_bytes=budget_bytes, fast=fast
        )
    elif ray is not None:
        raise InputError(RAY_ONLY_VECTORS)
    elif fast:
        raise InputError(FAST_ONLY_VECTORS)
    else:
        tops = scored_top_k(scorer, len(user_ids), len(item_ids), fetch, seen, budget_bytes)
    for start, stop, values, columns in tops:
        if diversity:
            values, columns = diversify(values, columns, diversity[1], kk, diversity[0])
        if isinstance(scorer, VectorScorer):
            values, columns = scorer.written_scores(start, stop, values, columns, not diversity)
        frame = _block_frame(user_ids[start:stop], item_ids, values.numpy(), columns.numpy())
        if explainer is not None:
            because = explainer.because(start, stop, columns.numpy())
            frame["because"] = because[np.isfinite(values.numpy())]
        yield frame
        if on_block:
            on_block(stop - start)


FAST_ONLY_VECTORS = (
    "--fast scores user and item vectors in bfloat16; it does not apply to --baseline, "
    "--interests or blends with cooc, ease or pop"
)


RAY_ONLY_VECTORS = (
    "--engine ray ranks by user and item vectors; not with --baseline, --interests or blends "
    "with cooc, ease or pop (use --engine local)"
)


def _block_frame(
    user_ids: np.ndarray, item_ids: np.ndarray, values: np.ndarray, columns: np.ndarray
) -> pd.DataFrame:
    """Flatten a block's top-k into ranking rows, dropping excluded (−inf) entries."""
    n_users, kk = values.shape
    valid = np.isfinite(values)
    return pd.DataFrame(
        {
            "user_id": np.repeat(user_ids, kk)[valid.ravel()],
            "rank": np.tile(np.arange(1, kk + 1), n_users)[valid.ravel()],
            "item_id": item_ids[columns[valid]],
            "score": values[valid],
        }
    )


def write_rankings(blocks: Iterator[pd.DataFrame], handle, explained: bool = False) -> int:
    """Write ranking blocks as CSV to an open text handle; return the number of rows."""
    handle.write(",".join(RANKING_COLUMNS + (["because"] if explained else [])) + "\n")
    rows = 0
    for frame in blocks:
        frame.to_csv(handle, header=False, index=False, float_format="%.6f", lineterminator="\n")
        rows += len(frame)
    return rows


@dataclass
class RankResult:
    users: int
    items: int
    rows: int
    history: History | None


def rank_to_file(
    items_path: str | None,
    output: str,
    k: int,
    *,
    users_path: str | None = None,
    history_path: str | None = None,
    exclude_seen: bool = True,
    profile_options: dict | None = None,
    baseline: str | None = None,
    seed: int = 0,
    blend: dict[str, float] | None = None,
    ease_lambda: float = 500.0,
    explain: bool = False,
    diversify_strength: float = 0.0,
    interests: int = 0,
    budget_bytes: int = DEFAULT_BLOCK_BYTES,
    fast: bool = False,
    ray: RayOptions | None = None,
    on_start: Callable[[int], None] | None = None,
    on_block: Callable[[int], None] | None = None,
) -> RankResult:
    """Rank users and write the CSV: by vectors (from a table, or profiled from a history),
    or by a baseline that needs no embeddings (`popular`, `random`). `blend` mixes the text
    score with item-to-item models learned from the history (`cooc`, `ease`) and popularity.

    With a history, its items are excluded from each user's list unless `exclude_seen` is off.
    `explain` adds a `because` column naming the history item that contributed most;
    `diversify_strength` > 0 re-ranks each list by maximal marginal relevance. `interests`
    N > 0 scores text by each user's best match among their N most recent items instead of one
    mean profile. `fast` scores text in bfloat16 and re-scores the best candidates in float32
    (plain text scoring only; see `vector_top_k`). `ray` ranks the user blocks on a Ray
    cluster (plain text scoring only; see `cluster.top_k_on_ray`).
    """
    if k < 1:
        raise InputError(f"-k {k}: must be at least 1")
    if not 0 <= diversify_strength <= 1:
        raise InputError(f"--diversify {diversify_strength}: must be between 0 and 1")
    options = profile_options or {}
    explainer, diversity = None, None
    if baseline:
        if explain:
            raise InputError("--explain needs scores that come from a history; not a baseline")
        if diversify_strength > 0:
            raise InputError("--diversify needs item vectors; not with a baseline")
        user_ids, item_ids, scorer, history = baseline_plan(
            baseline, items_path, history_path, options, seed
        )
    else:
        user_ids, items, scorer, history, explainer = vector_plan(
            items_path,
            users_path,
            history_path,
            options,
            blend or {"text": 1.0},
            ease_lambda,
            explain,
            interests,
        )
        item_ids = items.ids
        if diversify_strength > 0:
            diversity = (diversify_strength, items.vectors)
        if interests > 1:
            budget_bytes //= interests
        if blend and len(blend) > 1:
            budget_bytes //= len(blend) + 1  # a score block per part, plus the sum
    if fast and not isinstance(scorer, VectorScorer):
        raise InputError(FAST_ONLY_VECTORS)
    if ray is not None and not isinstance(scorer, VectorScorer):
        raise InputError(RAY_ONLY_VECTORS)
    seen = Seen(*history.seen(user_ids, len(item_ids))) if history and exclude_seen else None
    if on_start:
        on_start(len(user_ids))
    blocks = rank_blocks(
        user_ids,
        item_ids,
        scorer,
        k,
        seen=seen,
        budget_bytes=budget_bytes,
        on_block=on_block,
        explainer=explainer,
        diversity=diversity,
        fast=fast,
        ray=ray,
    )
    with open_output(output) as handle:
        rows = write_rankings(blocks, handle, explained=explainer is not None)
    return RankResult(len(user_ids), len(item_ids), rows, history)
