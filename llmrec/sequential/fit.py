"""Fitting the sequential model: epochs over next-item windows with a full softmax over the catalog
(sampled with logQ correction when the catalog is huge), early stopping on an inner leave-last
split, then one more epoch on the whole history.

Every epoch draws its batch order and dropout from (seed, epoch) alone, and the state after each
finished epoch (weights, optimizer, best weights, curve) is checkpointed beside the output, so a
killed run resumes from its last finished epoch and ends with the same weights as an unbroken one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional

from ..engine.device import pick_device as check_device
from ..options import TrainOptions, parse_duration
from .network import SequenceModel, last_states, unit
from .sequences import Events, recent, windows

VALIDATION_K = 10
USERS_PER_BLOCK = 512
# Positions per block of the full-softmax loss: each block's logits stay under glibc's largest
# mmap threshold (32 MiB), so they come from the heap and are reused batch after batch instead
# of being mapped and faulted in afresh (on online-retail one 94 MB logits matrix per batch
# spent a third of each epoch in page faults).
LOSS_BLOCK_CELLS = 4_000_000


@dataclass
class Epoch:
    """One finished epoch: its phase ("search" on the inner split, "final" on everything), mean
    training loss, the inner split's NDCG@10 after it (None in the final phase), and seconds."""

    number: int
    phase: str
    loss: float
    ndcg: float | None
    seconds: float


@dataclass
class Catalog:
    """What every batch scores against: the items' text vectors, ID slots (0: none), and the
    sampling distribution of negatives when the softmax is sampled."""

    vectors: torch.Tensor
    slots: torch.Tensor | None
    sample_probs: torch.Tensor | None = None


def pick_device(name: str) -> torch.device:
    """auto → cuda when available, else cpu; an explicit device must exist (checked, and
    refused in one line, as `embed --device` is)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(check_device(name))


def train_epoch(
    network: SequenceModel,
    optimizer: torch.optim.Optimizer,
    data: np.ndarray,
    catalog: Catalog,
    options: TrainOptions,
    epoch: int,
    device: torch.device,
) -> float:
    """One pass over the windows `data` in the order that (seed, epoch) gives; mean loss."""
    generator = np.random.default_rng([options.seed, epoch])
    torch.manual_seed(options.seed * 1_000_003 + epoch)
    order = generator.permutation(len(data))
    network.train()
    total, count = 0.0, 0
    autocast = torch.autocast("cuda", torch.bfloat16, enabled=device.type == "cuda")
    for start in range(0, len(order), options.batch_size):
        batch = torch.from_numpy(data[order[start : start + options.batch_size]]).to(device)
        inputs, targets = batch[:, :-1], batch[:, 1:]
        keep_ids = None
        if catalog.slots is not None and options.id_dropout > 0 and network.adapter is not None:
            keep_ids = (torch.rand(len(catalog.vectors), device=device) >= options.id_dropout).to(
                catalog.vectors.dtype
            )
        with autocast:
            items = network.items(catalog.vectors, catalog.slots, keep_ids)
            states = network(inputs, items)
            loss = softmax_loss(states, targets, items, catalog, options)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        n = int((targets > 0).sum())
        total, count = total + float(loss.detach()) * n, count + n
    return total / max(count, 1)


def softmax_loss(
    states: torch.Tensor,
    targets: torch.Tensor,
    items: torch.Tensor,
    catalog: Catalog,
    options: TrainOptions,
) -> torch.Tensor:
    """Cross-entropy of each position's next item over the catalog (cosine / temperature); over
    sampled negatives with logQ correction when the catalog has more than full_softmax_max items."""
    valid = targets > 0
    queries = unit(states[valid].float()) / options.temperature  # scaled before the product
    wanted = targets[valid] - 1
    keys = unit(items.float())
    if catalog.sample_probs is None:
        rows = max(1, LOSS_BLOCK_CELLS // max(len(keys), 1))
        total = sum(
            functional.cross_entropy(
                queries[a : a + rows] @ keys.T, wanted[a : a + rows], reduction="sum"
            )
            for a in range(0, len(wanted), rows)
        )
        return total / max(len(wanted), 1)
    negatives = torch.multinomial(catalog.sample_probs, options.negatives, replacement=True)
    log_q = torch.log(catalog.sample_probs * options.negatives)
    positive = (queries * keys[wanted]).sum(-1, keepdim=True)
    sampled = queries @ keys[negatives].T - log_q[negatives]
    sampled = sampled.masked_fill(negatives[None, :] == wanted[:, None], -torch.inf)
    logits = torch.cat([positive - log_q[wanted, None], sampled], dim=1)
    return functional.cross_entropy(logits, torch.zeros_like(wanted))


def validation_ndcg(
    network: SequenceModel,
    catalog: Catalog,
    inputs: np.ndarray,
    targets: np.ndarray,
    seen: tuple[np.ndarray, np.ndarray],
    device: torch.device,
) -> float:
    """Mean NDCG@10 of the inner targets (one per user), full catalog, seen items excluded."""
    network.eval()
    indptr, seen_items = seen
    gains = np.zeros(len(targets))
    with torch.no_grad():
        keys = unit(network.items(catalog.vectors, catalog.slots).float())
        for start in range(0, len(inputs), USERS_PER_BLOCK):
            stop = min(start + USERS_PER_BLOCK, len(inputs))
            block = torch.from_numpy(inputs[start:stop]).to(device)
            scores = unit(last_states(network(block, keys), block).float()) @ keys.T
            rows = np.repeat(np.arange(stop - start), np.diff(indptr[start : stop + 1]))
            columns = seen_items[indptr[start] : indptr[stop]]
            scores[torch.from_numpy(rows), torch.from_numpy(columns)] = -torch.inf
            wanted = torch.from_numpy(targets[start:stop] - 1).to(device)
            target_scores = scores.gather(1, wanted[:, None])
            rank = (scores > target_scores).sum(dim=1).cpu().numpy()
            gains[start:stop] = np.where(rank < VALIDATION_K, 1 / np.log2(rank + 2), 0.0)
    return float(gains.mean()) if len(gains) else 0.0


def seen_rows(events: Events, users: np.ndarray, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR (indptr, item rows) of each of `users`' items in `events` (deduplicated)."""
    row_of_user = np.full(len(events.counts), -1, dtype=np.int64)
    row_of_user[users] = np.arange(len(users))
    rows = row_of_user[events.user]
    keep = rows >= 0
    keys = np.unique(rows[keep] * (n_items + 1) + events.item[keep] - 1)
    rows, items = keys // (n_items + 1), keys % (n_items + 1)
    indptr = np.zeros(len(users) + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=len(users)), out=indptr[1:])
    return indptr, items


@dataclass
class Split:
    """The inner leave-last split: training windows without each user's latest event, and the
    validation inputs, targets and seen items of users with at least two events."""

    train: np.ndarray
    inputs: np.ndarray
    targets: np.ndarray
    seen: tuple[np.ndarray, np.ndarray]

    @classmethod
    def of(cls, events: Events, max_len: int, n_items: int) -> Split:
        inner = events.without_latest()
        users, targets = events.latest()
        return cls(
            windows(inner, max_len),
            recent(inner, max_len, users),
            targets,
            seen_rows(inner, users, n_items),
        )


@dataclass
class Progress:
    """Where a fit stands: the epochs done, the best inner NDCG@10 and its epoch, and how many
    epochs since it improved."""

    epochs: list[Epoch]
    best: float = -math.inf
    best_epoch: int = 0
    stale: int = 0

    @property
    def finished(self) -> bool:
        return bool(self.epochs) and self.epochs[-1].phase == "final"

    def record(self, epoch: Epoch) -> bool:
        """Add an epoch; True when it is the best so far."""
        self.epochs.append(epoch)
        if epoch.ndcg is not None and epoch.ndcg > self.best:
            self.best, self.best_epoch, self.stale = epoch.ndcg, epoch.number, 0
            return True
        self.stale += epoch.phase == "search"
        return False


def search_is_over(progress: Progress, options: TrainOptions, started: float) -> str | None:
    """Why the search phase stops now (patience, epochs, time budget), or None to go on."""
    done = [e for e in progress.epochs if e.phase == "search"]
    if len(done) >= options.epochs:
        return "epochs"
    if done and progress.stale >= options.patience > 0:
        return "patience"
    budget = parse_duration(options.time_budget)
    if budget is not None and done:
        per_epoch = sum(e.seconds for e in done) / len(done)
        if time.perf_counter() - started + 2 * per_epoch > budget:  # leave time for the final one
            return "time budget"
    return None


OnEpoch = Callable[[Epoch, Progress], None]
