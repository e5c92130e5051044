"""Files and options → what to rank: the users, the catalog, the scorer, the history they
came from, and what explains or diversifies the lists."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.history import History, map_encoded
from ..data.interactions import read_encoded_interactions
from ..errors import InputError
from ..io.vectors import SPACE_KEY, VectorTable, check_compatible, read_vectors
from ..options import HistoryColumns, RankOptions
from ..profiles import Weighting, profile_history
from .blend import blend_scorer
from .explain import Explainer
from .learned import Learned
from .scorers import Scorer, item_to_item
from .scorers.baselines import popularity_scorer, random_scorer
from .scorers.item_to_item import item_model_scorer
from .scorers.vector import VectorScorer, interest_scorer, recent_items, vector_scorer
from .sequence import SeqVectors, load_model_for, seq_users_given, seq_users_profiled
from .topk import DEFAULT_BLOCK_BYTES


@dataclass
class RankPlan:
    """Users (sorted by id) × a catalog (sorted by id), and how to score them."""

    user_ids: np.ndarray
    item_ids: np.ndarray
    scorer: Scorer
    history: History | None  # mapped onto the catalog, when one was read
    explainer: Explainer | None = None
    item_vectors: np.ndarray | None = None  # for diversification
    budget_bytes: int = DEFAULT_BLOCK_BYTES  # for one block of the final scores


def plan(
    items_path: str | None,
    options: RankOptions,
    *,
    users_path: str | None = None,
    history_path: str | None = None,
    columns: HistoryColumns | None = None,
    weighting: Weighting | None = None,
) -> RankPlan:
    """Read what `options` needs and build the scorer: a baseline, or vectors (from a user table
    or profiled from the history) blended with what the history teaches."""
    if users_path is None and history_path is None:
        raise InputError("give --users users.parquet or --user-history history.csv")
    columns = columns or HistoryColumns()
    if options.baseline:
        return baseline_plan(options, items_path, history_path, columns)
    if not items_path:
        raise InputError("give --items items.parquet (or rank with --baseline popular|random)")
    return vector_plan(items_path, options, users_path, history_path, columns, weighting)


def vector_plan(
    items_path: str,
    options: RankOptions,
    users_path: str | None,
    history_path: str | None,
    columns: HistoryColumns,
    weighting: Weighting | None,
) -> RankPlan:
    """Users by their vectors, scored against the items' (and blended, explained)."""
    items = read_vectors(items_path, "items").sorted_by_id()
    weighting = weighting or Weighting()
    model = load_model_for(options, items, items_path)
    seq = None
    if users_path:
        users = read_vectors(users_path, "users").sorted_by_id()
        if users.meta.get(SPACE_KEY) == "seq":
            if model is None:
                raise InputError(
                    f"{users_path} holds a sequential model's user vectors; rank them with "
                    "--model and that model's folder"
                )
            seq = seq_users_given(users, model, items, options, users_path)
        else:
            check_compatible(users, items, users_path, items_path)
        history = None
        if history_path and not columns.text_col:
            extra = [weighting.weight_col] if weighting.weight_col else []
            events = read_encoded_interactions(history_path, extra=extra, **_id_columns(columns))
            history = map_encoded(events, items.ids, weighting.weight_col)
    else:
        users, history = profile_history(
            history_path,
            items,
            text_col=columns.text_col,
            user_col=columns.user_col,
            item_col=columns.item_col,
            time_col=columns.time_col,
            weighting=weighting,
        )
        if columns.text_col:
            history = None  # free text names no catalog item: nothing to exclude or learn from
    if model is not None and seq is None:
        seq = seq_users_profiled(users, history, model, items)
    if history is None and options.learns_from_history:
        raise InputError("--blend with cooc, ease or pop, and --explain, need --user-history")
    scorer, explainer = blended_scorer(users, items, history, options, weighting, seq)
    budget = (options.budget_bytes or DEFAULT_BLOCK_BYTES) // max(options.interests, 1)
    if len(options.blend) > 1:
        budget //= len(options.blend) + 1  # a score block per part, plus the sum
    vectors = items.vectors if options.diversify_strength > 0 else None
    return RankPlan(users.ids, items.ids, scorer, history, explainer, vectors, budget)


def blended_scorer(
    users: VectorTable,
    items: VectorTable,
    history: History | None,
    options: RankOptions,
    weighting: Weighting,
    seq: SeqVectors | None = None,
    learned: Learned | None = None,
) -> tuple[Scorer, Explainer | None]:
    """The scorer of each blend part with a non-zero weight, summed if several; and the
    explainer of their scores when `options.explain` (for a model alone: the history item
    nearest in the model's space). `learned` shares fitted models across calls."""
    blend = {name: weight for name, weight in options.blend.items() if weight != 0}
    if history is not None and learned is None:
        learned = Learned.of(history, items, options.cache_dir)
    rows = None
    if history is not None and (options.explain or set(blend) & {"cooc", "ease"}):
        rows = item_to_item.history_matrix(
            history, users.ids, len(items), weighting.weights(history)
        )
    # Only blends that use text lend it to new items; cooc/ease alone stay pure.
    lend = history is not None and "text" in blend and bool(set(blend) & {"cooc", "ease"})
    parts, text, models = [], None, []
    for name, weight in blend.items():
        if name == "text" and options.interests:
            recent = recent_items(history, users.ids, options.interests)
            parts.append((weight, interest_scorer(recent, items)))
        elif name == "text":
            parts.append((weight, vector_scorer(users, items)))
            text = (weight, items.vectors)
        elif name == "seq":
            parts.append((weight, VectorScorer(seq.users, seq.items)))
        elif name == "pop":
            parts.append((weight, popularity_scorer(learned.popularity)))
        else:
            model = learned.model(name, options.ease_lambda)
            parts.append((weight, item_model_scorer(model, rows, learned.borrow if lend else None)))
            models.append((weight, model))
    scorer = parts[0][1] if len(parts) == 1 else blend_scorer(parts)
    if text is None and seq is not None and not models:
        text = (1.0, seq.items)
    explainer = Explainer(rows, items.ids, text, models) if options.explain else None
    return scorer, explainer


def baseline_plan(
    options: RankOptions,
    items_path: str | None,
    history_path: str | None,
    columns: HistoryColumns,
) -> RankPlan:
    """Users and scorer of a baseline; the catalog is the item table or the history's items."""
    if not history_path:
        raise InputError(f"--baseline {options.baseline} needs --user-history history.csv")
    events = read_encoded_interactions(history_path, **_id_columns(columns))
    if items_path:
        item_ids = read_vectors(items_path, "items").sorted_by_id().ids
    else:
        item_ids = np.sort(events.items)
    history = map_encoded(events, item_ids)
    if options.baseline == "random":
        scorer = random_scorer(len(item_ids), options.seed)
    else:
        scorer = popularity_scorer(item_to_item.item_popularity(history, len(item_ids)))
    budget = options.budget_bytes or DEFAULT_BLOCK_BYTES
    return RankPlan(history.user_ids, item_ids, scorer, history, budget_bytes=budget)


def _id_columns(columns: HistoryColumns) -> dict[str, str | None]:
    return {
        "user_col": columns.user_col,
        "item_col": columns.item_col,
        "time_col": columns.time_col,
    }
