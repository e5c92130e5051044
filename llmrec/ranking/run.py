"""Users × items → top-K per user, written as CSV (`user_id,rank,item_id,score[,because]`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data.history import History, Seen
from ..engine.device import may_have_cuda, pick_device
from ..engine.ray import RayOptions
from ..errors import InputError
from ..io.atomic import open_output
from ..io.csv_blocks import write_csv_block
from ..options import HistoryColumns, RankOptions
from ..profiles import Weighting
from .ann import Approximate, SearchReport
from .diversify import diversify
from .explain import Explainer
from .plan import plan
from .recipe import choose_recipe
from .scorers import Scorer, Tops
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
    device: str = "cpu",
    ann: Approximate | None = None,
) -> Iterator[pd.DataFrame]:
    """Yield ranking rows (user_id, rank, item_id, score[, because]) block by block, in user
    order.

    Users and items must be sorted by id so that the output is sorted by user and ties fall
    to the smaller item id. Seen items get −inf and never appear in the output. `diversity`
    (λ, item vectors) re-ranks the top candidates by maximal marginal relevance. A tiled scorer
    may score in bfloat16 first (`fast`), score on a GPU (`device`), ask a faiss index instead
    (`ann`), or spread its user blocks over a Ray cluster (`ray`).
    """
    if k < 1:
        raise InputError(f"-k {k}: must be at least 1")
    if fast and not scorer.tiled:
        raise InputError(FAST_ONLY_VECTORS)
    if ray is not None and not scorer.tiled:
        raise InputError(RAY_ONLY_VECTORS)
    if (ann is not None or device != "cpu") and not scorer.tiled:
        raise InputError(SEARCH_ONLY_VECTORS)
    if ann is not None and ray is not None:
        raise InputError("--index searches in this process; not with --engine ray")
    kk = min(k, len(item_ids))
    fetch = min(max(5 * k, 50), len(item_ids)) if diversity else kk
    tops = scorer.top_k(
        len(user_ids), len(item_ids), fetch, seen, budget_bytes,
        fast=fast, ray=ray, device=device, ann=ann,
    )  # fmt: skip
    return _frames(tops, user_ids, item_ids, scorer, kk, on_block, explainer, diversity)


def _frames(
    tops: Tops,
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    scorer: Scorer,
    k: int,
    on_block: Callable[[int], None] | None,
    explainer: Explainer | None,
    diversity: tuple[float, np.ndarray] | None,
) -> Iterator[pd.DataFrame]:
    """Each block's top k as ranking rows: diversified, with written scores and explanations."""
    for start, stop, values, columns in tops:
        if diversity:
            values, columns = diversify(values, columns, diversity[1], k, diversity[0])
        values, columns = scorer.written_scores(start, stop, values, columns, not diversity)
        frame = _block_frame(user_ids[start:stop], item_ids, values, columns)
        if explainer is not None:
            because = explainer.because(start, stop, columns)
            frame["because"] = because[np.isfinite(values)]
        yield frame
        if on_block:
            on_block(stop - start)


FAST_ONLY_VECTORS = (
    "--fast scores user and item vectors in bfloat16; it does not apply to --baseline, "
    "--interests or blends with cooc, ease or pop"
)


SEARCH_ONLY_VECTORS = (
    "--device cuda and --index rank by user and item vectors; not --baseline, --interests or "
    "blends with cooc, ease or pop (those score on the CPU, exactly)"
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
        write_csv_block(frame, handle, fixed=("score",))
        rows += len(frame)
    return rows


@dataclass
class RankResult:
    """What a rank run did; `frame` holds the rankings when they were kept in memory."""

    users: int
    items: int
    rows: int
    history: History | None
    recommended: bool = False  # ranked by the recommended recipe (nothing else was told)
    device: str = "cpu"  # where the vector tiles were scored
    search: SearchReport | None = None  # what an approximate search did (--index)
    frame: pd.DataFrame | None = None


def rank_device(device: str, tiled: bool, on_ray: bool) -> str:
    """Where vector tiles are scored: `auto` is a CUDA GPU when there is one and the scores are
    plain dot products ranked in this process, else the CPU; an explicit `cuda` must exist."""
    if device == "auto":
        if not tiled or on_ray or not may_have_cuda():
            return "cpu"
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and on_ray:
        raise InputError("--device cuda ranks in this process; not with --engine ray")
    return pick_device(device)


def rank_to_file(
    items_path: str | None,
    output: str | None,
    options: RankOptions,
    *,
    users_path: str | None = None,
    history_path: str | None = None,
    columns: HistoryColumns | None = None,
    weighting: Weighting | None = None,
    ray: RayOptions | None = None,
    on_start: Callable[[int], None] | None = None,
    on_block: Callable[[int], None] | None = None,
) -> RankResult:
    """Rank users and write the CSV: by vectors (from a user table, or profiled from a history)
    or by a baseline that needs no embeddings, as `options` say (see `RankOptions`). With
    `output` None the rankings are kept in memory instead (`RankResult.frame`).

    With a history, its items are excluded from each user's list unless
    `options.exclude_seen` is off. `ray` ranks the user blocks on a Ray cluster (plain text
    scoring only; see `on_ray.top_k_on_ray`). Options left unset are chosen by
    `recipe.choose_recipe`: the recommended recipe when users are profiled from a history.
    """
    if options.search.device == "cuda":
        pick_device("cuda")  # no GPU: say so before reading anything
    options, weighting, recommended = choose_recipe(
        options,
        weighting,
        profiles_from_history=users_path is None
        and history_path is not None
        and not (columns and columns.text_col),
        text_only=options.fast
        or ray is not None
        or options.search.index is not None
        or options.search.device == "cuda",
    )
    what = plan(
        items_path,
        options,
        users_path=users_path,
        history_path=history_path,
        columns=columns,
        weighting=weighting,
    )
    history = what.history
    seen = None
    if history is not None and options.exclude_seen:
        seen = Seen(*history.seen(what.user_ids, len(what.item_ids)))
    diversity = None
    if options.diversify_strength > 0:
        diversity = (options.diversify_strength, what.item_vectors)
    device = rank_device(options.search.device, what.scorer.tiled, ray is not None)
    ann = Approximate(options.search) if options.search.index else None
    blocks = rank_blocks(
        what.user_ids,
        what.item_ids,
        what.scorer,
        options.k,
        seen=seen,
        budget_bytes=what.budget_bytes,
        on_block=on_block,
        explainer=what.explainer,
        diversity=diversity,
        fast=options.fast,
        ray=ray,
        device=device,
        ann=ann,
    )
    if on_start:
        on_start(len(what.user_ids))
    result = RankResult(len(what.user_ids), len(what.item_ids), 0, history, recommended, device)
    result.search = ann.report if ann else None
    if output is None:
        frames = list(blocks)
        columns = RANKING_COLUMNS + (["because"] if what.explainer is not None else [])
        result.frame = (
            pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
        )
        result.rows = len(result.frame)
        return result
    with open_output(output) as handle:
        result.rows = write_rankings(blocks, handle, explained=what.explainer is not None)
    return result
