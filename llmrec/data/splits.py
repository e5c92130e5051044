"""Interactions → history + held-out, deterministically (ties in time fall back to file order)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import InputError
from ..io.tables import ALL, read_table, require_values, write_frame
from ..options import SPLIT_STRATEGIES, SplitOptions, SplitStrategy, check_choice, flag
from .interactions import parse_order


def event_age(users: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: its age within the user (0 = latest; ties by file order) and the user's count."""
    codes, _ = pd.factorize(users)
    sort = np.lexsort((np.arange(len(order)), order, codes))
    counts = np.bincount(codes)
    ends = np.cumsum(counts)
    age = np.empty(len(order), dtype=np.int64)
    age[sort] = ends[codes[sort]] - 1 - np.arange(len(order))
    return age, counts[codes]


def leave_last_mask(users: np.ndarray, order: np.ndarray, n: int, min_history: int) -> np.ndarray:
    """Hold out each user's `n` latest rows when at least `min_history` rows remain."""
    if n < 1:
        raise InputError(f"{flag('n')} {n}: hold out at least 1 interaction per user")
    age, count = event_age(users, order)
    return (age < n) & (count - n >= min_history)


def temporal_mask(
    users: np.ndarray, order: np.ndarray, cutoff: float, min_history: int
) -> np.ndarray:
    """Hold out rows at or after `cutoff` for users with at least `min_history` rows before it."""
    after = order >= cutoff
    before_counts = pd.Series(~after).groupby(users).transform("sum").to_numpy()
    return after & (before_counts >= min_history)


def fraction_cutoff(order: np.ndarray, fraction: float) -> float:
    """The time from which the latest round(fraction · rows) rows lie (more if times tie)."""
    if not 0 < fraction < 1:
        raise InputError(f"{flag('fraction')} {fraction}: must be between 0 and 1")
    held = int(round(len(order) * fraction))
    if held == 0:
        raise InputError(
            f"{flag('fraction')} {fraction}: holds out no row of {len(order)}; raise it"
        )
    return float(np.sort(order)[len(order) - held])


def split_frame(
    frame: pd.DataFrame,
    *,
    path: str,
    user_col: str = "user_id",
    time_col: str | None = None,
    strategy: SplitStrategy = "leave-last",
    n: int = 1,
    cutoff: str | None = None,
    fraction: float | None = None,
    min_history: int = 1,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split interactions into (history, heldout), keeping all columns and file order.

    Temporal splits drop the held-out-period rows of users without enough earlier history,
    so no future interaction leaks into the history.
    """
    if min_history < 0:
        raise InputError(f"{flag('min_history')} {min_history}: must be 0 or more")
    time_col = time_col or ("timestamp" if "timestamp" in frame.columns else None)
    if time_col and time_col not in frame.columns:
        raise InputError(f"{path}: no column {time_col!r}; fix {flag('time_col')}")
    users = frame[user_col].to_numpy(dtype=object)
    order = (
        parse_order(frame[time_col], path, time_col)
        if time_col
        else np.arange(len(frame), dtype=np.float64)
    )
    if strategy == "leave-last":
        held = leave_last_mask(users, order, n, min_history)
        return frame[~held], frame[held]
    check_choice("strategy", strategy, SPLIT_STRATEGIES)
    if not time_col:
        raise InputError(f"{path}: a temporal split needs a time column; pass {flag('time_col')}")
    if (cutoff is None) == (fraction is None):
        raise InputError(
            f"{flag('strategy')} temporal needs exactly one of {flag('cutoff')} DATE "
            f"or {flag('fraction')} F"
        )
    if cutoff is not None:
        limit = float(parse_order(pd.Series([cutoff]), flag("cutoff"), "cutoff")[0])
    else:
        limit = fraction_cutoff(order, fraction)
    held = temporal_mask(users, order, limit, min_history)
    return frame[order < limit], frame[held]


@dataclass
class SplitResult:
    """The two parts of a split; unpacks as `history, heldout = result`."""

    history: pd.DataFrame
    heldout: pd.DataFrame

    def __iter__(self) -> Iterator[pd.DataFrame]:
        return iter((self.history, self.heldout))


def split_table(interactions: str, options: SplitOptions | None = None) -> SplitResult:
    """Read interactions and split them as `options` say (`llmrec split` without the writing)."""
    options = options or SplitOptions()
    frame = read_table(
        interactions,
        required=[options.user_col, options.item_col],
        strings=ALL,
        what="interactions",
        hint=f"name it with {flag('user_col')} / {flag('item_col')}",
    )
    require_values(frame, options.user_col, interactions)
    history, heldout = split_frame(
        frame,
        path=interactions,
        user_col=options.user_col,
        time_col=options.time_col,
        strategy=options.strategy,
        n=options.n,
        cutoff=options.cutoff,
        fraction=options.fraction,
        min_history=options.min_history,
    )
    if heldout.empty:
        raise InputError(
            f"{interactions}: nothing was held out; lower {flag('min_history')} or change "
            f"{flag('n')} / {flag('cutoff')} / {flag('fraction')}"
        )
    return SplitResult(history.reset_index(drop=True), heldout.reset_index(drop=True))


def split_file(
    interactions: str, history_out: str, heldout_out: str, options: SplitOptions | None = None
) -> SplitResult:
    """`llmrec split`: read interactions, split them as `options` say, write both parts."""
    result = split_table(interactions, options)
    write_frame(result.history, history_out)
    write_frame(result.heldout, heldout_out)
    return result
