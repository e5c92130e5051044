"""On a CUDA GPU: embed throughput (float32, float16, bfloat16) against sentence-transformers on
the same GPU, batch sizes 32/64 and 256. Skips without a GPU. (Ranking runs on the CPU only.)

Texts are the generated product titles of bench_embed.py (20,000 distinct); the model is the
bundled all-MiniLM-L6-v2, or `--model FOLDER`. Each figure is the best of 2 after a warm-up.

    python benchmarks/bench_gpu.py [--model FOLDER] [--texts 20000]
"""

from __future__ import annotations

import argparse
import sys
import time

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model folder (default: bundled)")
    parser.add_argument("--texts", type=int, default=20_000)
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("bench_gpu: no CUDA GPU here; skipped")
        return 0
    print(
        f"machine: {machine()}, {torch.cuda.get_device_name()}; torch {version('torch')}, "
        f"transformers {version('transformers')}, "
        f"sentence-transformers {version('sentence-transformers')}"
    )
    embed(args.model, args.texts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
