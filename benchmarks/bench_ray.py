"""--engine ray against the local engine on 100,000 items: wall time and identical answers.

The catalog is MovieLens's 9,742 titles, each repeated as numbered editions up to 100,000
items ("Heat (1995). Action, Crime, Thriller. Edition 3"), so texts are real but distinct.
Every run is the real command in a fresh process, timed from start to exit: the Ray runs
start their own local Ray on this machine, so Ray's start-up is inside their time, and is
also timed alone.

.venv/bin/python benchmarks/bench_ray.py [--items 100000]
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import machine, target, version

ROOT = Path(__file__).resolve().parents[1]
MOVIELENS = ROOT.parent / "shared" / "data" / "movielens-small"
LLMREC = Path(sys.executable).with_name("llmrec")


def make_catalog(path: Path, n_items: int) -> None:
    """MovieLens titles as numbered editions: the first copy keeps each movie's own id."""
    with open(MOVIELENS / "items.csv", newline="", encoding="utf-8") as handle:
        movies = [(r["item_id"], f"{r['title']}. {r['genres']}") for r in csv.DictReader(handle)]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["item_id", "text"])
        for n in range(n_items):
            movie_id, text = movies[n % len(movies)]
            edition = n // len(movies)
            out.writerow(
                [movie_id, text]
                if edition == 0
                else [f"{movie_id}-{edition}", f"{text}. Edition {edition}"]
            )


def timed(*args: str) -> float:
    start = time.perf_counter()
    done = subprocess.run([str(LLMREC), *args, "-q"], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"llmrec {args[0]} failed: {done.stderr.strip()}")
    return time.perf_counter() - start


def ray_start_up() -> float:
    """Seconds to start and stop a local Ray, as `--engine ray` does, in a fresh process."""
    script = (
        "import logging, ray; ray.init(_node_ip_address='127.0.0.1', include_dashboard=False, "
        "log_to_driver=False, logging_level=logging.ERROR); ray.shutdown()"
    )
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    args = parser.parse_args()
    if not MOVIELENS.is_dir():
        print(f"bench_ray: {MOVIELENS} is missing; skipped")
        return 0
    if version("ray") == "not installed":
        print("bench_ray: ray is not installed (pip install 'llmrec[ray]'); skipped")
        return 0
    from llmrec.io.vectors import read_vectors

    print(f"machine: {machine()}; ray {version('ray')}, torch {version('torch')}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        items, history = work / "items.csv", work / "history.csv"
        make_catalog(items, args.items)
        timed(
            "split", str(MOVIELENS / "interactions.csv"), "--history-out", str(history),
            "--heldout-out", "/dev/null",
        )  # fmt: skip
        embed = ["embed", str(items), "--text", "{text}"]
        local_embed = timed(*embed, "-o", str(work / "local.parquet"))
        ray_embed = timed(*embed, "-o", str(work / "ray_items"), "--engine", "ray")
        rank = ["rank", "--user-history", str(history)]
        local_rank = timed(*rank, "--items", str(work / "local.parquet"), "-o", str(work / "a.csv"))
        ray_rank = timed(
            *rank, "--items", str(work / "ray_items"), "--engine", "ray", "-o", str(work / "b.csv")
        )
        start_up = ray_start_up()
        here, there = (
            read_vectors(str(work / "local.parquet")),
            read_vectors(str(work / "ray_items")),
        )
        same_ids = here.ids.tolist() == there.ids.tolist()
        diff = float(np.abs(here.vectors - there.vectors).max()) if same_ids else float("inf")
        same_rankings = (work / "a.csv").read_bytes() == (work / "b.csv").read_bytes()
        shards = len(list((work / "ray_items").glob("*.parquet")))

    n = f"{args.items:,}"
    print(f"embed {n} items: local {local_embed:.1f} s, ray {ray_embed:.1f} s ({shards} shards)")
    print(f"rank 610 users × {n} items: local {local_rank:.1f} s, ray {ray_rank:.1f} s")
    print(f"local Ray start + stop alone: {start_up:.1f} s (inside each ray time above)")
    print(
        f"ray ÷ local wall time: embed {ray_embed / local_embed:.2f}×, rank {ray_rank / local_rank:.2f}×"
    )
    target("ray vectors, max |Δ| to local", diff, 1e-6, "")
    target("ray rankings byte-identical to local", 100.0 * same_rankings, 100, " %", at_most=False)
    return 0 if same_rankings and diff <= 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())
