"""`llmrec rank --index ivf` on a large catalog: speed against exact search and recall@10.

The catalog is synthetic, 1M unit vectors of dimension 384 around 2,000 topics (each vector is
its topic plus Gaussian noise of the same norm, so two random items have cosine ≈ 0 and items of
one topic ≈ 0.5); each of the 100k users is the mean of 5 random items, as a mean profile is.
Real embeddings cluster differently: on your data, measure with `--recall-check`.

- exact: `vector_top_k` (what `llmrec rank` runs without --index) on 2,000 random users, in
  process; its users/s gives the exact time for every user;
- ivf: the whole `llmrec rank --users U --items I --index ivf --index-path P` command, twice:
  building the index (and saving it) with `--recall-check 2000`, then reusing it, which is the
  time compared with exact search. recall@10 is the first command's own (its 2,000 users
  ranked exactly too), and is recomputed here from the CSV against the in-process exact lists
  of the same users.

.venv/bin/python benchmarks/bench_ann.py [--items 1000000] [--users 100000]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, target  # noqa: E402

DIM, TOPICS, PROFILE_ITEMS, CHECKED = 384, 2000, 5, 2000


def catalog(n_items: int, n_users: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(users, items): see the module docstring."""
    rng = np.random.default_rng(seed)
    topics = rng.standard_normal((TOPICS, DIM), dtype=np.float32)
    topics /= np.linalg.norm(topics, axis=1, keepdims=True)
    items = rng.standard_normal((n_items, DIM), dtype=np.float32) / np.float32(np.sqrt(DIM))
    items += topics[rng.integers(0, TOPICS, n_items)]
    items /= np.linalg.norm(items, axis=1, keepdims=True)
    users = np.zeros((n_users, DIM), dtype=np.float32)
    for _ in range(PROFILE_ITEMS):
        users += items[rng.integers(0, n_items, n_users)] / PROFILE_ITEMS
    return users, items


def write(kind: str, vectors: np.ndarray, path: Path) -> np.ndarray:
    from llmrec.io.vectors import VectorTable, write_vectors

    ids = np.array([f"{kind[0]}{i:07d}" for i in range(len(vectors))], dtype=object)
    meta = {"model": "bench", "model_fingerprint": "bench", "dim": str(DIM)}
    write_vectors(VectorTable(kind, ids, vectors, meta), str(path))
    return ids


def command(users: Path, items: Path, index: Path, output: Path, *more: str) -> tuple[float, str]:
    """Run the rank command; its wall time and summary line."""
    args = [sys.executable, "-m", "llmrec", "rank", "--users", str(users), "--items", str(items),
            "--index", "ivf", "--index-path", str(index), "-k", "10", "-o", str(output), *more]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"bench_ann: {' '.join(args)} failed:\n{done.stderr}")
    return seconds, done.stderr.strip().splitlines()[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    args = parser.parse_args()
    import pandas as pd

    from llmrec.ranking.tiles import vector_top_k

    print(machine())
    users, items = catalog(args.items, args.users)
    checked = np.sort(np.random.default_rng(0).choice(args.users, CHECKED, replace=False))
    start = time.perf_counter()
    exact = np.concatenate([c for *_, c in vector_top_k(users[checked], items, 10)])
    exact_per_user = (time.perf_counter() - start) / CHECKED
    with tempfile.TemporaryDirectory(prefix="llmrec-bench-ann-") as folder:
        work = Path(folder)
        user_ids = write("users", users, work / "users.parquet")
        item_ids = write("items", items, work / "items.parquet")
        del users, items
        paths = work / "users.parquet", work / "items.parquet", work / "items.ivf"
        built, first = command(*paths, work / "ann.csv", "--recall-check", str(CHECKED))
        reused, second = command(*paths, work / "ann.csv")
        ranked = pd.read_csv(work / "ann.csv", dtype=str)
    found = ranked[ranked.user_id.isin(set(user_ids[checked]))]
    truth = {(u, i) for u, row in zip(user_ids[checked], exact, strict=True) for i in item_ids[row]}
    recall = len(truth & set(zip(found.user_id, found.item_id, strict=True))) / len(truth)
    said = float(re.search(r"recall@10 ([0-9.]+)", first).group(1))
    exact_all = exact_per_user * args.users
    print(f"{args.users:,} users × {args.items:,} items (dimension {DIM}), k=10")
    print(f"exact search: {exact_per_user * 1e3:.2f} ms per user in process "
          f"({CHECKED:,} users) → {exact_all:.0f} s for all {args.users:,}")  # fmt: skip
    print(f"ivf, index built:  {built:6.1f} s whole command | {first}")
    print(f"ivf, index reused: {reused:6.1f} s whole command | {second}")
    print(f"recall@10 of {CHECKED:,} users from the CSV against exact search: {recall:.4f} "
          f"(the command said {said:.4f})")  # fmt: skip
    target("ivf rank command (index reused) speed-up over exact search", exact_all / reused,
           1.0, at_most=False)  # fmt: skip
    target("ivf recall@10 at the default settings", recall, 0.95, "", at_most=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
