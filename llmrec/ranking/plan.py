"""Files and options → what to rank: user ids, item ids, the scorer, the history, an explainer."""

from __future__ import annotations

import numpy as np

from ..data.history import map_history
from ..data.interactions import read_interactions
from ..errors import InputError
from ..io.vectors import check_compatible, read_vectors
from ..profiles import Weighting, profile_history
from .blend import blend_scorer
from .explain import Explainer
from .scorers import item_to_item
from .scorers.baselines import BASELINES, popularity_scorer, random_scorer
from .scorers.item_to_item import TextNeighbours, item_model_scorer
from .scorers.vector import interest_scorer, recent_items, vector_scorer


def vector_plan(
    items_path, users_path, history_path, options, blend, ease_lambda, explain, interests=0
):
    """User ids, the item table, the (blended) scorer, the history and an explainer."""
    if not items_path:
        raise InputError("give --items items.parquet (or --baseline popular|random)")
    items = read_vectors(items_path, "items").sorted_by_id()
    weighting = options.get("weighting") or Weighting()
    if users_path:
        users = read_vectors(users_path, "users").sorted_by_id()
        check_compatible(users, items, users_path, items_path)
        history = None
        if history_path and not options.get("text_col"):
            columns = _pick(options, "user_col", "item_col", "time_col")
            extra = [weighting.weight_col] if weighting.weight_col else []
            interactions = read_interactions(history_path, extra=extra, **columns)
            history = map_history(interactions, items.ids, weighting.weight_col)
    elif history_path:
        users, history = profile_history(
            history_path,
            items,
            **_pick(options, "text_col", "user_col", "item_col", "time_col", "weighting"),
        )
        if options.get("text_col"):
            history = None  # free text names no catalog item: nothing to exclude or learn from
    else:
        raise InputError("give --users users.parquet or --user-history history.csv")
    if interests < 0:
        raise InputError(f"--interests {interests}: must be 0 (one profile) or more")
    if history is None and (explain or interests or set(blend) - {"text"}):
        raise InputError("--blend with cooc, ease or pop, and --explain, need --user-history")
    rows = None
    if history is not None and (explain or set(blend) - {"text", "pop"}):
        rows = item_to_item.history_matrix(
            history, users.ids, len(items), weighting.weights(history)
        )
    parts, explainer = [], Explainer(rows, items.ids, models=[]) if explain else None
    borrow = None  # only blends that use text lend it to new items; cooc/ease alone stay pure
    if history is not None and blend.get("text") and set(blend) & {"cooc", "ease"}:
        cold = np.bincount(history.item_index, minlength=len(items)) == 0  # no interactions yet
        borrow = TextNeighbours.of(cold, items.vectors)
    for name, weight in blend.items():
        if weight == 0:
            continue
        if name == "text" and interests:
            recent = recent_items(history, users.ids, interests)
            parts.append((weight, interest_scorer(recent, items)))
        elif name == "text":
            parts.append((weight, vector_scorer(users, items)))
            if explainer:
                explainer.text = (weight, items.vectors)
        elif name == "pop":
            popularity = np.log1p(item_to_item.item_popularity(history, len(items)))
            parts.append((weight, popularity_scorer(popularity)))
        else:
            model = item_to_item.fit_cached(
                name,
                history,
                items.ids,
                ease_lambda=ease_lambda,
                cache_dir=options.get("cache_dir"),
            )
            parts.append((weight, item_model_scorer(model, rows, borrow)))
            if explainer:
                explainer.models.append((weight, model))
    scorer = parts[0][1] if len(parts) == 1 else blend_scorer(parts)
    return users.ids, items, scorer, history, explainer


def _pick(options: dict, *keys: str) -> dict:
    return {key: options[key] for key in keys if options.get(key) is not None}


def baseline_plan(baseline, items_path, history_path, options, seed):
    """Users, catalog and scorer of a baseline; the catalog is the item table or the history's."""
    if baseline not in BASELINES:
        raise InputError(f"--baseline {baseline!r}: choose one of {', '.join(BASELINES)}")
    if not history_path:
        raise InputError(f"--baseline {baseline} needs --user-history history.csv")
    interactions = read_interactions(
        history_path, **_pick(options, "user_col", "item_col", "time_col")
    )
    if items_path:
        item_ids = read_vectors(items_path, "items").sorted_by_id().ids
    else:
        item_ids = np.sort(interactions["item_id"].unique().to_numpy(dtype=object))
    history = map_history(interactions, item_ids)
    if baseline == "random":
        return history.user_ids, item_ids, random_scorer(len(item_ids), seed), history
    counts = item_to_item.item_popularity(history, len(item_ids))
    return history.user_ids, item_ids, popularity_scorer(counts), history
