"""Vector scoring by tiles: a block of users × a block of items per matrix product.

A running top-k per user is merged across item blocks, so neither the number of users nor of
items bounds memory. Exact ranking on the CPU is numpy's alone (`blas_top_k`); the torch tiles
here score on a GPU, in float32 (`topk.product`), or in bfloat16 (`fast`, on any device),
keeping 3k candidates per user, which `Rescorer` re-scores in float32; users whose candidates
are too close to call in bfloat16 are ranked again in float32.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from ..data.history import Seen
from ..engine.device import free_bytes
from .blas_top_k import blas_top_k, seen_pairs
from .item_blocks import ItemBlocks
from .topk import (
    DEFAULT_BLOCK_BYTES,
    block_rows,
    exact_order,
    merge_top_k,
    product,
    tile_top_k,
    top_k,
    torch_threads,
)

if TYPE_CHECKING:
    import torch


ITEM_BLOCK = 65536  # item columns per score tile when the catalog is larger
SEARCH_THREADS_BESIDE_BLAS = 1  # torch threads searching a tile that numpy's BLAS just scored


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


def tile_plan(
    n_items: int, dim: int, k: int, fast: bool, budget_bytes: int
) -> tuple[int, int, int]:
    """(candidates kept per user, users per tile, items per tile) for `vector_top_k`: fast mode
    keeps 3k bfloat16 candidates and their float32 rows; exact mode k float32 scores."""
    fetch = min(fast_fetch(k), n_items) if fast else k
    candidate_bytes = 64 + (4 * dim if fast else 0)
    rows, step = tile_shape(n_items, fetch, budget_bytes, 2 if fast else 4, candidate_bytes)
    return fetch, rows, step


def vector_top_k(
    users: np.ndarray,
    items: np.ndarray,
    k: int,
    *,
    seen: Seen | None = None,
    budget_bytes: int = DEFAULT_BLOCK_BYTES,
    fast: bool = False,
    device: str = "cpu",
) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """Yield (start, stop, values, columns) as numpy arrays: the top-k items by dot product of
    each block of users, ordered by (score desc, column asc), seen items −inf; k ≤ the number
    of items.

    Exact by default: on the CPU through `blas_top_k` (numpy, no torch). `fast` scores in
    bfloat16 and re-scores 3k candidates in float32 (see the module docstring); the returned
    scores are always float32 dot products. Torch tiles are scored, masked and searched on
    `device` ("cpu" or a CUDA device; see `item_blocks`), whose blocks may take more memory
    than `budget_bytes` (`device_budget`); results come back to the host.
    """
    if device == "cpu" and not fast:
        return blas_top_k(users, items, k, seen=seen, budget_bytes=budget_bytes)
    return torch_top_k(
        users, items, k, seen=seen, budget_bytes=budget_bytes, fast=fast, device=device
    )


def torch_top_k(
    users: np.ndarray,
    items: np.ndarray,
    k: int,
    *,
    seen: Seen | None = None,
    budget_bytes: int = DEFAULT_BLOCK_BYTES,
    fast: bool = False,
    device: str = "cpu",
) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """`vector_top_k` by torch tiles, on any device: what a GPU runs, and `fast` mode."""
    import torch

    where = torch.device(device)
    if where.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # exact means float32, not TensorFloat-32
    budget = device_budget(where, budget_bytes)
    fetch, rows, step = tile_plan(len(items), items.shape[1], k, fast, budget)
    dtype = torch.bfloat16 if fast else torch.float32
    catalog = torch.from_numpy(items)
    tiles = Tiles.of(ItemBlocks.of(catalog, dtype, step, where, budget), rows)
    rescore = Rescorer(catalog, k, budget, where)
    for start in range(0, len(users), rows):
        stop = min(start + rows, len(users))
        block = torch.from_numpy(users[start:stop]).to(where)
        pairs = seen_pairs(seen, start, stop)
        values, columns = tiles.top_k(block.to(dtype), fetch, pairs)
        if fast:
            values, columns = rescore(block, values, columns, pairs)
        yield start, stop, values.cpu().numpy(), columns.cpu().numpy()


def device_budget(device: torch.device, budget_bytes: int) -> int:
    """Bytes for one tile's scores and candidates: the caller's budget on the CPU; on a GPU at
    least that, and up to an eighth of its free memory (a tile of a few thousand users scored
    against 65,536 items keeps the GPU busy)."""
    free = free_bytes(device)
    return budget_bytes if free is None else max(budget_bytes, min(free // 8, 4 * 2**30))


@dataclass
class Tiles:
    """How a block of users meets the catalog: item blocks of `step` rows (`ItemBlocks`), scored
    into a reused buffer in their dtype on their device. Float32 tiles give the exact top-k
    (ties by column); bfloat16 tiles only pick candidates."""

    blocks: ItemBlocks
    buffer: torch.Tensor  # room for one tile's scores, in the scoring dtype

    @classmethod
    def of(cls, blocks: ItemBlocks, rows: int) -> Tiles:
        """Tiles of up to rows × blocks.step scores."""
        import torch

        buffer = torch.empty(rows * blocks.step, dtype=blocks.dtype, device=blocks.device)
        return cls(blocks, buffer)

    @property
    def exact(self) -> bool:
        import torch

        return self.buffer.dtype == torch.float32

    def top_k(
        self, users: torch.Tensor, k: int, seen: tuple[np.ndarray, np.ndarray]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k of a block of users (in the scoring dtype) over every item block, merged as the
        blocks go. Exact tiles keep (score desc, column asc) order throughout.

        Float32 products through numpy's BLAS leave its workers spinning for a while after each
        product; torch's own threads would fight them for the cores, so those tiles are
        searched on one torch thread (faster on the whole than two).
        """
        import torch

        numpy_blas = self.exact and self.buffer.device.type == "cpu"
        threads = SEARCH_THREADS_BESIDE_BLAS if numpy_blas else torch.get_num_threads()
        best = None
        for a, b, item_block in self.blocks:
            tile = self.buffer[: len(users) * (b - a)].view(len(users), b - a)
            product(users, item_block, out=tile)
            with torch_threads(threads):
                _mask_seen(tile, seen, a, b)
                values, columns = tile_top_k(tile, min(k, b - a), self.exact)
                columns += a
                best = (values, columns) if best is None else merge_top_k(*best, values, columns, k)
        return best


def _mask_seen(tile: torch.Tensor, seen: tuple[np.ndarray, np.ndarray], a: int, b: int) -> None:
    """Set the tile's scores of seen items (columns a … b − 1 of the catalog) to −inf."""
    import torch

    rows, columns = seen
    lo, hi = np.searchsorted(columns, [a, b])
    if hi > lo:
        at = torch.from_numpy(rows[lo:hi]).to(tile.device), torch.from_numpy(columns[lo:hi] - a)
        tile[at[0], at[1].to(tile.device)] = -torch.inf


@dataclass
class Rescorer:
    """Fast mode's finish for a block of users: float32 dot products of each user's candidates,
    their exact top-k, and users too close to call in bfloat16 ranked again in float32."""

    items: torch.Tensor  # float32 (items, dim), on the host
    k: int
    budget_bytes: int
    device: torch.device

    @cached_property
    def exact_blocks(self) -> ItemBlocks:
        """The catalog in float32 on the device, made when a first user needs ranking again."""
        import torch

        step = tile_shape(len(self.items), self.k, self.budget_bytes)[1]
        return ItemBlocks.of(self.items, torch.float32, step, self.device, self.budget_bytes)

    def __call__(
        self,
        users: torch.Tensor,
        rough: torch.Tensor,
        columns: torch.Tensor,
        seen: tuple[np.ndarray, np.ndarray],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The exact top-k of each user's candidates (`rough`: bfloat16 scores, descending)."""
        import torch

        candidates = self.items[columns.cpu()].to(self.device)
        exact = torch.bmm(candidates, users.unsqueeze(2)).squeeze(2)
        exact = exact.masked_fill(rough == -torch.inf, -torch.inf)
        unsure = self.too_close(users, rough, exact).nonzero().squeeze(1)
        values, columns = exact_order(exact, columns)
        values, columns = values[:, : self.k], columns[:, : self.k]
        if not len(unsure):
            return values, columns
        rows = tile_shape(len(self.items), self.k, self.budget_bytes)[0]
        tiles = Tiles.of(self.exact_blocks, min(rows, len(unsure)))
        for start in range(0, len(unsure), rows):
            redo = unsure[start : start + rows]
            again = _subset_pairs(seen, redo.cpu().numpy(), len(users))
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
            return torch.zeros(
                len(users), dtype=torch.bool, device=users.device
            )  # every item is a candidate
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


def scored_top_k(
    scorer: Callable[[int, int], torch.Tensor],
    n_users: int,
    n_items: int,
    k: int,
    seen: Seen | None,
    budget_bytes: int,
) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
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
        yield start, stop, values.numpy(), columns.numpy()
