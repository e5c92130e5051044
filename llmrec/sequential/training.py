"""`llmrec train`: fit the sequential model on a history over an item table and write the model
folder (see `folder`), resuming from the checkpoint a killed run left."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..data.history import History, map_encoded
from ..data.interactions import read_encoded_interactions
from ..errors import InputError
from ..io.fingerprint import file_sha256
from ..io.vectors import VectorTable, read_vectors
from ..options import HistoryColumns, TrainOptions, flag
from ..version import __version__
from .checkpoint import checkpoint_folder, load_checkpoint, remove_checkpoint, save_checkpoint
from .fit import (
    Catalog,
    Epoch,
    OnEpoch,
    Progress,
    Split,
    pick_device,
    search_is_over,
    train_epoch,
    validation_ndcg,
)
from .folder import save_model
from .network import SequenceModel
from .sequences import Events, windows

IDS_AUTO_EVENTS = 5.0  # --item-ids auto: on when the history's items average this many events


@dataclass
class TrainResult:
    """What `train_to_folder` did: the data, the epochs, where it stopped and why."""

    output: str
    users: int
    items: int
    windows: int
    parameters: int
    item_ids: bool
    epochs: list[Epoch]
    best_epoch: int
    best_ndcg: float
    stopped: str
    resumed_at: int  # epochs already done by a killed run (0: a fresh start)
    seconds: float
    history: History


def train_to_folder(
    history_path: str,
    items_path: str,
    output: str,
    options: TrainOptions | None = None,
    *,
    columns: HistoryColumns | None = None,
    on_start: Callable[[int], None] | None = None,
    on_epoch: OnEpoch | None = None,
) -> TrainResult:
    """Fit the sequential model on `history_path` over the item table `items_path`; write the
    model folder `output` whole or not at all. `on_start` gets the most epochs it may run,
    `on_epoch` each finished epoch."""
    options = options or TrainOptions()
    columns = columns or HistoryColumns()
    started = time.perf_counter()
    items = read_vectors(items_path, "items").sorted_by_id()
    history = read_history(history_path, items, columns)
    events = Events.of(history)
    use_ids = wants_ids(options, history, len(items))
    slots, id_items = id_slots(history, items) if use_ids else (None, np.array([], object))
    device = pick_device(options.device)
    torch.manual_seed(options.seed)
    network = SequenceModel(
        items.vectors.shape[1],
        dim=options.dim,
        layers=options.layers,
        heads=options.heads,
        dropout=options.dropout,
        max_len=options.max_len,
        id_slots=len(id_items),
        text=options.item_ids != "only",
    ).to(device)
    optimizer = torch.optim.AdamW(
        network.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay
    )
    catalog = Catalog(
        torch.from_numpy(items.vectors).to(device),
        None if slots is None else torch.from_numpy(slots).to(device),
        sample_probs(history, len(items), device)
        if len(items) > options.full_softmax_max
        else None,
    )
    split = Split.of(events, options.max_len, len(items))
    if len(split.targets) == 0:
        raise InputError(
            f"{history_path}: no user has two or more events on items of {items_path}; "
            "a sequential model needs histories"
        )
    fingerprint = file_sha256(history_path)
    key = run_key(options, fingerprint, items, use_ids)
    folder = checkpoint_folder(output)
    restored = load_checkpoint(folder, key, network, optimizer)
    best, progress = restored or (clone_weights(network), Progress([]))
    resumed_at = len(progress.epochs)
    if on_start:
        on_start(options.epochs + 1)

    stopped = search_is_over(progress, options, started)
    while stopped is None:
        epoch_started = time.perf_counter()
        number = len(progress.epochs) + 1
        loss = train_epoch(network, optimizer, split.train, catalog, options, number, device)
        ndcg = validation_ndcg(network, catalog, split.inputs, split.targets, split.seen, device)
        epoch = Epoch(number, "search", loss, ndcg, time.perf_counter() - epoch_started)
        if progress.record(epoch):
            best = clone_weights(network)
        save_checkpoint(folder, key, network, optimizer, best, progress)
        if on_epoch:
            on_epoch(epoch, progress)
        stopped = search_is_over(progress, options, started)

    if not progress.finished:
        network.load_state_dict(best)
        epoch_started = time.perf_counter()
        number = len(progress.epochs) + 1
        everything = windows(events, options.max_len)
        loss = train_epoch(network, optimizer, everything, catalog, options, number, device)
        epoch = Epoch(number, "final", loss, None, time.perf_counter() - epoch_started)
        progress.record(epoch)
        save_checkpoint(folder, key, network, optimizer, best, progress)
        if on_epoch:
            on_epoch(epoch, progress)

    config = model_config(options, network, items, items_path, history, history_path, fingerprint)
    config["training"] |= {"stopped": stopped, "best_epoch": progress.best_epoch}
    config["validation"] = [asdict(e) for e in progress.epochs]
    save_model(output, network.cpu(), config, id_items, best)
    remove_checkpoint(folder)
    return TrainResult(
        output=output,
        users=history.n_users,
        items=len(items),
        windows=len(split.train),
        parameters=sum(p.numel() for p in network.parameters()),
        item_ids=use_ids,
        epochs=progress.epochs,
        best_epoch=progress.best_epoch,
        best_ndcg=progress.best,
        stopped=stopped,
        resumed_at=resumed_at,
        seconds=time.perf_counter() - started,
        history=history,
    )


def read_history(path: str, items: VectorTable, columns: HistoryColumns) -> History:
    """The history's events on the catalog's items, per user oldest first."""
    events = read_encoded_interactions(
        path, user_col=columns.user_col, item_col=columns.item_col, time_col=columns.time_col
    )
    history = map_encoded(events, items.ids, keep_time=False)
    if history.n_users == 0:
        raise InputError(
            f"{path}: none of its rows names an item of the item table; check "
            f"{flag('item_col')} and that both use the same ids"
        )
    return history


def wants_ids(options: TrainOptions, history: History, n_items: int) -> bool:
    """Whether items seen in training get learned ID vectors (--item-ids auto: when the items
    in the history average enough events for an ID vector to learn something)."""
    if options.item_ids != "auto":
        return options.item_ids in ("on", "only")
    used = np.count_nonzero(np.bincount(history.item_index, minlength=n_items))
    return len(history.item_index) / max(used, 1) >= IDS_AUTO_EVENTS


def id_slots(history: History, items: VectorTable) -> tuple[np.ndarray, np.ndarray]:
    """(per catalog row: its ID slot, 0 for items the history never names; the ids with a slot,
    in slot order)."""
    seen = np.bincount(history.item_index, minlength=len(items)) > 0
    slots = np.zeros(len(items), dtype=np.int64)
    slots[seen] = np.arange(1, int(seen.sum()) + 1)
    return slots, items.ids[seen]


def sample_probs(history: History, n_items: int, device: torch.device) -> torch.Tensor:
    """Negative-sampling distribution for the sampled softmax: popularity^0.75, every item > 0."""
    counts = np.bincount(history.item_index, minlength=n_items).astype(np.float64)
    weights = (counts + 1) ** 0.75
    return torch.from_numpy(weights / weights.sum()).float().to(device)


def clone_weights(network: SequenceModel) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in network.state_dict().items()}


def run_key(options: TrainOptions, history: str | None, items: VectorTable, ids: bool) -> str:
    """What a checkpoint must match to be resumed: the inputs and every option that shapes the
    weights (not the stopping rules, which may change between runs)."""
    shaping = {k: v for k, v in asdict(options).items() if k not in ("epochs", "time_budget")}
    text = json.dumps(
        [shaping, history, items.meta.get("model_fingerprint"), items.vectors.shape, ids],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def model_config(
    options: TrainOptions,
    network: SequenceModel,
    items: VectorTable,
    items_path: str,
    history: History,
    history_path: str,
    fingerprint: str | None,
) -> dict:
    """config.json: what the weights are, what they were trained on, and how."""
    return {
        "llmrec_version": __version__,
        "architecture": {
            "item_dim": int(items.vectors.shape[1]),
            "dim": options.dim,
            "layers": options.layers,
            "heads": options.heads,
            "dropout": options.dropout,
            "max_len": options.max_len,
            "id_slots": 0 if network.ids is None else network.ids.num_embeddings - 1,
            "text": network.adapter is not None,
        },
        "training": asdict(options),
        "items": {
            "path": items_path,
            "model": items.meta.get("model"),
            "model_fingerprint": items.meta.get("model_fingerprint"),
            "dim": int(items.vectors.shape[1]),
            "rows": len(items),
        },
        "history": {
            "path": history_path,
            "fingerprint": fingerprint,
            "events": int(len(history.item_index)),
            "users": history.n_users,
        },
    }
