"""`rank --engine ray`: the tiled top-k of `tiles` with user blocks as Ray tasks.

The item matrix goes into the object store once; blocks come back in user order. The scores
written are recomputed by `topk.pair_scores` on the driver, so they equal the local engine's.
"""

from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Iterator

import numpy as np

from ..data.history import Seen
from ..engine.ray import RayOptions, ray_call, ray_session
from .tiles import tile_plan, vector_top_k


def top_k_on_ray(
    users: np.ndarray,
    items: np.ndarray,
    k: int,
    *,
    seen=None,
    budget_bytes: int,
    fast: bool = False,
    options: RayOptions,
) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """`tiles.vector_top_k` with user blocks as Ray tasks: the same (start, stop, values,
    columns) blocks, in user order, computed with the same tile shapes."""
    _, tile_rows, _ = tile_plan(len(items), items.shape[1], k, fast, budget_bytes)
    with ray_session(options) as ray:
        workers = options.concurrency or max(1, int(ray.cluster_resources().get("CPU", 1)))
        tiles = max(1, -(-len(users) // (tile_rows * 4 * workers)))  # ≥ 4 tasks per worker
        step = tile_rows * tiles
        task = ray.remote(num_cpus=1)(_rank_block)
        items_ref = ray.put(items)
        pending: deque = deque()
        starts = iter(range(0, len(users), step))
        for start in starts:
            pending.append(
                _submit(task, users, items_ref, start, step, k, seen, budget_bytes, fast)
            )
            if len(pending) < 2 * workers:
                continue
            yield _collect(ray, pending.popleft())
        while pending:
            yield _collect(ray, pending.popleft())


def _submit(task, users, items_ref, start, step, k, seen, budget_bytes, fast):

    stop = min(start + step, len(users))
    block_seen = None
    if seen is not None:
        lo, hi = seen.indptr[start], seen.indptr[stop]
        block_seen = Seen(seen.indptr[start : stop + 1] - lo, seen.indices[lo:hi])
    ref = task.remote(users[start:stop], items_ref, k, block_seen, budget_bytes, fast)
    return start, stop, ref


def _collect(ray, pending):
    start, stop, ref = pending
    values, columns = ray_call(lambda: ray.get(ref))
    # ray.get gives read-only arrays; the copies are small (users × k)
    return start, stop, values.copy(), columns.copy()


def _rank_block(users, items, k, seen, budget_bytes, fast):
    """One Ray task: the top-k of a block of users, as numpy arrays."""
    if fast:
        import torch

        torch.set_num_threads(1)
    with warnings.catch_warnings():  # the shared item matrix is read-only; nothing writes it
        warnings.simplefilter("ignore", UserWarning)
        parts = list(vector_top_k(users, items, k, seen=seen, budget_bytes=budget_bytes, fast=fast))
    values = np.concatenate([values for _, _, values, _ in parts])
    columns = np.concatenate([columns for _, _, _, columns in parts])
    return values, columns
