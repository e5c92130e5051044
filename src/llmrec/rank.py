"""Users × items → top-K per user: blocked scoring, seen-item exclusion, deterministic ties.

Users are scored in blocks sized so that one block's score matrix stays within a memory
budget, whatever the number of users and items. Within a list, items are ordered by score
(descending) and then by item id, so the same input always gives the same bytes.

Plain dot-product scoring (`VectorScorer`) takes a faster path: score tiles of a user block ×
an item block (one matrix product each, float32 through numpy's BLAS), a running top-k per user
merged across item blocks, so neither the number of users nor of items bounds memory. Its
`fast` mode scores in bfloat16 (torch), keeps 3k candidates per user, re-scores them in float32
and takes the exact top-k of those; users whose candidates are too close to call in bfloat16
are ranked again in float32.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from . import collab
from .errors import InputError
from .profile import History, Weighting, map_history, profile_history
from .tables import open_output, read_interactions
from .vectors import VectorTable, check_compatible, read_vectors

if TYPE_CHECKING:
    import torch

    from .cluster import RayOptions

DEFAULT_BLOCK_BYTES = 256 * 2**20
RANKING_COLUMNS = ["user_id", "rank", "item_id", "score"]


@dataclass
class Seen:
    """Items to exclude per user, as CSR rows aligned with the users being ranked."""

    indptr: np.ndarray
    indices: np.ndarray


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
    position = torch.arange(k).expand_as(values)
    index = torch.arange(scores.shape[1])
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


Scorer = Callable[[int, int], "torch.Tensor"]  # users [start, stop) → (stop − start, items)


@dataclass
class VectorScorer:
    """Dot products of user vectors with item vectors: a Scorer (a block of users against every
    item, one matrix product) that `rank_blocks` also ranks by tiles (`vector_top_k`)."""

    users: np.ndarray  # float32 (users, dim)
    items: np.ndarray  # float32 (items, dim)

    def __call__(self, start: int, stop: int) -> torch.Tensor:
        import torch

        users, items = torch.from_numpy(self.users[start:stop]), torch.from_numpy(self.items)
        return product(users, items, out=torch.empty(len(users), len(items)))

    def written_scores(
        self, start: int, stop: int, values: torch.Tensor, columns: torch.Tensor, reorder: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The scores to write for users [start, stop)'s chosen items (`pair_scores`), in
        (score desc, column asc) order if `reorder`; excluded entries (−inf) stay so."""
        import torch

        exact = pair_scores(self.users[start:stop], self.items, columns.numpy())
        exact = torch.from_numpy(exact).masked_fill(~torch.isfinite(values), -torch.inf)
        return exact_order(exact, columns) if reorder else (exact, columns)


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


def vector_scorer(users: VectorTable, items: VectorTable) -> VectorScorer:
    """Dot products of a block of user vectors with every item vector (one matrix product)."""
    return VectorScorer(users.vectors, items.vectors)


ITEM_BLOCK = 65536  # item columns per score tile when the catalog is larger
FAST_SAFETY = 2.0  # fast mode's error bound: this × the largest bfloat16 error among candidates


def fast_fetch(k: int) -> int:
    """Candidates per user that fast mode takes from bfloat16 scores to re-score in float32."""
    return 3 * k


def tile_shape(
    n_items: int, fetch: int, budget_bytes: int, score_bytes: int = 4, candidate_bytes: int = 64
) -> tuple[int, int]:
    """(users, items) per score tile: items in blocks of ITEM_BLOCK, users as many as the budget
    holds with the tile's scores and each user's `fetch` candidates."""
    columns = min(max(n_items, 1), ITEM_BLOCK)
    return max(1, budget_bytes // (columns * score_bytes + fetch * candidate_bytes)), columns


def vector_top_k(
    users: np.ndarray,
    items: np.ndarray,
    k: int,
    *,
    seen: Seen | None = None,
    budget_bytes: int = DEFAULT_BLOCK_BYTES,
    fast: bool = False,
) -> Iterator[tuple[int, int, torch.Tensor, torch.Tensor]]:
    """Yield (start, stop, values, columns): the top-k items by dot product of each block of
    users, ordered by (score desc, column asc), seen items −inf; k ≤ the number of items.

    Exact by default. `fast` scores in bfloat16 and re-scores 3k candidates in float32 (see the
    module docstring); the returned scores are always float32 dot products.
    """
    import torch

    fetch = min(fast_fetch(k), len(items)) if fast else k
    dtype = torch.bfloat16 if fast else torch.float32
    candidate_bytes = 64 + (4 * items.shape[1] if fast else 0)
    rows, step = tile_shape(len(items), fetch, budget_bytes, dtype.itemsize, candidate_bytes)
    tiles = Tiles.of(torch.from_numpy(items), dtype, rows, step, budget_bytes)
    rescore = Rescorer(torch.from_numpy(items), k, budget_bytes) if fast else None
    for start in range(0, len(users), rows):
        stop = min(start + rows, len(users))
        block = torch.from_numpy(users[start:stop])
        pairs = _seen_pairs(seen, start, stop)
        values, columns = tiles.top_k(block.to(dtype), fetch, pairs)
        if rescore is not None:
            values, columns = rescore(block, values, columns, pairs)
        yield start, stop, values, columns


@dataclass
class Tiles:
    """How a block of users meets the catalog: item blocks of `step` rows, scored into a reused
    buffer in its dtype. Float32 tiles give the exact top-k (ties by column); bfloat16 tiles
    only pick candidates, from items converted once (`converted`) or tile by tile."""

    items: torch.Tensor  # float32 (items, dim)
    step: int
    buffer: torch.Tensor  # room for one tile's scores, in the scoring dtype
    converted: torch.Tensor | None = None  # the items in the scoring dtype

    @classmethod
    def of(
        cls, items: torch.Tensor, dtype: torch.dtype, rows: int, step: int, budget_bytes: int
    ) -> Tiles:
        """Tiles of up to rows × step scores in `dtype`, converting the items up front if the
        converted copy fits the budget."""
        import torch

        fits = dtype != items.dtype and items.numel() * dtype.itemsize <= budget_bytes
        buffer = torch.empty(rows * step, dtype=dtype)
        return cls(items, step, buffer, items.to(dtype) if fits else None)

    @property
    def exact(self) -> bool:
        return self.buffer.dtype == self.items.dtype

    def item_block(self, a: int, b: int) -> torch.Tensor:
        """Item rows [a, b) in the scoring dtype."""
        if self.exact:
            return self.items[a:b]
        if self.converted is not None:
            return self.converted[a:b]
        return self.items[a:b].to(self.buffer.dtype)

    def top_k(
        self, users: torch.Tensor, k: int, seen: tuple[np.ndarray, np.ndarray]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k of a block of users (in the scoring dtype) over every item block, merged as the
        blocks go. Exact tiles keep (score desc, column asc) order throughout.

        Float32 products run on numpy's BLAS threads, whose workers keep spinning for a while
        after each product; torch's own threads would fight them for the cores, so exact
        tiles are searched on one torch thread (faster on the whole than two).
        """
        import torch

        threads = 1 if self.exact else torch.get_num_threads()
        best = None
        for a in range(0, len(self.items), self.step):
            b = min(a + self.step, len(self.items))
            tile = self.buffer[: len(users) * (b - a)].view(len(users), b - a)
            product(users, self.item_block(a, b), out=tile)
            with torch_threads(threads):
                _mask_seen(tile, seen, a, b)
                values, columns = tile_top_k(tile, min(k, b - a), self.exact)
                columns += a
                best = (values, columns) if best is None else merge_top_k(*best, values, columns, k)
        return best


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
    """users @ items.T into `out`. Float32 goes through numpy's BLAS (OpenBLAS in numpy's wheels,
    about twice as fast as torch's MKL on AMD CPUs), bfloat16 through torch (oneDNN)."""
    import torch

    if out.dtype == torch.float32:
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


def _seen_pairs(seen: Seen | None, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """(row in block, column) of every seen item of users [start, stop), sorted by column."""
    if seen is None:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    counts = np.diff(seen.indptr[start : stop + 1])
    rows = np.repeat(np.arange(stop - start), counts)
    columns = np.asarray(seen.indices[seen.indptr[start] : seen.indptr[stop]], dtype=np.int64)
    order = np.argsort(columns, kind="stable")
    return rows[order], columns[order]


def _mask_seen(tile: torch.Tensor, seen: tuple[np.ndarray, np.ndarray], a: int, b: int) -> None:
    """Set the tile's scores of seen items (columns a … b − 1 of the catalog) to −inf."""
    import torch

    rows, columns = seen
    lo, hi = np.searchsorted(columns, [a, b])
    if hi > lo:
        tile[torch.from_numpy(rows[lo:hi]), torch.from_numpy(columns[lo:hi] - a)] = -torch.inf


@dataclass
class Rescorer:
    """Fast mode's finish for a block of users: float32 dot products of each user's candidates,
    their exact top-k, and users too close to call in bfloat16 ranked again in float32."""

    items: torch.Tensor  # float32 (items, dim)
    k: int
    budget_bytes: int

    def __call__(
        self,
        users: torch.Tensor,
        rough: torch.Tensor,
        columns: torch.Tensor,
        seen: tuple[np.ndarray, np.ndarray],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The exact top-k of each user's candidates (`rough`: bfloat16 scores, descending)."""
        import torch

        exact = torch.bmm(self.items[columns], users.unsqueeze(2)).squeeze(2)
        exact = exact.masked_fill(rough == -torch.inf, -torch.inf)
        unsure = self.too_close(users, rough, exact).nonzero().squeeze(1)
        values, columns = exact_order(exact, columns)
        values, columns = values[:, : self.k], columns[:, : self.k]
        if not len(unsure):
            return values, columns
        rows, step = tile_shape(len(self.items), self.k, self.budget_bytes)
        tiles = Tiles.of(self.items, torch.float32, min(rows, len(unsure)), step, 0)
        for start in range(0, len(unsure), rows):
            redo = unsure[start : start + rows]
            again = _subset_pairs(seen, redo.numpy(), len(users))
            values[redo], columns[redo] = tiles.top_k(users[redo], self.k, again)
        return values, columns

    def too_close(
        self, users: torch.Tensor, rough: torch.Tensor, exact: torch.Tensor
    ) -> torch.Tensor:
        """Users for whom an item left out of the candidates could still belong in the top k.

        An item's bfloat16 score is off by at most e, so a missed item would need the last
        candidate's bfloat16 score to be at least the k-th's − 2e. e is estimated from the
        candidates themselves: FAST_SAFETY × the largest error among them, per unit of user norm.
        """
        import torch

        if rough.shape[1] >= len(self.items):
            return torch.zeros(len(users), dtype=torch.bool)  # every item is a candidate
        norm = users.norm(dim=1, keepdim=True)
        finite = torch.isfinite(rough)
        error = ((rough.float() - exact).abs() / norm).where(finite & (norm > 0), 0).max()
        bound = FAST_SAFETY * error * norm.squeeze(1)
        kth, last = rough[:, self.k - 1].float(), rough[:, -1].float()
        return torch.isfinite(kth) & (last >= kth - 2 * bound)


def _subset_pairs(
    seen: tuple[np.ndarray, np.ndarray], rows: np.ndarray, n_rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """The seen (row, column) pairs of some rows of a block, renumbered 0 … len(rows) − 1."""
    renumber = np.full(n_rows, -1, dtype=np.int64)
    renumber[rows] = np.arange(len(rows))
    new_rows = renumber[seen[0]]
    keep = new_rows >= 0
    return new_rows[keep], seen[1][keep]


def interest_scorer(interests: np.ndarray, items: VectorTable) -> Scorer:
    """Each user's best match among several interest vectors: max over the user's recent items
    (rows of `interests` hold item indices, −1 where a user has fewer)."""
    import torch

    item_matrix = torch.from_numpy(items.vectors)

    def score(start: int, stop: int):
        index = torch.from_numpy(interests[start:stop])
        scores = item_matrix[index.clamp(min=0)] @ item_matrix.T  # users × interests × items
        scores[index < 0] = -torch.inf
        return scores.max(dim=1).values

    return score


def recent_items(history: History, user_ids: np.ndarray, n: int) -> np.ndarray:
    """(users × n) indices of each user's n most recent distinct items, −1 where fewer."""
    position = pd.Index(history.user_ids).get_indexer(user_ids)
    latest_first = np.lexsort((history.age, history.user_index))
    users, items = history.user_index[latest_first], history.item_index[latest_first]
    keys = users * (int(history.item_index.max()) + 1) + items
    first = ~pd.Series(keys).duplicated().to_numpy()
    users, items = users[first], items[first]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    rank = np.arange(len(users)) - np.repeat(starts, np.diff(np.r_[starts, len(users)]))
    keep = rank < n
    table = np.full((history.n_users, n), -1, dtype=np.int64)
    table[users[keep], rank[keep]] = items[keep]
    out = np.full((len(user_ids), n), -1, dtype=np.int64)
    out[position >= 0] = table[position[position >= 0]]
    return out


def popularity_scorer(counts: np.ndarray) -> Scorer:
    """The same score for every user: how many users interacted with each item."""
    import torch

    row = torch.from_numpy(counts.astype(np.float32))
    return lambda start, stop: row.expand(stop - start, -1).clone()


def random_scorer(n_items: int, seed: int = 0) -> Scorer:
    """Uniform random scores that depend only on (seed, user row, item), not on blocking."""
    import torch

    items = np.arange(n_items, dtype=np.uint64)
    offset = _splitmix64(np.array([seed], dtype=np.uint64))[0]

    def score(start: int, stop: int):
        users = np.arange(start, stop, dtype=np.uint64)[:, None]
        with np.errstate(over="ignore"):
            keys = users * np.uint64(n_items) + items + offset
        return torch.from_numpy((_splitmix64(keys) >> np.uint64(40)).astype(np.float32))

    return score


def standardized(scores):
    """Each row shifted to mean 0 and scaled to standard deviation 1 (constant rows → 0)."""
    finite = scores.clone()
    mean = finite.mean(dim=1, keepdim=True)
    std = finite.std(dim=1, keepdim=True)
    return (finite - mean) / std.where(std > 0, 1.0)


def blend_scorer(parts: list[tuple[float, Scorer]]) -> Scorer:
    """Σ weight · standardized(part scores): parts on different scales add fairly."""

    def score(start: int, stop: int):
        total = None
        for weight, scorer in parts:
            term = standardized(scorer(start, stop)) * weight
            total = term if total is None else total.add_(term)
        return total

    return score


def item_model_scorer(model, rows, borrow: TextNeighbours | None = None) -> Scorer:
    """History rows (users × items, recency-weighted CSR) times an item-to-item model.

    Items no one interacted with get no score from the model; with `borrow`, they take the
    similarity-weighted mean score of their nearest items in text instead.
    """
    import torch

    def score(start: int, stop: int):
        scores = model.scores(rows[start:stop])
        if borrow is not None:
            scores[:, borrow.items] = (scores[:, borrow.neighbours] * borrow.weights).sum(axis=2)
        return torch.from_numpy(scores)

    return score


@dataclass
class TextNeighbours:
    """For items without interactions: their nearest interacted items by text, and weights."""

    items: np.ndarray  # (n,) item indices
    neighbours: np.ndarray  # (n, m) item indices
    weights: np.ndarray  # (n, m) float32, each row sums to 1

    @classmethod
    def of(cls, cold: np.ndarray, vectors: np.ndarray, m: int = 10) -> TextNeighbours | None:
        """Nearest warm items (cosine, negatives dropped) of each cold item, in chunks."""
        import torch

        cold_items, warm_items = np.flatnonzero(cold), np.flatnonzero(~cold)
        if len(cold_items) == 0 or len(warm_items) == 0:
            return None
        unit = torch.nn.functional.normalize(torch.from_numpy(vectors), dim=1)
        warm = unit[torch.from_numpy(warm_items)]
        m = min(m, len(warm_items))
        values, columns = [], []
        step = max(1, DEFAULT_BLOCK_BYTES // (4 * len(warm_items)))
        for start in range(0, len(cold_items), step):
            chunk = unit[torch.from_numpy(cold_items[start : start + step])] @ warm.T
            top = torch.topk(chunk, m, dim=1)
            values.append(top.values.clamp(min=0).numpy())
            columns.append(top.indices.numpy())
        weights = np.vstack(values)
        weights /= np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)
        return cls(cold_items, warm_items[np.vstack(columns)], weights.astype(np.float32))


def parse_blend(text: str) -> dict[str, float]:
    """`text=1,cooc=0.5,pop=0.1` → {"text": 1.0, "cooc": 0.5, "pop": 0.1}."""
    weights: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in BLEND_PARTS:
            raise InputError(
                f"--blend {text!r}: unknown part {name!r}; use {', '.join(BLEND_PARTS)}"
            )
        try:
            weights[name] = float(value) if value else 1.0
        except ValueError as exc:
            raise InputError(f"--blend {text!r}: {part!r} needs a number, e.g. {name}=0.5") from exc
    if not weights or all(w == 0 for w in weights.values()):
        raise InputError(f"--blend {text!r}: give at least one part with a non-zero weight")
    return weights


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A fast, well-mixed 64-bit integer hash (SplitMix64's finaliser), vectorised."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


@dataclass
class Explainer:
    """Names, for each recommendation, the history item that contributed most to its score.

    A history item j adds w_j·cos(v_j, v_i) to the text score of item i (the profile is a
    weighted mean) and x_j·M[j, i] to an item-to-item score; each part is scaled by its largest
    contribution for that user, weighted as in the blend, and summed.
    """

    rows: object  # CSR users × items: each user's history weights
    item_ids: np.ndarray
    text: tuple[float, np.ndarray] | None = None  # (blend weight, item vectors)
    models: list = None  # [(blend weight, ItemModel)]
    budget_bytes: int = DEFAULT_BLOCK_BYTES

    def because(self, start: int, stop: int, columns: np.ndarray) -> np.ndarray:
        """(users × k) history item ids explaining `columns`, the recommended item indices."""
        out = np.empty(columns.shape, dtype=object)
        n_items = len(self.item_ids)
        step = max(1, self.budget_bytes // (max(columns.shape[1], 1) * n_items * 4 * 3))
        for a in range(start, stop, step):
            b = min(a + step, stop)
            recs = columns[a - start : b - start]
            history = self.rows[a:b].toarray()  # (users, items) weights, 0 = not in history
            total = np.zeros((b - a, recs.shape[1], n_items), dtype=np.float32)
            if self.text is not None:
                weight, vectors = self.text
                part = (vectors[recs] @ vectors.T) * history[:, None, :]
                total += weight * _scaled(part)
            for weight, model in self.models or []:
                part = model.columns(recs.ravel()).reshape(recs.shape + (n_items,))
                total += weight * _scaled(part * history[:, None, :])
            total[np.broadcast_to(history[:, None, :] == 0, total.shape)] = -np.inf
            best = total.argmax(axis=2)
            names = self.item_ids[best]
            names[~np.isfinite(total.max(axis=2))] = ""
            out[a - start : b - start] = names
        return out


def diversify(values, columns, vectors, k: int, strength: float):
    """Re-rank candidates by maximal marginal relevance, for a block of users at once.

    Greedily picks argmax (1 − λ)·rel − λ·max_{s∈picked} cos(item, s), where rel is each
    user's candidate score rescaled to [0, 1] and λ = `strength` (0 keeps the order).
    Returns the picked (values, columns), k per user, in pick order.
    """
    import torch

    valid = torch.isfinite(values)
    low = values.where(valid, torch.inf).min(dim=1, keepdim=True).values
    high = values.where(valid, -torch.inf).max(dim=1, keepdim=True).values
    relevance = (values - low) / (high - low).clamp(min=1e-12)
    unit = torch.nn.functional.normalize(torch.from_numpy(vectors), dim=1)
    candidates = unit[columns]  # users × m × dim
    similarity = candidates @ candidates.transpose(1, 2)
    closest = torch.zeros_like(relevance)  # max similarity to what is already picked
    available = valid.clone()
    rows = torch.arange(values.shape[0])
    picks, found = [], []
    for _ in range(min(k, values.shape[1])):
        gain = ((1 - strength) * relevance - strength * closest).masked_fill(~available, -torch.inf)
        found.append(available.any(dim=1))  # users with no candidate left get an empty slot
        pick = gain.argmax(dim=1)
        picks.append(pick)
        available[rows, pick] = False
        closest = torch.maximum(closest, similarity[rows, pick])
    order = torch.stack(picks, dim=1)
    picked = values.gather(1, order).masked_fill(~torch.stack(found, dim=1), -torch.inf)
    return picked, columns.gather(1, order)


def _scaled(part: np.ndarray) -> np.ndarray:
    """Divide each user's contributions by their largest magnitude (so parts are comparable)."""
    peak = np.abs(part).max(axis=(1, 2), keepdims=True)
    return part / np.where(peak > 0, peak, 1)


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
            from .cluster import top_k_on_ray

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


def scored_top_k(
    scorer: Scorer, n_users: int, n_items: int, k: int, seen: Seen | None, budget_bytes: int
) -> Iterator[tuple[int, int, torch.Tensor, torch.Tensor]]:
    """Yield (start, stop, values, columns): the top-k of each block of users from any scorer,
    whose score block covers every item; seen items get −inf."""
    import torch

    step = block_rows(n_items, budget_bytes)
    for start in range(0, n_users, step):
        stop = min(start + step, n_users)
        scores = scorer(start, stop)
        if seen is not None:
            lo, hi = seen.indptr[start], seen.indptr[stop]
            rows = np.repeat(np.arange(stop - start), np.diff(seen.indptr[start : stop + 1]))
            scores[torch.from_numpy(rows), torch.from_numpy(seen.indices[lo:hi])] = -torch.inf
        values, columns = top_k(scores, k)
        del scores
        yield start, stop, values, columns


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


BASELINES = ("popular", "random")
BLEND_PARTS = ("text", "cooc", "ease", "pop")


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
        user_ids, item_ids, scorer, history = _baseline(
            baseline, items_path, history_path, options, seed
        )
    else:
        user_ids, items, scorer, history, explainer = _by_vectors(
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


def _by_vectors(
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
        rows = collab.user_rows(history, users.ids, len(items), weighting.weights(history))
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
            popularity = np.log1p(collab.item_popularity(history, len(items)))
            parts.append((weight, popularity_scorer(popularity)))
        else:
            model = collab.fit_cached(
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


def _baseline(baseline, items_path, history_path, options, seed):
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
    counts = collab.item_popularity(history, len(item_ids))
    return history.user_ids, item_ids, popularity_scorer(counts), history
