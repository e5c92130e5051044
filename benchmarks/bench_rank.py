"""Benchmark llmrec's ranking (top-10 by dot product) against faiss flat search and plain torch.

Data, generated seeded in memory in each child process: 20,000 users × 100,000 items, d = 384,
unit-norm float32 (Gaussian directions). Each contender runs in a fresh process (imports and data
generation not timed), best of `--repeat`, with its peak RSS (VmHWM):

- gemm: the float32 matrix-product peak of this machine (best over a few large shapes, with
  torch's MKL and numpy's OpenBLAS); the GEMM bound of the ranking is 2 · users · items · d /
  that peak;
- faiss: `IndexFlatIP.add(items)` then `search(users, 10)` (its OpenMP threads: every core);
- torch: the plain peer, blocks of 1,024 users × every item, `users @ items.T` then `torch.topk`;
- llmrec: `llmrec.ranking.tiles.vector_top_k(users, items, 10)`, what `llmrec rank` runs for plain text
  scores (tiles of users × item blocks, a running top-k with ties to the smaller item id), and
  the same with `fast=True` (bfloat16 scores, 3k candidates re-scored in float32);
- memory: llmrec on 2,048 users × 1,000,000 items (a 1.5 GB item matrix, generated in place):
  peak RSS during ranking minus the RSS before it (the inputs). Memory is per block of users
  (about 1,000 users × 65,536 items per tile at the default budget), so more users add time, not
  memory. Exact and fast mode in turn.

It checks the lists: llmrec exact against faiss (share of (user, rank) entries naming the same
item; near-ties may swap where the two sum in a different order) and fast against exact (the
brief: ≥ 99.99 %). It exits 1 if exact agrees with faiss on fewer than 99.9 % of entries.

    .venv/bin/python benchmarks/bench_rank.py [--users 20000] [--items 100000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    machine,
    peak_rss_kib,
    report_child,
    rss_kib,
    run_child,
    target,
    version,
)

DIM = 384
K = 10
SEED = 20240611
PEER_BLOCK = 1024  # users per block of the plain torch peer
MEMORY_USERS = 2048
MEMORY_ITEMS = 1_000_000
GEMM_SHAPES = [(4096, 4096, 4096), (2048, DIM, 32768), (4096, DIM, 16384)]  # (m, k, n)
FAISS_AGREEMENT = 0.999  # exact vs faiss: below this, something is wrong (exit 1)
FAST_AGREEMENT = 0.9999  # the brief's target for fast vs exact


# --------------------------------------------------------------------------- data


def unit_rows(n: int, seed: int):
    """(n, DIM) float32 rows with Gaussian directions and norm 1, generated in place."""
    import torch

    rows = torch.empty((n, DIM)).normal_(generator=torch.Generator().manual_seed(seed))
    return rows.div_(rows.norm(dim=1, keepdim=True))


def data(n_users: int, n_items: int):
    """The benchmark's users and items, as numpy arrays (the same in every child)."""
    return unit_rows(n_users, SEED).numpy(), unit_rows(n_items, SEED + 1).numpy()


# --------------------------------------------------------------------------- contenders


def gemm_peak(repeat: int) -> dict:
    """Best float32 GFLOP/s over GEMM_SHAPES, with torch (MKL) and numpy (OpenBLAS)."""
    import numpy as np
    import torch

    rates = {}
    for m, k, n in GEMM_SHAPES:
        a, b = torch.randn(m, k), torch.randn(n, k)
        out = torch.empty(m, n)
        products = {
            "torch": lambda a=a, b=b, out=out: torch.mm(a, b.T, out=out),
            "numpy": lambda a=a, b=b, out=out: np.matmul(a.numpy(), b.numpy().T, out=out.numpy()),
        }
        for library, product in products.items():
            product()  # warm-up
            seconds = min(timed(product) for _ in range(repeat))
            rates[f"{library} {m}x{k}x{n}"] = 2 * m * k * n / seconds / 1e9
    return {"gflops": max(rates.values()), "shapes": rates, "threads": torch.get_num_threads()}


def run_faiss(users, items):
    import faiss

    index = faiss.IndexFlatIP(DIM)
    index.add(items)
    return index.search(users, K)[1]


def run_torch(users, items):
    import torch

    user_matrix, item_matrix = torch.from_numpy(users), torch.from_numpy(items)
    columns = []
    for start in range(0, len(users), PEER_BLOCK):
        scores = user_matrix[start : start + PEER_BLOCK] @ item_matrix.T
        columns.append(torch.topk(scores, K, dim=1).indices)
    return torch.cat(columns).numpy()


def run_llmrec(users, items, fast: bool = False):
    import numpy as np

    from llmrec.ranking.tiles import vector_top_k

    blocks = vector_top_k(users, items, K, fast=fast)
    return np.concatenate([columns for _, _, _, columns in blocks])


RUNS = {
    "faiss": run_faiss,
    "torch": run_torch,
    "llmrec": run_llmrec,
    "llmrec-fast": lambda users, items: run_llmrec(users, items, fast=True),
}


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def child(name: str, folder: str, n_users: int, n_items: int, repeat: int) -> None:
    """Run one contender in this fresh process; print one JSON line (seconds, RSS)."""
    import numpy as np

    if name == "gemm":
        report_child(gemm_peak(repeat) | {"peak_rss_kib": peak_rss_kib()})
        return
    if name.startswith("memory"):
        report_child(memory(fast=name == "memory-fast"))
        return
    import torch  # noqa: F401  (imports are not timed)

    if name == "faiss":
        import faiss  # noqa: F401
    else:
        import llmrec.ranking.tiles  # noqa: F401

    users, items = data(n_users, n_items)
    before = rss_kib()
    seconds, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = RUNS[name](users, items)
        seconds.append(time.perf_counter() - start)
    np.save(Path(folder) / f"{name}.npy", np.asarray(result, dtype=np.int64))
    report_child(
        {"seconds": min(seconds), "rss_before_kib": before, "peak_rss_kib": peak_rss_kib()}
    )


def memory(fast: bool) -> dict:
    """Peak RSS of ranking MEMORY_USERS × MEMORY_ITEMS beyond the inputs, in KiB."""
    import llmrec.ranking.tiles  # noqa: F401

    users, items = data(MEMORY_USERS, MEMORY_ITEMS)
    before = rss_kib()
    _reset_peak_rss()
    start = time.perf_counter()
    run_llmrec(users, items, fast=fast)
    seconds = time.perf_counter() - start
    inputs = (users.nbytes + items.nbytes) // 1024
    return {
        "seconds": seconds,
        "inputs_kib": inputs,
        "rss_before_kib": before,
        "peak_rss_kib": peak_rss_kib(),
    }


def _reset_peak_rss() -> None:
    """Start VmHWM again from the current RSS (Linux ≥ 4.0), so data generation is not counted."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


# --------------------------------------------------------------------------- report


def agreement(a, b) -> float:
    """Share of (user, rank) entries naming the same item."""
    return float((a == b).mean())


def overlap(a, b) -> float:
    """Share of each user's items found in the other's list, whatever the rank."""
    import numpy as np

    return float(np.mean([len(set(x) & set(y)) / len(x) for x, y in zip(a, b, strict=True)]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=2, help="runs per contender, best kept")
    parser.add_argument("--child", nargs=2, metavar=("NAME", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.users, args.items, args.repeat)
        return 0

    import numpy as np

    print(f"machine: {machine()}")
    print(
        f"versions: llmrec {version('llmrec')}, torch {version('torch')}, "
        f"faiss-cpu {version('faiss-cpu')}, numpy {version('numpy')}"
    )
    n_users, n_items = args.users, args.items
    print(f"data: {n_users:,} users × {n_items:,} items, d = {DIM}, top-{K}, unit float32, seeded")
    with tempfile.TemporaryDirectory(prefix="bench-rank-") as folder:
        size = ["--users", str(n_users), "--items", str(n_items), "--repeat"]
        gemm = run_child(__file__, "gemm", folder, *size, "3")
        bound = 2 * n_users * n_items * DIM / (gemm["gflops"] * 1e9)
        shapes = ", ".join(f"{s} {g:.0f}" for s, g in gemm["shapes"].items())
        print(
            f"gemm: float32 peak {gemm['gflops']:.0f} GFLOP/s ({shapes}; torch threads "
            f"{gemm['threads']}) → GEMM bound {bound:.2f} s"
        )
        runs = {}
        for name in RUNS:
            repeat = "1" if name == "torch" else str(args.repeat)
            runs[name] = run_child(__file__, name, folder, *size, repeat)
            run = runs[name]
            print(
                f"{name:12s} {run['seconds']:6.2f} s  {run['seconds'] / bound:5.2f}× GEMM bound  "
                f"peak RSS {run['peak_rss_kib'] / 2**20:.2f} GiB "
                f"(+{(run['peak_rss_kib'] - run['rss_before_kib']) / 2**20:.2f} GiB over the data)",
                flush=True,
            )
        lists = {name: np.load(Path(folder) / f"{name}.npy") for name in RUNS}
        exact_faiss = agreement(lists["llmrec"], lists["faiss"])
        fast_exact = agreement(lists["llmrec-fast"], lists["llmrec"])
        print(
            f"lists: llmrec exact = faiss on {100 * exact_faiss:.4f} % of (user, rank) entries "
            f"({100 * overlap(lists['llmrec'], lists['faiss']):.4f} % of items in common); "
            f"torch peer = llmrec on {100 * agreement(lists['torch'], lists['llmrec']):.4f} %; "
            f"fast = exact on {100 * fast_exact:.4f} % "
            f"({int((lists['llmrec-fast'] != lists['llmrec']).sum())} entries differ)"
        )
        memory_runs = {}
        for name in ("memory", "memory-fast"):
            run = memory_runs[name] = run_child(__file__, name, folder, *size, "1")
            extra = (run["peak_rss_kib"] - run["rss_before_kib"]) / 2**20
            print(
                f"{name:12s} {MEMORY_USERS:,} users × {MEMORY_ITEMS:,} items: {run['seconds']:.2f} s, "
                f"RSS {run['rss_before_kib'] / 2**20:.2f} GiB before (inputs "
                f"{run['inputs_kib'] / 2**20:.2f} GiB), peak {run['peak_rss_kib'] / 2**20:.2f} GiB "
                f"→ +{extra:.2f} GiB while ranking (per block of users: the same for 100k)",
                flush=True,
            )

    exact, fast = runs["llmrec"]["seconds"], runs["llmrec-fast"]["seconds"]
    target("rank fp32 ÷ faiss flat", exact / runs["faiss"]["seconds"], 1.0)
    target("rank fp32 ÷ GEMM bound", exact / bound, 1.5)
    target("rank bf16 ÷ fp32 GEMM bound", fast / bound, 1.0)
    target("rank bf16 agreement", 100 * fast_exact, 100 * FAST_AGREEMENT, " %", at_most=False)
    run = memory_runs["memory"]
    extra = (run["peak_rss_kib"] - run["rss_before_kib"]) / 2**20
    target("rank extra memory 100k×1M", extra, 1, " GiB")
    if exact_faiss < FAISS_AGREEMENT:
        print(f"bench_rank: llmrec and faiss agree on only {100 * exact_faiss:.3f} % of entries")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
