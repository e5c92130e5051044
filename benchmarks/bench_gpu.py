"""On a CUDA GPU, one prepared script of about 5 minutes: embed, rank and train.

- embed: throughput (float32, float16, bfloat16) against sentence-transformers on the same GPU,
  batch sizes 32/64 and 256, on the generated product titles of bench_embed.py (20,000
  distinct), with the bundled all-MiniLM-L6-v2 or `--model FOLDER`; best of 2 after a warm-up;
- rank: `vector_top_k` (what `llmrec rank --device cuda` runs) on 100k users × 1M items and 1M ×
  1M, dimension 384, float32 and --fast (bfloat16, re-scored in float32); the chosen lists
  compared with the CPU's on 1,000 users (the CPU's own exact search);
- train: `llmrec train --device cuda` against `--device cpu` on a generated history (20,000
  users, 20,000 items, 500k events), one epoch each.

Skips without a GPU; `--device cpu --small` runs every case at a small size on the CPU, to
check the script itself.

    python benchmarks/bench_gpu.py [--model FOLDER] [--texts 20000] [--device cpu --small]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from bench_embed import product_texts
from common import machine, version


def timed(function, repeat: int = 2) -> tuple[float, object]:
    """Best wall time of `function()` over `repeat` runs after one warm-up, GPU synchronised."""
    import torch

    sync = torch.cuda.synchronize if torch.cuda.is_available() else lambda: None
    result = function()
    best = float("inf")
    for _ in range(repeat):
        sync()
        start = time.perf_counter()
        result = function()
        sync()
        best = min(best, time.perf_counter() - start)
    return best, result


def embed(model: str | None, n_texts: int, device: str = "cuda") -> None:
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    from llmrec.embedding.encoder import Encoder, resolve_model

    texts = product_texts(n_texts, seed=7)
    folder = str(resolve_model(model)[1])
    peer = SentenceTransformer(folder, device=device).float()  # float32 whatever the file holds
    rows = {}
    for batch in (32, 256):
        rows[f"sentence-transformers float32 batch {batch}"] = timed(
            lambda b=batch: peer.encode(texts, batch_size=b, normalize_embeddings=True)
        )
    peer = None
    if device == "cuda":
        torch.cuda.empty_cache()
    for dtype in ("float32", "float16", "bfloat16"):
        encoder = Encoder.load(model, device=device, dtype=dtype)
        for batch in (64, 256):
            rows[f"llmrec {dtype} batch {batch}"] = timed(
                lambda e=encoder, b=batch: e.encode(texts, batch_size=b)
            )
        encoder = None
        if device == "cuda":
            torch.cuda.empty_cache()
    base_seconds = rows["sentence-transformers float32 batch 32"][0]
    reference = rows["llmrec float32 batch 64"][1]
    where = torch.cuda.get_device_name() if device == "cuda" else device
    print(f"embed {n_texts:,} product texts on {where}:")
    for name, (seconds, vectors) in rows.items():
        cosine = float((np.asarray(vectors) * reference).sum(axis=1).min())
        print(
            f"  {name:42s} {n_texts / seconds:8.0f} items/s  {base_seconds / seconds:5.2f}× "
            f"sentence-transformers batch 32  min cosine to llmrec float32 {cosine:.6f}"
        )


def unit_rows(n: int, dim: int, seed: int):
    """n random unit vectors (float32, on the host), made on the GPU when there is one."""
    import torch

    where = "cuda" if torch.cuda.is_available() else "cpu"
    generator = torch.Generator(where).manual_seed(seed)
    rows = torch.randn(n, dim, device=where, generator=generator)
    return torch.nn.functional.normalize(rows, dim=1).cpu().numpy()


def rank(device: str, shapes: list[tuple[int, int]], dim: int = 384, k: int = 10) -> None:
    """Exact and fast top-k on the device; lists against the CPU's on the first 1,000 users."""
    import numpy as np
    import torch

    from llmrec.ranking.tiles import vector_top_k

    sync = torch.cuda.synchronize if device == "cuda" else lambda: None
    for n_users, n_items in shapes:
        users, items = unit_rows(n_users, dim, 1), unit_rows(n_items, dim, 2)
        check = min(1000, n_users)
        cpu = np.concatenate([c for *_, c in vector_top_k(users[:check], items, k)])
        flops = 2 * n_users * n_items * dim
        for fast in (False, True):
            sync()
            start = time.perf_counter()
            kept = []  # the first `check` users' lists
            for start_row, _, _, columns in vector_top_k(users, items, k, fast=fast, device=device):
                if start_row < check:
                    kept.append(columns)
            sync()
            seconds = time.perf_counter() - start
            rows = np.concatenate(kept)[:check]
            same = float(
                np.mean([len(set(a) & set(b)) / k for a, b in zip(rows, cpu, strict=True)])
            )
            print(
                f"rank {n_users:,} users × {n_items:,} items on {device}, "
                f"{'fast (bfloat16 + float32 re-score)' if fast else 'float32'}: {seconds:.1f} s "
                f"({flops / seconds / 1e12:.1f} TFLOP/s effective); lists equal to the CPU's on "
                f"{same:.4%} of entries ({check:,} users)"
            )


def train(device: str, users: int, items: int, events: int) -> None:
    """One epoch of `llmrec train` on `device` and on the CPU, on a generated history."""
    import numpy as np
    import pandas as pd

    from llmrec.api import train as train_model
    from llmrec.io.vectors import VectorTable, write_vectors

    rng = np.random.default_rng(3)
    with tempfile.TemporaryDirectory(prefix="llmrec-bench-gpu-") as folder:
        work = Path(folder)
        item_ids = np.array([f"i{i:06d}" for i in range(items)], dtype=object)
        meta = {"model": "bench", "model_fingerprint": "bench", "dim": "384", "normalized": "true"}
        write_vectors(VectorTable("items", item_ids, unit_rows(items, 384, 4), meta),
                      str(work / "items.parquet"))  # fmt: skip
        popular = rng.zipf(1.3, events) % items  # a long tail, as real catalogs have
        pd.DataFrame(
            {
                "user_id": np.sort(rng.integers(0, users, events)).astype(str),
                "item_id": item_ids[popular],
                "timestamp": np.arange(events),
            }
        ).to_csv(work / "history.csv", index=False)
        for where in dict.fromkeys([device, "cpu"]):
            start = time.perf_counter()
            result = train_model(str(work / "history.csv"), str(work / "items.parquet"),
                                 str(work / f"model-{where}"), epochs=1, patience=0,
                                 device=where)  # fmt: skip
            print(f"train 1 epoch + final, {events:,} events, {users:,} users, {items:,} items "
                  f"on {where}: {time.perf_counter() - start:.1f} s (inner NDCG@10 "
                  f"{result.best_ndcg:.4f}, {result.parameters:,} parameters)")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model folder (default: bundled)")
    parser.add_argument("--texts", type=int, default=20_000)
    parser.add_argument("--device", default="cuda", help="cuda, or cpu to check the script")
    parser.add_argument("--small", action="store_true", help="every case at a small size")
    args = parser.parse_args()
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench_gpu: no CUDA GPU here; skipped")
        return 0
    where = torch.cuda.get_device_name() if args.device == "cuda" else "the CPU"
    print(
        f"machine: {machine()}, {where}; torch {version('torch')}, "
        f"transformers {version('transformers')}, "
        f"sentence-transformers {version('sentence-transformers')}"
    )
    small = args.small
    embed(args.model, 500 if small else args.texts, args.device)
    shapes = [(2_000, 20_000)] if small else [(100_000, 1_000_000), (1_000_000, 1_000_000)]
    rank(args.device, shapes)
    train(args.device, *((300, 500, 5_000) if small else (20_000, 20_000, 500_000)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
