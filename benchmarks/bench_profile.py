"""Benchmark `llmrec profile` on 10,000,000 interactions × d = 384 against a pandas + torch peer.

The script writes, seeded, a real item vector table (100,000 items × 384, unit float32, written
with llmrec's own writer) and a history of 10,000,000 interactions (200,000 users with skewed
activity, skewed item popularity, 0.1 % of events naming items missing from the table, a unix
`timestamp` column, rows in time order) as Parquet and as CSV. Each contender then runs end to
end from those files to a user vector table on disk (reading and writing included; interpreter
start and imports excluded), each in a fresh process so that its peak RSS is its own:

- llmrec: what `llmrec profile history --items items.parquet -o users.parquet` runs
  (read_vectors → profile_history → write_vectors), mean strategy, from Parquet and from CSV;
  and the decay strategy with a 30-day half-life (time since each user's latest event);
- peer: the segment sum a competent engineer writes with pandas and torch — read_parquet, map
  item ids to rows with an Index, factorize the users, `index_add_` the gathered item vectors
  in chunks of 65,536 events, divide by the counts, normalise, write Parquet. (The textbook
  `groupby(user).mean()` over the gathered vectors would need the 10M × 384 matrix: 15 GB.)

It checks that the peer and the CSV run give llmrec's vectors for the same users (max |Δ| ≤
1e-5) and exits 1 otherwise.

    .venv/bin/python benchmarks/bench_profile.py [--events 10000000] [--repeat 1] [--no-csv]
"""

from __future__ import annotations

import argparse
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
UNKNOWN_SHARE = 0.001  # events whose item is not in the item table (dropped by every contender)
HALF_LIFE = "30d"
PEER_CHUNK = 65_536  # events gathered per index_add_ (65,536 × 384 float32 = 96 MiB)
TOLERANCE = 1e-5
TIME_LIMIT_S = 30.0
MEMORY_LIMIT = 3.0  # × the output size
ITEM_META = {
    "model": "bench-synthetic",
    "model_fingerprint": "0" * 64,
    "pooling": "mean",
    "max_length": "256",
    "dtype": "float32",
    "normalized": "true",
    "template": "{title}",
}
CONTENDERS = {
    "llmrec": "read_vectors → profile_history(mean) → write_vectors, from Parquet",
    "llmrec-decay": f"the same with --strategy decay --half-life {HALF_LIFE}",
    "llmrec-csv": "the same as llmrec (mean), from the CSV history",
    "peer": "pandas read_parquet → Index.get_indexer → factorize → torch index_add_ "
    f"({PEER_CHUNK:,} events a chunk) → ÷ counts → normalise → Parquet",
}


# --------------------------------------------------------------------------- data


def generate(folder: Path, n_users: int, n_items: int, n_events: int, seed: int) -> dict:
    """Write items.parquet, history.parquet (and the rows for history.csv); deterministic."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from llmrec.io.vectors import VectorTable, write_vectors

    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n_items, DIM), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    item_names = np.char.add("i", np.char.zfill(np.arange(n_items).astype(str), 7))
    hashes = np.array([f"{h:016x}" for h in rng.integers(0, 2**63, n_items)], dtype=object)
    table = VectorTable(
        "items", item_names.astype(object), vectors, dict(ITEM_META), {"text_hash": hashes}
    )
    write_vectors(table, str(folder / "items.parquet"))

    # every user has one event; the rest go to users and items with skewed popularity
    users = np.concatenate(
        [np.arange(n_users), (n_users * rng.random(n_events - n_users) ** 2).astype(np.int64)]
    )
    items = (n_items * rng.random(n_events) ** 3).astype(np.int64)
    unknown = rng.random(n_events) < UNKNOWN_SHARE
    items[unknown] = n_items + rng.integers(0, 1000, int(unknown.sum()))  # "i0100000" …
    shuffle = rng.permutation(n_events)
    user_names = np.char.add("u", np.char.zfill(np.arange(n_users).astype(str), 7))
    all_item_names = np.char.add("i", np.char.zfill(np.arange(n_items + 1000).astype(str), 7))
    history = pa.table(
        {
            "user_id": pa.array(user_names).take(users[shuffle]),
            "item_id": pa.array(all_item_names).take(items[shuffle]),
            "timestamp": np.sort(rng.integers(1_700_000_000, 1_731_536_000, n_events)),
        }
    )
    pq.write_table(history, folder / "history.parquet")
    return {"history": history, "unknown": int(unknown.sum())}


def write_csv(history, path: Path) -> None:
    import pyarrow.csv as pacsv

    with open(path, "wb") as out:
        out.write((",".join(history.column_names) + "\n").encode())
        options = pacsv.WriteOptions(include_header=False, quoting_style="none")
        pacsv.write_csv(history, out, options)


# --------------------------------------------------------------------------- contenders
# Each reads its inputs from `folder` and writes the user vector table to `output`.


def run_llmrec(folder: Path, output: str, history: str = "history.parquet", **weighting) -> None:
    from llmrec.io.vectors import read_vectors, write_vectors
    from llmrec.options import Weighting
    from llmrec.profiles import profile_history

    items = read_vectors(str(folder / "items.parquet"), "items")
    users, _ = profile_history(str(folder / history), items, weighting=Weighting(**weighting))
    write_vectors(users, output)


def run_peer(folder: Path, output: str) -> None:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch

    items = pq.read_table(folder / "items.parquet", columns=["item_id", "embedding"])
    item_ids = items.column("item_id").to_numpy()
    embedding = items.column("embedding").combine_chunks()
    vectors = torch.from_numpy(embedding.flatten().to_numpy().reshape(len(item_ids), DIM))
    del items, embedding

    frame = pd.read_parquet(folder / "history.parquet", columns=["user_id", "item_id"])
    rows = pd.Index(item_ids).get_indexer(frame["item_id"])
    known = rows >= 0
    codes, users = pd.factorize(frame["user_id"][known], sort=True)
    del frame
    codes, rows = torch.from_numpy(codes), torch.from_numpy(rows[known])

    sums = torch.zeros((len(users), DIM), dtype=torch.float32)
    for start in range(0, len(codes), PEER_CHUNK):
        chunk = slice(start, start + PEER_CHUNK)
        sums.index_add_(0, codes[chunk], vectors[rows[chunk]])
    sums /= torch.bincount(codes, minlength=len(users))[:, None]
    sums /= torch.linalg.vector_norm(sums, dim=1, keepdim=True).clamp_min(1e-12)

    flat = pa.array(sums.numpy().reshape(-1))
    table = pa.table(
        {
            "user_id": pa.array(np.asarray(users, dtype=object), pa.string()),
            "embedding": pa.FixedSizeListArray.from_arrays(flat, DIM),
        }
    )
    pq.write_table(table, output, compression="zstd")


def child(name: str, folder: str) -> None:
    """Time one contender in this (fresh) process and print one JSON line. Each imports only
    what it uses (llmrec's profile does not import torch), before the timer."""
    import numpy  # noqa: F401
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    if name.startswith("llmrec"):
        import llmrec.io.vectors  # noqa: F401
        import llmrec.profiles  # noqa: F401
    else:
        import torch  # noqa: F401
    runs = {
        "llmrec": lambda d, o: run_llmrec(d, o),
        "llmrec-decay": lambda d, o: run_llmrec(d, o, strategy="decay", half_life=HALF_LIFE),
        "llmrec-csv": lambda d, o: run_llmrec(d, o, history="history.csv"),
        "peer": run_peer,
    }
    output = str(Path(folder) / f"users-{name}.parquet")
    rss_before = rss_kib()
    start = time.perf_counter()
    runs[name](Path(folder), output)
    seconds = time.perf_counter() - start
    report_child(
        {"seconds": seconds, "peak_kib": peak_rss_kib(), "before_kib": rss_before, "output": output}
    )


# --------------------------------------------------------------------------- parent


def read_users(path: str):
    """(user ids, vectors) of a user vector table, sorted by id."""
    import numpy as np
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["user_id", "embedding"])
    ids = table.column("user_id").to_numpy(zero_copy_only=False).astype(str)
    flat = table.column("embedding").combine_chunks().flatten().to_numpy()
    order = np.argsort(ids)
    return ids[order], flat.reshape(len(ids), -1)[order]


def max_difference(reference: str, other: str) -> float:
    """Max |Δ| between two user tables; inf when they hold different users."""
    import numpy as np

    ids, vectors = read_users(reference)
    other_ids, other_vectors = read_users(other)
    if not np.array_equal(ids, other_ids):
        return float("inf")
    return float(np.abs(vectors - other_vectors).max())


def make_data(folder: Path, args: argparse.Namespace) -> None:
    """Write the inputs into `folder` and print what they are."""
    start = time.perf_counter()
    data = generate(folder, args.users, args.items, args.events, args.seed)
    if not args.no_csv:
        write_csv(data["history"], folder / "history.csv")
    sizes = ", ".join(
        f"{p.name} {p.stat().st_size / 2**20:.0f} MiB" for p in sorted(folder.iterdir())
    )
    print(
        f"data: {args.events:,} interactions of {args.users:,} users × {args.items:,} items "
        f"(d = {DIM}, float32), skewed; {data['unknown']:,} events name items missing from "
        f"the table; {sizes}; made in {time.perf_counter() - start:.1f} s"
    )


def print_runs(names: list[str], runs: dict[str, list[dict]], repeat: int) -> None:
    """One line per contender: best seconds, peak RSS, RSS after imports, the difference."""
    print(
        f"time: end to end from the files to users.parquet (reading and writing included; "
        f"interpreter start and imports not), best of {repeat} fresh process(es). Memory: "
        f"peak RSS of the whole process (VmHWM) [RSS after imports] +added = peak − that"
    )
    base = min(r["seconds"] for r in runs["llmrec"])
    for name in names:
        seconds = min(r["seconds"] for r in runs[name])
        peak = max(r["peak_kib"] for r in runs[name]) / 1024
        before = max(r["before_kib"] for r in runs[name]) / 1024
        ratio = "" if name == "llmrec" else f"{seconds / base:5.2f}× llmrec"
        print(
            f"  {name:<13}{seconds:6.1f} s  peak {peak:5.0f} MiB [{before:4.0f}] "
            f"+{peak - before:5.0f} MiB  {ratio:<13}  {CONTENDERS[name]}"
        )


def memory_ratios(runs: list[dict], users: int, items: int) -> tuple[float, float]:
    """(peak − RSS after imports, whole-process peak) ÷ output size, for the worst run."""
    out_mib = users * DIM * 4 / 2**20
    item_mib = items * DIM * 4 / 2**20
    added = max(r["peak_kib"] - r["before_kib"] for r in runs) / 1024
    peak = max(r["peak_kib"] for r in runs) / 1024
    print(
        f"output: {users:,} users × {DIM} × 4 bytes = {out_mib:.0f} MiB. llmrec (mean, "
        f"Parquet) memory ÷ output: {added / out_mib:.2f} for peak − RSS after imports (this "
        f"counts the input item table, {items:,} × {DIM} × 4 bytes = {item_mib:.0f} MiB; "
        f"{(added - item_mib) / out_mib:.2f} without it), {peak / out_mib:.2f} for the "
        f"whole-process peak (imports included)"
    )
    return added / out_mib, peak / out_mib


def check_vectors(names: list[str], runs: dict[str, list[dict]]) -> tuple[int, dict]:
    """(users in llmrec's output, max |Δ| to it of each run of the same strategy)."""
    reference = runs["llmrec"][0]["output"]
    ids, _ = read_users(reference)
    same_strategy = [n for n in names if n not in ("llmrec", "llmrec-decay")]
    return len(ids), {n: max_difference(reference, runs[n][0]["output"]) for n in same_strategy}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000, help="interactions (10M)")
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=1, help="runs per contender, best kept")
    parser.add_argument("--no-csv", action="store_true", help="skip the run from CSV")
    parser.add_argument("--seed", type=int, default=20240611)
    parser.add_argument("--child", nargs=2, metavar=("NAME", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0

    print(f"machine: {machine()}")
    print(
        f"versions: llmrec {version('llmrec')}, scipy {version('scipy')}, torch "
        f"{version('torch')}, pandas {version('pandas')}, pyarrow {version('pyarrow')}, "
        f"numpy {version('numpy')}"
    )
    names = [n for n in CONTENDERS if not (args.no_csv and n == "llmrec-csv")]
    with tempfile.TemporaryDirectory(prefix="bench_profile_") as tmp:
        folder = Path(tmp)
        make_data(folder, args)
        runs: dict[str, list[dict]] = {name: [] for name in names}
        for _ in range(args.repeat):  # interleaved, so drift hits every contender alike
            for name in names:
                runs[name].append(run_child(__file__, name, str(folder)))
        n_users, checks = check_vectors(names, runs)

    print_runs(names, runs, args.repeat)
    added, whole = memory_ratios(runs["llmrec"], n_users, args.items)
    worst = max(checks.values())
    print(
        f"vectors: {'equal' if worst <= TOLERANCE else 'DIFFER'} to {TOLERANCE:g} — "
        + ", ".join(f"{name} max |Δ| {value:.1e}" for name, value in checks.items())
        + f" (the same {n_users:,} users)"
    )
    seconds = min(r["seconds"] for r in runs["llmrec"])
    target(f"profile {args.events / 1e6:g}M interactions", seconds, TIME_LIMIT_S, " s")
    target("profile peak memory ÷ output size (peak RSS − RSS after imports)", added, MEMORY_LIMIT)
    target("profile peak memory ÷ output size (whole-process peak RSS)", whole, MEMORY_LIMIT)
    return 0 if worst <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
