"""Rankings × held-out truth → per-user metrics and their means, with explicit user accounting.

Users in the truth but absent from the rankings score 0 on every metric and are counted;
users ranked but absent from the truth are ignored and counted; duplicate rows are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .errors import InputError
from .metrics import FUNCTIONS, METRICS
from .tables import read_table


@dataclass
class Evaluation:
    """Per-user metric values and the accounting of which users were scored."""

    ks: list[int]
    per_user: pd.DataFrame  # index user_id, columns "ndcg@10", ...
    users_evaluated: int
    users_missing: int  # in the truth, not in the rankings: scored 0
    users_ignored: int  # in the rankings, not in the truth
    longest_list: int  # most items ranked for one user
    sources: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, float]:
        """Mean of every metric over the evaluated users."""
        return {name: float(value) for name, value in self.per_user.mean().items()}


def parse_ks(text: str) -> list[int]:
    """`5,10,20` → [5, 10, 20], sorted and unique; every k must be a positive integer."""
    try:
        ks = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError as exc:
        raise InputError(f"-k {text!r}: give cut-offs as integers, e.g. -k 5,10,20") from exc
    if not ks or ks[0] < 1:
        raise InputError(f"-k {text!r}: every cut-off must be at least 1")
    return ks


def read_rankings(path: str) -> pd.DataFrame:
    """Read a rankings file and order each user's list: by `rank`, else `score`, else file order."""
    frame = read_table(
        path,
        required=["user_id", "item_id"],
        what="rankings",
        hint="rankings need user_id and item_id columns (as 'llmrec rank' writes)",
    )
    frame = frame.assign(_row=np.arange(len(frame)))
    if "rank" in frame.columns:
        keys = ["user_id", "rank", "_row"]
        ascending = [True, True, True]
    elif "score" in frame.columns:
        keys = ["user_id", "score", "item_id"]
        ascending = [True, False, True]
    else:
        keys, ascending = ["user_id", "_row"], [True, True]
    for column in keys[1:2]:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            raise InputError(f"{path}: column {column!r} must be numeric")
    frame = frame.sort_values(keys, ascending=ascending, kind="stable")
    return frame.drop_duplicates(["user_id", "item_id"])[["user_id", "item_id"]]


def read_truth(path: str) -> pd.DataFrame:
    """Read held-out interactions as distinct (user_id, item_id) pairs."""
    frame = read_table(
        path,
        required=["user_id", "item_id"],
        what="truth",
        hint="the truth file needs user_id and item_id columns",
    )
    return frame[["user_id", "item_id"]].dropna().drop_duplicates()


def hit_matrix(rankings: pd.DataFrame, truth: pd.DataFrame, depth: int):
    """Build the (truth users × depth) hit matrix, |R| per user and the user accounting."""
    truth_users, truth_codes = np.unique(truth["user_id"].to_numpy(dtype=str), return_inverse=True)
    n_relevant = np.bincount(truth_codes, minlength=len(truth_users))
    run_users = rankings["user_id"].to_numpy(dtype=str)
    row = np.searchsorted(truth_users, run_users)
    row = np.minimum(row, max(len(truth_users) - 1, 0))
    in_truth = truth_users[row] == run_users if len(truth_users) else np.zeros(0, bool)
    position = rankings.groupby("user_id", sort=False).cumcount().to_numpy()
    keep = in_truth & (position < depth)
    relevant = _pairs_in(rankings[keep], truth)
    hits = np.zeros((len(truth_users), depth), dtype=np.int8)
    hits[row[keep], position[keep]] = relevant
    ranked = np.unique(run_users)
    missing = len(truth_users) - int(np.isin(truth_users, ranked).sum())
    ignored = len(ranked) - int(np.isin(ranked, truth_users).sum())
    return truth_users, hits, n_relevant, missing, ignored


def _pairs_in(pairs: pd.DataFrame, truth: pd.DataFrame) -> np.ndarray:
    """For each (user, item) row of `pairs`, whether it is in `truth`, by integer keys."""
    users, user_codes = np.unique(
        np.concatenate(
            [pairs["user_id"].to_numpy(dtype=str), truth["user_id"].to_numpy(dtype=str)]
        ),
        return_inverse=True,
    )
    items, item_codes = np.unique(
        np.concatenate(
            [pairs["item_id"].to_numpy(dtype=str), truth["item_id"].to_numpy(dtype=str)]
        ),
        return_inverse=True,
    )
    keys = user_codes.astype(np.int64) * len(items) + item_codes
    return np.isin(keys[: len(pairs)], keys[len(pairs) :])


def evaluate_frames(rankings: pd.DataFrame, truth: pd.DataFrame, ks: list[int]) -> Evaluation:
    """Score ordered rankings against truth pairs at every k in `ks`."""
    users, hits, n_relevant, missing, ignored = hit_matrix(rankings, truth, max(ks))
    columns = {f"{name}@{k}": FUNCTIONS[name](hits, n_relevant, k) for name in METRICS for k in ks}
    per_user = pd.DataFrame(columns, index=pd.Index(users, name="user_id"))
    longest = int(rankings.groupby("user_id").size().max()) if len(rankings) else 0
    return Evaluation(ks, per_user, len(users), missing, ignored, longest)


def evaluate_files(rankings_path: str, truth_path: str, ks: list[int]) -> Evaluation:
    """Read a rankings file and a truth file and evaluate them."""
    result = evaluate_frames(read_rankings(rankings_path), read_truth(truth_path), ks)
    result.sources = {"rankings": rankings_path, "truth": truth_path}
    return result
