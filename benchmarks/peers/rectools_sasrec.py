"""RecTools' SASRec as a peer of `make quality`: train on a history, write top-k rankings.

Runs with the peers' own Python (.venv-peers, built by `make peers`; RecTools pins numpy and
pandas versions that llmrec's environment does not use), never with llmrec's:

    .venv-peers/bin/python benchmarks/peers/rectools_sasrec.py HISTORY \
        --inner-history inner/history.csv --inner-heldout inner/heldout.csv \
        -o rankings.csv --summary summary.json

The number of epochs is chosen on the inner split only (INNER_HISTORY / INNER_HELDOUT: HISTORY
with each user's latest event held out, from `llmrec split`): one model is trained on the inner
history an epoch at a time (`fit_partial`), its top 10 for the inner users are scored by
NDCG@10 against the inner held-out after every epoch, and the search stops after `--patience`
epochs without a better score, at `--max-epochs`, or when the next epoch would end after
`--time-budget` seconds. A fresh model (same seed) is then trained on all of HISTORY for the
best epoch count, and each user of HISTORY gets their top k, items of their history excluded.
The outer held-out file is never read here.

Model: `SASRecModel` with n_factors=128 and the softmax loss over the whole catalog, item ID
embeddings only (no features), each user's latest 50 events (session_max_len, as `llmrec
train --max-len`), RecTools' defaults otherwise (2 blocks, 4 heads, dropout 0.2, lr 1e-3, batch
128). Rankings: CSV user_id,rank,item_id,score.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import warnings
from importlib import metadata

import numpy as np
import pandas as pd

FACTORS = 128
LOSS = "softmax"
MAX_LEN = 50  # as llmrec train's --max-len; RecTools' 100 makes a CPU epoch ~5x slower


def read_interactions(path: str) -> pd.DataFrame:
    """A history CSV (user_id,item_id,timestamp in unix seconds) as RecTools' interactions."""
    frame = pd.read_csv(path, dtype={"user_id": str, "item_id": str})
    return pd.DataFrame(
        {
            "user_id": frame["user_id"],
            "item_id": frame["item_id"],
            "weight": 1.0,
            "datetime": pd.to_datetime(frame["timestamp"], unit="s"),
        }
    )


def make_model(epochs: int, seed: int):
    from pytorch_lightning import seed_everything
    from rectools.models import SASRecModel
    from rectools.models.nn.item_net import IdEmbeddingsItemNet

    seed_everything(seed, workers=True, verbose=False)
    return SASRecModel(
        n_factors=FACTORS,
        loss=LOSS,
        session_max_len=MAX_LEN,
        epochs=epochs,
        item_net_block_types=(IdEmbeddingsItemNet,),
        deterministic=True,
        recommend_torch_device="cpu",
    )


def recommend(model, dataset, users: np.ndarray, k: int) -> pd.DataFrame:
    return model.recommend(
        users=users, dataset=dataset, k=k, filter_viewed=True, on_unsupported_targets="ignore"
    )


def ndcg_at(recs: pd.DataFrame, truth: pd.DataFrame, k: int) -> float:
    """Mean NDCG@k over the truth's users (one or more held-out items each; missing users: 0)."""
    hits = recs.merge(truth[["user_id", "item_id"]].drop_duplicates(), on=["user_id", "item_id"])
    hits = hits[hits["rank"] <= k]
    gain = (1.0 / np.log2(hits["rank"].to_numpy() + 1.0)).astype(float)
    dcg = pd.Series(gain, index=hits["user_id"].to_numpy()).groupby(level=0).sum()
    relevant = truth.groupby("user_id")["item_id"].nunique().clip(upper=k)
    ideal = relevant.map(lambda n: float(np.sum(1.0 / np.log2(np.arange(2, n + 2)))))
    return float((dcg.reindex(ideal.index, fill_value=0.0) / ideal).mean())


def choose_epochs(args, log) -> tuple[int, list[dict], float]:
    """(best epoch count, the inner curve, seconds): epochs trained one at a time on the inner
    history, each scored by NDCG@10 on the inner held-out."""
    from rectools.dataset import Dataset

    started = time.perf_counter()
    dataset = Dataset.construct(read_interactions(args.inner_history))
    truth = pd.read_csv(args.inner_heldout, dtype={"user_id": str, "item_id": str})
    users = truth["user_id"].unique()
    model = make_model(1, args.seed)
    curve: list[dict] = []
    best, best_epoch, stale = -1.0, 1, 0
    for epoch in range(1, args.max_epochs + 1):
        epoch_started = time.perf_counter()
        model.fit_partial(dataset, min_epochs=1, max_epochs=1)
        score = ndcg_at(recommend(model, dataset, users, 10), truth, 10)
        seconds = time.perf_counter() - epoch_started
        curve.append({"epoch": epoch, "ndcg@10": score, "seconds": seconds})
        if score > best:
            best, best_epoch, stale = score, epoch, 0
        else:
            stale += 1
        log(f"inner epoch {epoch}: NDCG@10 {score:.4f} (best {best:.4f} at {best_epoch})")
        if stale >= args.patience:
            break
        spent = time.perf_counter() - started
        per_epoch = spent / epoch
        if args.time_budget and spent + per_epoch > args.time_budget:
            log(f"time budget of {args.time_budget:g} s reached")
            break
    return best_epoch, curve, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("history", help="interactions to train on (user_id,item_id,timestamp)")
    parser.add_argument("--inner-history", required=True, help="HISTORY less each latest event")
    parser.add_argument("--inner-heldout", required=True, help="each user's latest event")
    parser.add_argument("-o", "--output", required=True, help="rankings CSV to write")
    parser.add_argument("--summary", required=True, help="JSON to write: epochs, times, versions")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--max-epochs", type=int, default=200)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--time-budget", type=float, default=0.0, help="seconds of epoch search")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(f"rectools_sasrec: {message}", file=sys.stderr, flush=True)

    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "pytorch_lightning", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("PYTHONHASHSEED", str(args.seed))
    import torch
    from rectools.dataset import Dataset

    best_epoch, curve, search_seconds = choose_epochs(args, log)

    started = time.perf_counter()
    dataset = Dataset.construct(read_interactions(args.history))
    model = make_model(best_epoch, args.seed)
    model.fit(dataset)
    fit_seconds = time.perf_counter() - started
    users = dataset.user_id_map.external_ids
    recs = recommend(model, dataset, users, args.k)
    recs[["user_id", "rank", "item_id", "score"]].to_csv(args.output, index=False)
    log(
        f"{best_epoch} epochs (chosen on the inner split in {search_seconds:.0f} s), "
        f"final fit {fit_seconds:.0f} s; {recs['user_id'].nunique():,} users → {args.output}"
    )
    summary = {
        "model": "rectools.models.SASRecModel",
        "params": {
            "n_factors": FACTORS,
            "loss": LOSS,
            "session_max_len": MAX_LEN,
            "item_net": "IdEmbeddingsItemNet",
        },
        "best_epoch": best_epoch,
        "inner_curve": curve,
        "search_seconds": search_seconds,
        "fit_seconds": fit_seconds,
        "users_ranked": int(recs["user_id"].nunique()),
        "versions": {
            name: metadata.version(name)
            for name in ("rectools", "torch", "pytorch-lightning", "numpy", "pandas")
        },
        "torch_threads": torch.get_num_threads(),
    }
    with open(args.summary, "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
