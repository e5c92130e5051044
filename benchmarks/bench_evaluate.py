"""Benchmark `llmrec evaluate` against ranx and pytrec_eval on 100,000 users × top-20.

The script writes a synthetic rankings CSV (`user_id,rank,item_id,score`, 2,000,000 rows) and a
truth CSV (`user_id,item_id`, 1–3 held-out items per user) to a temp folder, then times each
contender end to end from those files (reading included; interpreter start and imports
excluded), each run in a fresh subprocess so that peak RSS is its own, best of 3. It checks
that the three agree on the metric means, over the same users (all truth users, those missing
from the rankings scoring 0), to 1e-6, and exits 1 if they do not.

    .venv/bin/python benchmarks/bench_evaluate.py [--users 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine, peak_rss_kib, version

KS = [5, 10, 20]
DEPTH = 20  # items per ranked list
N_ITEMS = 50_000
N_UNRANKED = 300  # truth users absent from the rankings (every metric 0)
N_UNJUDGED = 300  # ranked users absent from the truth (ignored)
HIT_SHARE = 0.085  # chance that a held-out item is taken from the user's own top 20
TOLERANCE = 1e-6
CONTENDERS = ["llmrec", "ranx", "pytrec_eval"]
# compared between llmrec and each peer at least (every value a peer gives is compared)
REQUIRED = ["ndcg@10", "precision@10", "recall@10", "map@10", "hit_rate@10", f"mrr@{DEPTH}"]
WARMUP_ROWS = 400  # ranx's numba warm-up: the first rows of each file, before the timer

RANX_METRICS = [
    f"{m}@{k}" for m in ("precision", "recall", "ndcg", "map", "mrr", "hit_rate") for k in KS
]
TREC_MEASURES = {
    "P.5,10,20",
    "recall.5,10,20",
    "ndcg_cut.5,10,20",
    "map_cut.5,10,20",
    "success.5,10,20",
    "recip_rank",
}
TREC_NAMES = {
    "P": "precision",
    "recall": "recall",
    "ndcg_cut": "ndcg",
    "map_cut": "map",
    "success": "hit_rate",
}


# --------------------------------------------------------------------------- data


def generate(folder: Path, n_users: int, seed: int) -> dict[str, int]:
    """Write rankings.csv and truth.csv into `folder`; vectorised, deterministic for `seed`."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    n_all = n_users + N_UNRANKED
    # fixed-width ids, so that id order is number order (and ranx's warm-up sees the same widths)
    user_names = np.char.add("u", np.char.zfill(np.arange(n_all).astype(str), 7))
    item_names = np.char.add("i", np.char.zfill(np.arange(N_ITEMS).astype(str), 5))

    def popular(shape: tuple[int, ...]) -> np.ndarray:  # skewed item popularity
        return (N_ITEMS * rng.random(shape) ** 2).astype(np.int64)

    # rankings: users 0 .. n_users-1, DEPTH distinct items each, scores strictly decreasing
    lists = popular((n_users, DEPTH))
    while len(bad := _rows_with_repeats(lists)):
        lists[bad] = popular((len(bad), DEPTH))
    offset = rng.random((n_users, 1)) * 0.5
    score = offset + 1.0 - 0.04 * np.arange(DEPTH) - 0.03 * rng.random((n_users, DEPTH))
    rankings = pa.table(
        {
            "user_id": pa.array(user_names).take(np.repeat(np.arange(n_users), DEPTH)),
            "rank": np.tile(np.arange(1, DEPTH + 1), n_users),
            "item_id": pa.array(item_names).take(lists.ravel()),
            "score": np.round(score, 6).ravel(),  # gaps ≥ 0.01: no ties after rounding
        }
    )

    # truth: every ranked user but N_UNJUDGED, plus N_UNRANKED users that were never ranked
    unjudged = rng.choice(n_users, N_UNJUDGED, replace=False)
    users = np.setdiff1d(np.arange(n_all), unjudged)
    n_truth_users = len(users)
    n_rel = rng.choice([1, 2, 3], size=n_truth_users, p=[0.5, 0.3, 0.2])
    active = np.arange(3) < n_rel[:, None]
    ranked = users < n_users
    hit = (rng.random((n_truth_users, 3)) < HIT_SHARE) & ranked[:, None] & active
    # positions in the user's list, distinct, biased to the top (Gumbel top-k, weights 1/rank)
    gumbel = -np.log(-np.log(rng.random((n_truth_users, DEPTH))))
    positions = np.argsort(-(gumbel - np.log(np.arange(1, DEPTH + 1))), axis=1)[:, :3]
    from_list = lists[np.minimum(users, n_users - 1)[:, None], positions]
    truth_items = np.where(hit, from_list, popular((n_truth_users, 3)))
    truth_items = np.where(active, truth_items, -1 - np.arange(3))  # unused slots never clash
    while len(bad := _rows_with_repeats(truth_items)):
        redraw = ~hit[bad] & active[bad]
        truth_items[bad] = np.where(redraw, popular((len(bad), 3)), truth_items[bad])
    rows_user = np.repeat(users, 3)[active.ravel()]
    rows_item = truth_items.ravel()[active.ravel()]
    truth = pa.table(
        {
            "user_id": pa.array(user_names).take(rows_user),
            "item_id": pa.array(item_names).take(rows_item),
        }
    )

    for name, table in (("rankings.csv", rankings), ("truth.csv", truth)):
        with open(folder / name, "wb") as out:
            out.write((",".join(table.column_names) + "\n").encode())
            options = pacsv.WriteOptions(include_header=False, quoting_style="none")
            pacsv.write_csv(table, out, options)
    return {
        "users": n_users,
        "ranking_rows": rankings.num_rows,
        "truth_users": n_truth_users,
        "truth_rows": truth.num_rows,
    }


def _rows_with_repeats(matrix):
    import numpy as np

    ordered = np.sort(matrix, axis=1)
    return np.flatnonzero((ordered[:, 1:] == ordered[:, :-1]).any(axis=1))


# --------------------------------------------------------------------------- contenders
# Each takes the two paths and returns {"ndcg@10": mean, ...} over all truth users.


def run_llmrec(rankings: str, truth: str) -> dict[str, float]:
    from llmrec.evaluation.scoring import evaluate_files

    return evaluate_files(rankings, truth, KS).summary()


def _read_pandas(path: str, columns: dict[str, object]):
    import pandas as pd

    frame = pd.read_csv(path, dtype=columns, engine="pyarrow")
    for name in ("user_id", "item_id"):
        frame[name] = frame[name].astype(object)  # ranx asserts object dtype
    return frame


def _read_pandas_head(path: str, columns: dict[str, object], rows: int):
    import pandas as pd

    frame = pd.read_csv(path, dtype=columns, nrows=rows)
    for name in ("user_id", "item_id"):
        frame[name] = frame[name].astype(object)
    return frame


def _ranx_inputs(run_frame, truth_frame):
    import numpy as np
    from ranx import Qrels, Run

    truth_frame["relevance"] = np.int64(1)
    qrels = Qrels.from_df(
        truth_frame, q_id_col="user_id", doc_id_col="item_id", score_col="relevance"
    )
    run = Run.from_df(run_frame, q_id_col="user_id", doc_id_col="item_id", score_col="score")
    return qrels, run


RUN_COLUMNS = {"user_id": str, "item_id": str, "rank": "int64", "score": "float64"}
TRUTH_COLUMNS = {"user_id": str, "item_id": str}


def warm_ranx(rankings: str, truth: str) -> None:
    """Compile ranx's numba kernels (or load them from numba's cache) on the files' first rows,
    so that the timed run sees the same id widths and no JIT. ≥ 10 queries, so that ranx does
    not switch numba to one thread."""
    import ranx

    run = _read_pandas_head(rankings, RUN_COLUMNS, WARMUP_ROWS)
    qrels = _read_pandas_head(truth, TRUTH_COLUMNS, WARMUP_ROWS)
    qrels, run = _ranx_inputs(run, qrels)
    assert len(qrels) >= 10
    ranx.evaluate(qrels, run, RANX_METRICS, make_comparable=True)


def run_ranx(rankings: str, truth: str) -> dict[str, float]:
    import ranx

    qrels, run = _ranx_inputs(
        _read_pandas(rankings, RUN_COLUMNS), _read_pandas(truth, TRUTH_COLUMNS)
    )
    # make_comparable: truth users missing from the run get an empty list (score 0)
    means = ranx.evaluate(qrels, run, RANX_METRICS, make_comparable=True)
    return {name: float(value) for name, value in means.items()}


def run_pytrec_eval(rankings: str, truth: str) -> dict[str, float]:
    import pytrec_eval

    run_frame = _read_pandas(rankings, RUN_COLUMNS)
    truth_frame = _read_pandas(truth, TRUTH_COLUMNS)
    qrels: dict[str, dict[str, int]] = {}
    truth_users, truth_items = truth_frame["user_id"].tolist(), truth_frame["item_id"].tolist()
    for user, item in zip(truth_users, truth_items, strict=True):
        qrels.setdefault(user, {})[item] = 1
    run: dict[str, dict[str, float]] = {}
    users, items = run_frame["user_id"].tolist(), run_frame["item_id"].tolist()
    for user, item, score in zip(users, items, run_frame["score"].tolist(), strict=True):
        run.setdefault(user, {})[item] = score
    per_user = pytrec_eval.RelevanceEvaluator(qrels, TREC_MEASURES).evaluate(run)
    # trec_eval scores only users in both; the others of the truth count 0 in the mean
    sums: dict[str, float] = {}
    for values in per_user.values():
        for measure, value in values.items():
            sums[measure] = sums.get(measure, 0.0) + value
    means = {}
    for measure, total in sums.items():
        if measure == "recip_rank":  # no cut-off in trec_eval: equals MRR@20 on lists of 20
            means[f"mrr@{DEPTH}"] = total / len(qrels)
        else:
            base, k = measure.rsplit("_", 1)
            means[f"{TREC_NAMES[base]}@{k}"] = total / len(qrels)
    return means


def child(name: str, rankings: str, truth: str) -> None:
    """Time one contender in this (fresh) process and print one JSON line."""
    function = {"llmrec": run_llmrec, "ranx": run_ranx, "pytrec_eval": run_pytrec_eval}[name]
    # imports are not timed
    if name == "llmrec":
        import llmrec.evaluation.scoring  # noqa: F401
    elif name == "ranx":
        import pandas  # noqa: F401
        import ranx  # noqa: F401

        warm_ranx(rankings, truth)
    else:
        import pandas  # noqa: F401
        import pytrec_eval  # noqa: F401
    rss_before = peak_rss_kib()
    start = time.perf_counter()
    means = function(rankings, truth)
    seconds = time.perf_counter() - start
    rss = peak_rss_kib()
    print(
        json.dumps(
            {"seconds": seconds, "rss_kib": rss, "rss_before_kib": rss_before, "means": means}
        )
    )


# --------------------------------------------------------------------------- parent


def time_one(name: str, rankings: Path, truth: Path) -> dict:
    command = [sys.executable, __file__, "--child", name, str(rankings), str(truth)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"bench_evaluate: the {name} run failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(results: dict[str, dict]) -> list[str]:
    """Differences above TOLERANCE between each peer and llmrec, over the metrics both give."""
    reference = results["llmrec"]["means"]
    problems = []
    for name in CONTENDERS[1:]:
        means = results[name]["means"]
        problems += [f"{name} does not give {m}" for m in REQUIRED if m not in means]
        for metric, value in means.items():
            if metric not in reference:
                problems.append(f"{name} gives {metric}, which llmrec does not")
            elif abs(value - reference[metric]) > TOLERANCE:
                problems.append(
                    f"{metric}: {name} {value:.9f} vs llmrec {reference[metric]:.9f} "
                    f"(Δ {value - reference[metric]:+.2e})"
                )
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000, help="ranked users (default 100000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per contender, best kept")
    parser.add_argument("--seed", type=int, default=20240611)
    parser.add_argument(
        "--child", nargs=3, metavar=("NAME", "RANKINGS", "TRUTH"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0

    print(f"machine: {machine()}")
    print(
        f"versions: llmrec {version('llmrec')}, ranx {version('ranx')} (numba {version('numba')}), "
        f"pytrec_eval {version('pytrec_eval-terrier')}, pandas {version('pandas')}, "
        f"pyarrow {version('pyarrow')}, numpy {version('numpy')}"
    )
    with tempfile.TemporaryDirectory(prefix="bench_evaluate_") as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        shape = generate(folder, args.users, args.seed)
        rankings, truth = folder / "rankings.csv", folder / "truth.csv"
        mib = (rankings.stat().st_size + truth.stat().st_size) / 2**20
        print(
            f"data: {shape['users']:,} users × top-{DEPTH} = {shape['ranking_rows']:,} ranking rows, "
            f"{N_ITEMS:,} items; truth {shape['truth_rows']:,} rows of {shape['truth_users']:,} users "
            f"({N_UNRANKED} never ranked, scored 0; {N_UNJUDGED} ranked users without truth, ignored); "
            f"{mib:.0f} MiB of CSV, made in {time.perf_counter() - start:.1f} s"
        )
        runs: dict[str, list[dict]] = {name: [] for name in CONTENDERS}
        for _ in range(args.repeat):  # interleaved, so drift hits every contender alike
            for name in CONTENDERS:
                runs[name].append(time_one(name, rankings, truth))

    best = {name: min(r, key=lambda r: r["seconds"]) for name, r in runs.items()}
    base = best["llmrec"]["seconds"]
    notes = {
        "llmrec": f"evaluate_files(..., {KS})",
        "ranx": "pandas read_csv(engine='pyarrow') → Qrels/Run.from_df → evaluate(make_comparable); "
        f"numba warm-up on the first {WARMUP_ROWS} rows before the timer",
        "pytrec_eval": "pandas read_csv(engine='pyarrow') → dicts → RelevanceEvaluator.evaluate → means",
    }
    print(
        f"time: end to end from the CSVs (reading included, interpreter start and imports not), "
        f"best of {args.repeat} fresh processes; k = {','.join(map(str, KS))}; "
        f"peak RSS of the process (in brackets: before the timer, after imports and any warm-up)"
    )
    for name in CONTENDERS:
        seconds = best[name]["seconds"]
        rss = max(r["rss_kib"] for r in runs[name]) / 1024
        before = max(r["rss_before_kib"] for r in runs[name]) / 1024
        ratio = "" if name == "llmrec" else f"  {seconds / base:5.1f}× llmrec"
        print(
            f"  {name:<12}{seconds:7.2f} s  peak RSS {rss:5.0f} MiB [{before:4.0f}]{ratio:<15}  {notes[name]}"
        )

    reference = best["llmrec"]["means"]
    problems = compare(best)
    counted = sum(len(best[name]["means"]) for name in CONTENDERS[1:])
    gaps = [
        abs(value - reference[metric])
        for name in CONTENDERS[1:]
        for metric, value in best[name]["means"].items()
        if metric in reference
    ]
    at10 = ", ".join(
        f"{metric} {reference[metric]:.6f}"
        for metric in ("ndcg@10", "precision@10", "recall@10", "map@10", "mrr@10", "hit_rate@10")
    )
    print(f"llmrec: {at10}")
    if problems:
        print(f"metrics DIFFER ({len(problems)} of {counted} values beyond {TOLERANCE:g}):")
        for problem in problems:
            print(f"  {problem}")
        return 1
    print(
        f"metrics: equal to {TOLERANCE:g} — ranx {len(best['ranx']['means'])} values (@5,10,20), "
        f"pytrec_eval {len(best['pytrec_eval']['means'])} (P, recall, ndcg_cut, map_cut, success "
        f"@5,10,20; recip_rank vs mrr@{DEPTH}); max |Δ| {max(gaps):.1e}; means over all "
        f"{shape['truth_users']:,} truth users"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
