"""--engine ray against the local engine on 100,000 items: wall time and identical answers.

The catalog is MovieLens's 9,742 titles, each repeated as numbered editions up to 100,000
items ("Heat (1995). Action, Crime, Thriller. Edition 3"), so texts are real but distinct.
Every run is the real command in a fresh process, timed from start to exit: the Ray runs
start their own local Ray on this machine, so Ray's start-up is inside their time, and is
also timed alone.

.venv/bin/python benchmarks/bench_ray.py [--items 100000]

`--driver-memory` measures instead the peak RSS of the `llmrec embed` process alone on a folder
of 10 Parquet shards (default 1,000,000 items), with each engine: the local engine, and
`--engine ray` joining a local Ray started beside it (so Ray's own processes, which the
workers' reads and encoding run in, are not the command's children). Each command runs under
`/usr/bin/time -v`; `--model` picks the model (any local folder; default the bundled one).

.venv/bin/python benchmarks/bench_ray.py --driver-memory [--items 1000000] [--model DIR]
"""

from __future__ import annotations

import argparse
import csv
import os
import re
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


def write_shards(folder: Path, n_items: int, n_shards: int = 10) -> None:
    """make_catalog's items as `n_shards` Parquet shards (id and text columns), built whole
    with pandas rather than row by row."""
    import pandas as pd

    movies = pd.read_csv(MOVIELENS / "items.csv", dtype=str, keep_default_na=False)
    n = np.arange(n_items)
    movie, edition = n % len(movies), (n // len(movies)).astype(str)
    first = edition == "0"
    ids = movies["item_id"].to_numpy(dtype=object)[movie]
    texts = (movies["title"] + ". " + movies["genres"]).to_numpy(dtype=object)[movie]
    frame = pd.DataFrame(
        {
            "item_id": np.where(first, ids, ids + "-" + edition.astype(object)),
            "text": np.where(first, texts, texts + ". Edition " + edition.astype(object)),
        }
    )
    folder.mkdir()
    for i, part in enumerate(np.array_split(np.arange(n_items), n_shards)):
        frame.iloc[part].to_parquet(folder / f"part-{i:02d}.parquet", index=False)


def peak_rss(*args: str) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of `llmrec ARGS` run under /usr/bin/time -v."""
    start = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-v", str(LLMREC), *args, "-q"], capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"llmrec {args[0]} failed: {done.stderr.strip()[-2000:]}")
    kib = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    return int(kib.group(1)) / 1024, seconds


def driver_memory(n_items: int, model: str | None) -> int:
    """Peak RSS of the embed command on a folder of shards: local engine vs --engine ray."""
    from llmrec.io.vectors import read_vectors

    script = (
        "import logging, sys, ray; c = ray.init(_node_ip_address='127.0.0.1', "
        "include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR); "
        "import os; print(c.address_info['gcs_address'], os.environ.get('RAY_AUTH_MODE', ''), "
        "flush=True); sys.stdin.read(); ray.shutdown()"
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_shards(work / "items", n_items)
        embed = ["embed", str(work / "items"), "--text", "{text}"]
        embed += ["--model", model] if model else []
        local_rss, local_s = peak_rss(*embed, "-o", str(work / "local.parquet"))
        cluster = subprocess.Popen(
            [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        try:
            address, *auth = cluster.stdout.readline().split()
            if auth:  # the token a Ray started with auth on saved in ~/.ray, to join it with
                os.environ["RAY_AUTH_MODE"] = auth[0]
            ray_rss, ray_s = peak_rss(
                *embed, "-o", str(work / "ray_items"), "--engine", "ray", "--ray-address", address
            )
        finally:
            cluster.communicate("", timeout=120)
        here, there = (
            read_vectors(str(work / "local.parquet")),
            read_vectors(str(work / "ray_items")),
        )
        same = here.ids.tolist() == there.ids.tolist() and np.array_equal(
            here.vectors, there.vectors
        )
    print(f"machine: {machine()}; ray {version('ray')}, torch {version('torch')}")
    print(f"embed a folder of 10 Parquet shards, {n_items:,} items, model {model or 'bundled'}:")
    print(f"  local engine:  peak RSS {local_rss:,.0f} MiB, {local_s:.0f} s")
    print(
        f"  --engine ray:  driver peak RSS {ray_rss:,.0f} MiB, {ray_s:.0f} s (Ray already running)"
    )
    print(f"  vectors bit for bit equal: {same}")
    return 0 if same else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=None)
    parser.add_argument("--driver-memory", action="store_true")
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    if not MOVIELENS.is_dir():
        print(f"bench_ray: {MOVIELENS} is missing; skipped")
        return 0
    if version("ray") == "not installed":
        print("bench_ray: ray is not installed (pip install 'llmrec[ray]'); skipped")
        return 0
    if args.driver_memory:
        return driver_memory(args.items or 1_000_000, args.model)
    args.items = args.items or 100_000
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
