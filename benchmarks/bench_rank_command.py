"""`llmrec rank` as a user runs it, against a faiss script doing the same job, whole processes.

Both read the same two Parquet vector tables (unit vectors, dimension 384), find each user's
10 best items by inner product, and write `user_id,rank,item_id,score` CSV; every second of
interpreter start, imports, reading and writing counts. Each contender runs `--repeat` times in
fresh processes, alternating, and the best time is reported. The share of (user, item) pairs both
lists hold is printed (float32 near-ties can swap the 10th item).

- llmrec: `llmrec rank --users U --items I -k 10 -o r.csv` (`python -m llmrec`, so
  `--llmrec-path` can point at another checkout's package to compare versions);
- faiss: read both tables with pyarrow, `IndexFlatIP`, `search`, write the CSV with pandas.

.venv/bin/python benchmarks/bench_rank_command.py [--users 20000] [--items 100000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, target  # noqa: E402

FAISS_SCRIPT = r"""
import sys
import faiss, numpy as np, pandas as pd, pyarrow.parquet as pq

def load(path, id_col):
    table = pq.read_table(path)
    ids = table[id_col].to_numpy(zero_copy_only=False)
    flat = table["embedding"].combine_chunks().values.to_numpy(zero_copy_only=False)
    return ids, np.ascontiguousarray(flat.reshape(len(ids), -1), dtype=np.float32)

users, user_vectors = load(sys.argv[1], "user_id")
items, item_vectors = load(sys.argv[2], "item_id")
index = faiss.IndexFlatIP(item_vectors.shape[1])
index.add(item_vectors)
scores, columns = index.search(user_vectors, 10)
pd.DataFrame({
    "user_id": np.repeat(users, 10), "rank": np.tile(np.arange(1, 11), len(users)),
    "item_id": items[columns.ravel()], "score": scores.ravel(),
}).to_csv(sys.argv[3], index=False, float_format="%.6f")
"""


def unit_table(kind: str, n: int, dim: int, seed: int, path: Path) -> None:
    from llmrec.io.vectors import VectorTable, write_vectors

    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.array([f"{kind[0]}{i:07d}" for i in range(n)], dtype=object)
    meta = {"model": "bench", "model_fingerprint": "bench", "dim": str(dim)}
    write_vectors(VectorTable(kind, ids, vectors, meta), str(path))


GEMM_SCRIPT = r"""
import time, numpy as np, torch
rng = np.random.default_rng(0)
users = rng.standard_normal((1024, 384), dtype=np.float32)
items = rng.standard_normal((65536, 384), dtype=np.float32)
out = np.empty((1024, 65536), dtype=np.float32)
kernels = {
    "numpy": lambda: np.matmul(users, items.T, out=out),
    "torch": lambda: torch.mm(torch.from_numpy(users), torch.from_numpy(items).T,
                              out=torch.from_numpy(out)),
}
for name, kernel in kernels.items():
    kernel()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        kernel()
        best = min(best, time.perf_counter() - start)
    print(name, 2 * 1024 * 65536 * 384 / best)
"""


def gemm_rate() -> tuple[float, str]:
    """The best float32 GEMM throughput here (FLOP/s) on one tile's shape (1,024 users × 65,536
    items), through numpy's BLAS and torch's MKL in its default (fastest) mode, in a fresh
    process with the default threads; and which was faster."""
    env = {key: value for key, value in os.environ.items() if key != "MKL_CBWR"}
    done = subprocess.run(
        [sys.executable, "-c", GEMM_SCRIPT], capture_output=True, text=True, check=True, env=env
    )
    rates = {
        name: float(rate) for name, rate in (line.split() for line in done.stdout.splitlines())
    }
    fastest = max(rates, key=rates.get)
    return rates[fastest], fastest


def timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def pairs(path: Path) -> set[tuple[str, str]]:
    import pandas as pd

    frame = pd.read_csv(path, dtype=str)
    return set(zip(frame["user_id"], frame["item_id"], strict=True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--llmrec-path", help="a folder holding another llmrec package")
    args = parser.parse_args()
    print(machine())
    env = dict(os.environ)
    if args.llmrec_path:
        env["PYTHONPATH"] = args.llmrec_path
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        unit_table("users", args.users, 384, 1, work / "users.parquet")
        unit_table("items", args.items, 384, 2, work / "items.parquet")
        ours = [sys.executable, "-m", "llmrec", "rank", "--users", str(work / "users.parquet"),
                "--items", str(work / "items.parquet"), "-k", "10", "-q",
                "-o", str(work / "llmrec.csv")]  # fmt: skip
        peer = [sys.executable, "-c", FAISS_SCRIPT, str(work / "users.parquet"),
                str(work / "items.parquet"), str(work / "faiss.csv")]  # fmt: skip
        times = {"llmrec": [], "faiss": []}
        for _ in range(args.repeat):
            times["llmrec"].append(timed(ours, env))
            times["faiss"].append(timed(peer, env))
        ours_pairs, peer_pairs = pairs(work / "llmrec.csv"), pairs(work / "faiss.csv")
        agreement = len(ours_pairs & peer_pairs) / max(len(peer_pairs), 1)
    best = {name: min(values) for name, values in times.items()}
    print(
        f"{args.users:,} users × {args.items:,} items, k=10, whole processes, best of {args.repeat}"
    )
    print(f"llmrec rank: {best['llmrec']:.2f} s   faiss script: {best['faiss']:.2f} s   "
          f"(runs: {', '.join(f'{t:.2f}' for t in times['llmrec'])} / "
          f"{', '.join(f'{t:.2f}' for t in times['faiss'])})")  # fmt: skip
    print(f"(user, item) pairs also in faiss's lists: {agreement:.4%} (float32 near-ties aside)")
    rate, blas = gemm_rate()
    bound = 2 * args.users * args.items * 384 / rate
    print(f"GEMM bound: {bound:.2f} s (float32 products alone at {rate / 1e9:.0f} GFLOP/s "
          f"through {blas}, the faster BLAS here, on a 1,024 × 65,536 tile)")  # fmt: skip
    print(f"llmrec rank ÷ GEMM bound: {best['llmrec'] / bound:.2f}×   "
          f"faiss script ÷ GEMM bound: {best['faiss'] / bound:.2f}×")  # fmt: skip
    ratio = best["faiss"] / best["llmrec"]
    target("rank command speed ÷ faiss script (whole processes)", ratio, 1.0, at_most=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
