"""Top-k kernels: exact top-k with deterministic ties, tiled scoring, and the scores written.

Within a list, items are ordered by score (descending) and then by column (the item tables are
sorted by id, so ties fall to the smaller item id). Vector scoring is tiled: a block of users ×
an item block per matrix product (float32 through numpy's BLAS), a
running top-k per user merged across item blocks, so neither the number of users nor of items
bounds memory. `fast` scores in bfloat16, keeps 3k candidates per user, re-scores them in
float32 and takes the exact top-k of those; users whose candidates are too close to call in
bfloat16 are ranked again in float32.
The score written for a chosen item is one fixed-order dot product (`pair_scores`), so no tile
shape, thread count or engine changes a written byte.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


DEFAULT_BLOCK_BYTES = 256 * 2**20


def block_rows(n_items: int, budget_bytes: int = DEFAULT_BLOCK_BYTES) -> int:
    """Users per block so that a block's float32 scores (plus a same-size mask) fit the budget."""
    return max(1, budget_bytes // (max(n_items, 1) * 8))


def top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of each row of a score matrix, ordered by (score desc, column asc).

    torch.topk leaves ties in no particular order, so it fetches one more: rows whose k-th and
    (k+1)-th scores are equal have a tie at the boundary and keep the tied items with the
    smallest columns; every selected list is then re-ordered by (score desc, column asc).
    """
    import torch

    if k >= scores.shape[1]:
        values, columns = torch.sort(scores, dim=1, descending=True, stable=True)
        return values[:, :k], columns[:, :k]
    values, columns = torch.topk(scores, k + 1, dim=1)
    tied = (values[:, k - 1] == values[:, k]).nonzero().squeeze(1)
    values, columns = values[:, :k], columns[:, :k]
    if len(tied):
        values[tied], columns[tied] = _boundary_ties(scores[tied], values[tied], columns[tied])
    return exact_order(values, columns)


def _boundary_ties(
    scores: torch.Tensor, values: torch.Tensor, columns: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows whose k-th score is shared beyond the top-k (`values` sorted, descending): every
    item scoring above the k-th score, then the items tied with it that have the smallest columns.
    """
    import torch

    k = values.shape[1]
    kth = values[:, -1:]
    above = (values > kth).sum(dim=1, keepdim=True)  # these lead a sorted topk
    position = torch.arange(k, device=values.device).expand_as(values)
    index = torch.arange(scores.shape[1], device=scores.device)
    key = torch.where(scores == kth, -index, torch.iinfo(torch.int64).min)
    first_tied = -torch.topk(key, k, dim=1).values  # smallest tied columns, ascending
    tied = position >= above
    tied_columns = first_tied.gather(1, (position - above).clamp(min=0))
    return values.where(~tied, kth), columns.where(~tied, tied_columns)


def exact_order(values: torch.Tensor, columns: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's entries re-ordered by (score desc, column asc)."""
    columns, by_column = columns.sort(dim=1)
    values = values.gather(1, by_column)
    values, by_score = values.sort(dim=1, descending=True, stable=True)
    return values, columns.gather(1, by_score)


def merge_top_k(
    values: torch.Tensor,
    columns: torch.Tensor,
    more_values: torch.Tensor,
    more_columns: torch.Tensor,
    k: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The top-k of two lists per row, each in (score desc, column asc) order, where every
    column of the second is larger than every column of the first (a later item block)."""
    import torch

    values = torch.cat([values, more_values], dim=1)
    values, order = values.sort(dim=1, descending=True, stable=True)
    return values[:, :k], torch.cat([columns, more_columns], dim=1).gather(1, order[:, :k])


def sorted_rows(values: np.ndarray, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's entries re-ordered by (score desc, column asc): `exact_order` in numpy."""
    order = np.lexsort((columns, -values), axis=1)
    return np.take_along_axis(values, order, 1), np.take_along_axis(columns, order, 1)


PAIR_BLOCK_VALUES = 1 << 22  # float64 products per block of `pair_scores`: 32 MiB


def pair_scores(users: np.ndarray, items: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """users[i] · items[columns[i, j]] for every chosen pair, as float32.

    Each is one float64 sum over the dimension in numpy's pairwise order, which depends on the
    dimension alone (the float32 products are exact in float64), so a written score does not depend on the tile, block,
    thread count, engine or device that chose the item, as a BLAS product's last bit does.
    """
    out = np.empty(columns.shape, dtype=np.float32)
    step = max(1, PAIR_BLOCK_VALUES // max(columns.shape[1] * users.shape[1], 1))
    for a in range(0, len(columns), step):
        chosen = items[columns[a : a + step]].astype(np.float64)
        chosen *= users[a : a + step, None, :]
        out[a : a + step] = chosen.sum(axis=2)
    return out


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run torch operations on `n` threads within the block, as many as before after it."""
    import torch

    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n != before:
            torch.set_num_threads(before)


def product(users: torch.Tensor, items: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """users @ items.T into `out`. Float32 on the CPU goes through numpy's BLAS (OpenBLAS in
    numpy's wheels: about twice torch's MKL on AMD CPUs, and faster on Intel ones too under the
    reproducible MKL mode llmrec sets); bfloat16 and every GPU product through torch."""
    import torch

    if out.dtype == torch.float32 and out.device.type == "cpu":
        np.matmul(users.numpy(), items.numpy().T, out=out.numpy())
    else:
        torch.mm(users, items.T, out=out)
    return out


GROUPS = 16  # a tile's columns fall into this many strided groups for `tile_top_k`


def tile_top_k(tile: torch.Tensor, k: int, exact: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The top k of each row of a contiguous score tile: ordered by (score desc, column asc) if
    `exact` (as `top_k`), else some k highest scores (ties in any order) sorted descending.

    Cheaper than a top-k over every score: only the columns of the groups with the largest
    maxima are searched (`_top_groups`). Exact rows are checked: their k-th score must beat
    every score left out, else the row is redone in full.
    """
    import torch

    if not _groupable(tile.shape[1], k):
        return top_k(tile, k) if exact else torch.topk(tile, k, dim=1)
    values, columns, left_out = _top_groups(tile, k)
    if not exact:
        return values, columns
    values, columns = exact_order(values, columns)
    unclear = (values[:, k - 1] <= left_out).nonzero().squeeze(1)
    if len(unclear):
        values[unclear], columns[unclear] = top_k(tile[unclear], k)
    return values, columns


def _groupable(width: int, k: int) -> bool:
    """Whether `_top_groups` would search fewer than an eighth of `width` columns."""
    return GROUPS > 1 and width % GROUPS == 0 and k * GROUPS * 8 <= width


def _top_groups(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The k highest scores of each row (descending, ties cut anywhere), their columns, and an
    upper bound on every score left out (so equal to the k-th where a score left out ties it).

    The columns fall into n = width / GROUPS groups (j, j + n, j + 2n, …); the k groups with the
    largest maxima (found the same way, recursively) hold the k highest scores, since every
    other group's maximum is at most theirs.
    """
    import torch

    if not _groupable(scores.shape[1], k):
        best = torch.topk(scores, k + 1, dim=1)
        return best.values[:, :k], best.indices[:, :k], best.values[:, k]
    rows, n = scores.shape[0], scores.shape[1] // GROUPS
    groups = scores.view(rows, GROUPS, n)
    _, chosen, left_out = _top_groups(groups.amax(dim=1), k)
    candidates = groups.gather(2, chosen.unsqueeze(1).expand(rows, GROUPS, k)).view(rows, -1)
    best = torch.topk(candidates, k + 1, dim=1)  # candidate m·k + i is column m·n + chosen[i]
    at = best.indices[:, :k]
    columns = at.div(k, rounding_mode="floor") * n + chosen.gather(1, at.remainder(k))
    return best.values[:, :k], columns, torch.maximum(best.values[:, k], left_out)
