"""Recommendation quality on the real datasets in ../shared/data (what `make quality` runs).

For each dataset (online-retail, movielens-small), driving the real `llmrec` CLI:

1. outer leave-last-out split (`llmrec split`, default options) → history.csv + heldout.csv;
   item texts embedded once and cached under quality_out/<dataset>/items.parquet. Everything
   below sees the outer history only; the outer held-out is read by `llmrec evaluate` alone;
2. tuned: `llmrec tune history.csv` (50 trials, seed 0: its own inner leave-last split of the
   history), then `rank --config`;
3. fixed recipe: the README's `--strategy decay --half-life 1 --blend
   text=0.25,cooc=1,ease=0.5,pop=0.1 --ease-lambda 100`;
4. trained: `llmrec train history.csv` three times, `--item-ids off` (text only), `only` (ID
   vectors only, as SASRec) and `on` (text + IDs), each ranked alone (`rank --model`); their
   early stopping uses the inner split of the history (train's defaults: at most 8 epochs and
   the final one, patience 2; TRAIN_BUDGET only bounds a loaded machine); wall time kept;
5. trained + tuned blend: `llmrec tune --model M` with M the one of the three models whose
   config.json records the best inner NDCG@10 (the three are scored on the same inner split,
   so the choice, like the rest of the tuning, never sees the outer held-out), then
   `rank --config`;
6. peer: RecTools' SASRec (benchmarks/peers/rectools_sasrec.py, run with .venv-peers' Python
   built by `make peers`): its epochs chosen on the inner split (`llmrec split` of the
   history; at most RECTOOLS_EPOCHS, patience 3, RECTOOLS_BUDGET seconds), then refitted on
   the history; its top 10 per user written as a rankings CSV;
7. context: item-kNN alone, EASE alone (λ = 100, as in the fixed recipe), popularity, text
   (mean of the history, last item);
8. one `llmrec evaluate --ci` call on all the rankings, tuned first: every row gets a 95%
   bootstrap interval and a paired randomisation p-value against tuned; then the same for the
   held-out interactions whose item never occurs in the history (new items).

Tables go to stdout and, as Markdown, to quality_out/QUALITY.md, then the PASS/FAIL lines of
issue 13; progress goes to stderr. Tuned configs, trained models and the peer's rankings are
kept under quality_out/<dataset>/<full|quick>/ and reused only while what they were made from
(history, item vectors, llmrec's sources, the options; the peer's script and packages) is
unchanged. About 35 minutes on a 2-core machine (most of it the 6 trainings, the peer's 2
epoch searches and refits, and the 4 tunes), plus about 1 minute of item embedding when
quality_out/ has no vectors for the current item file and template.

    .venv/bin/python benchmarks/quality.py [--quick] [--dataset NAME]

--quick checks the pipeline end to end in a few minutes (5 trials, 2 epochs, 1 peer epoch);
its outputs go to quality_out/<dataset>/quick/ and quality_out/QUALITY-quick.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality_common import (  # noqa: E402
    DATA,
    NDCG,
    OUT,
    ROOT,
    STARTED,
    K,
    Output,
    cached,
    code_sha256,
    evaluate,
    llmrec,
    log,
    sha256,
    split,
)
from quality_peers import peers_ready, rectools_sasrec  # noqa: E402
from quality_report import (  # noqa: E402
    Row,
    Verdict,
    fitting_notes,
    new_items,
    protocol_note,
    results_table,
    verdicts,
)

FIXED = [
    "--strategy", "decay", "--half-life", "1",
    "--blend", "text=0.25,cooc=1,ease=0.5,pop=0.1", "--ease-lambda", "100",
]  # fmt: skip
ITEM_IDS = {"off": "text only", "only": "IDs only", "on": "text + IDs"}
MODELS = "models"  # rank --cache-dir beside the rankings: shared within a run, then deleted
WORKERS = 2  # rank is mostly single-threaded: two at once nearly halve the wall time
# Trainings: llmrec train's own stopping (at most 8 epochs + the final one, patience 2) and the
# peer's at most RECTOOLS_EPOCHS, patience 3; the time budgets only bound a loaded machine.
TRAIN_BUDGET = "5m"  # llmrec train --time-budget, each of the 3 trainings per dataset
RECTOOLS_EPOCHS = 20
RECTOOLS_BUDGET = 240.0  # seconds of the peer's epoch search (its refit: at most as long)


@dataclass(frozen=True)
class Settings:
    mode: str
    trials: int  # llmrec tune --trials
    epochs: int | None  # llmrec train --epochs (None: its default)
    train_budget: str | None  # llmrec train --time-budget
    rectools_epochs: int  # the peer's most epochs
    rectools_patience: int
    rectools_budget: float  # seconds of the peer's epoch search (0: none)


FULL = Settings("full", 50, None, TRAIN_BUDGET, RECTOOLS_EPOCHS, 3, RECTOOLS_BUDGET)
QUICK = Settings("quick", 5, 2, None, 1, 1, 0.0)


@dataclass(frozen=True)
class Dataset:
    name: str
    template: str  # embed --text (movielens: never `tags`, it leaks held-out interactions)


DATASETS = [
    Dataset("online-retail", "{title}"),
    Dataset("movielens-small", "{title}. {genres}"),
]


def rank(history: Path, items: Path, output: Path, args: list[str]) -> float:
    """Rank with `args`; fitted cooc/ease models are shared through the output's folder."""
    started = time.perf_counter()
    llmrec(
        "rank", "--cache-dir", str(output.parent / MODELS), "--user-history", str(history),
        "--items", str(items), "-k", str(K), "-o", str(output), *args,
    )  # fmt: skip
    return time.perf_counter() - started


def rank_all(rows: list[Row], history: Path, items: Path, paths: dict[str, Path]) -> None:
    """Rank the rows that have rank options, WORKERS at a time."""

    def one(row: Row) -> None:
        row.rank_seconds = rank(history, items, paths[row.key], row.args)
        log(f"  ranked {row.label} ({row.rank_seconds:.1f} s)")

    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(one, [row for row in rows if row.args]))


def embed(dataset: Dataset, source: Path, folder: Path) -> Path:
    """Item vectors, embedded once and reused while the item file and template are unchanged."""
    items = folder / "items.parquet"
    stamp_path = folder / "items.stamp.json"
    info = source.stat()
    stamp = {"template": dataset.template, "size": info.st_size, "mtime_ns": info.st_mtime_ns}
    if items.exists() and stamp_path.exists() and json.loads(stamp_path.read_text()) == stamp:
        log(f"{dataset.name}: item vectors cached in {items.relative_to(ROOT)}")
        return items
    log(f"{dataset.name}: embedding items with --text {dataset.template!r} ...")
    started = time.perf_counter()
    llmrec("embed", str(source), "--text", dataset.template, "-o", str(items))
    stamp_path.write_text(json.dumps(stamp))
    log(f"{dataset.name}: embedded in {time.perf_counter() - started:.1f} s")
    return items


def tune(history: Path, items: Path, output: Path, settings: Settings, code: str, model=None):
    """`llmrec tune` (with `model`: its seq weight too) → output; return its summary."""
    args = ["tune", str(history), "--items", str(items), "-o", str(output)]
    args += ["--trials", str(settings.trials), "--seed", "0"]
    args += ["--model", str(model)] if model else []
    files = [sha256(history), sha256(items)] + ([sha256(model)] if model else [])

    def make() -> dict:
        started = time.perf_counter()
        llmrec(*args)
        config = json.loads(output.read_text())
        return {
            "seconds": time.perf_counter() - started,
            "options": config["options"],
            "value": config["value"],
            "fixed_value": config["fixed_recipe"]["value"],
            "trials": config["search"]["trials"],
        }

    name = output.stem
    log(f"  {name}: llmrec tune{' --model ' + model.name if model else ''} ...")
    inputs = {"args": args, "files": files, "llmrec": code}
    result = cached(output.with_suffix(".stamp.json"), inputs, [output], make, name)
    log(f"  {name}: inner {NDCG} {result['value']:.4f} (fixed {result['fixed_value']:.4f})")
    return result


def train(history: Path, items: Path, model: Path, ids: str, settings: Settings, code: str):
    """`llmrec train --item-ids ids` → the model folder; return its summary (wall time...)."""
    args = ["train", str(history), "--items", str(items), "-o", str(model), "--item-ids", ids]
    args += ["--seed", "0"] + (["--epochs", str(settings.epochs)] if settings.epochs else [])
    args += ["--time-budget", settings.train_budget] if settings.train_budget else []

    def make() -> dict:
        shutil.rmtree(model, ignore_errors=True)  # and a killed run's checkpoint: start afresh
        shutil.rmtree(model.parent / f".{model.name}.checkpoint", ignore_errors=True)
        started = time.perf_counter()
        llmrec(*args)
        config = json.loads((model / "config.json").read_text())
        search = [e for e in config["validation"] if e["phase"] == "search"]
        return {
            "seconds": time.perf_counter() - started,
            "epochs": len(search),
            "best_epoch": config["training"]["best_epoch"],
            "best_ndcg": max(e["ndcg"] for e in search),
            "stopped": config["training"]["stopped"],
        }

    log(f"  {model.name}: llmrec train --item-ids {ids} ...")
    inputs = {"args": args, "files": [sha256(history), sha256(items)], "llmrec": code}
    result = cached(model.with_name(model.name + ".stamp.json"), inputs, [model], make, model.name)
    log(
        f"  {model.name}: {result['epochs']} epochs ({result['stopped']}), best inner {NDCG} "
        f"{result['best_ndcg']:.4f} at epoch {result['best_epoch']}, {result['seconds']:.0f} s"
    )
    return result


def run_dataset(dataset: Dataset, settings: Settings, out: Output) -> Verdict | None:
    source = DATA / dataset.name
    if not (source / "items.csv").is_file() or not (source / "interactions.csv").is_file():
        log(f"{dataset.name}: {source} has no items.csv/interactions.csv; skipped")
        out.heading(f"{dataset.name}: skipped ({source} has no items.csv/interactions.csv)")
        return None
    started = time.perf_counter()
    folder = OUT / dataset.name
    work = folder / settings.mode
    shutil.rmtree(work / "rankings", ignore_errors=True)  # rankings: always made anew
    (work / "rankings").mkdir(parents=True)
    history, heldout = folder / "history.csv", folder / "heldout.csv"
    log(f"{dataset.name}: outer leave-last-out split")
    split(source / "interactions.csv", history, heldout)
    items = embed(dataset, source / "items.csv", folder)
    code = code_sha256(ROOT / "llmrec")

    tuned = tune(history, items, work / "tuned.json", settings, code)
    models = {
        ids: train(history, items, work / f"model_{ids}", ids, settings, code) for ids in ITEM_IDS
    }
    best_ids = max(ITEM_IDS, key=lambda ids: models[ids]["best_ndcg"])  # first on a tie
    best_model = work / f"model_{best_ids}"
    seq = tune(history, items, work / "tuned_seq.json", settings, code, model=best_model)
    peer = None
    if peers_ready():
        inner = work / "inner"
        log(f"{dataset.name}: inner leave-last split of the history (for the peer)")
        split(history, inner / "history.csv", inner / "heldout.csv")
        peer = rectools_sasrec(
            history, inner / "history.csv", inner / "heldout.csv", work / "rectools",
            max_epochs=settings.rectools_epochs, patience=settings.rectools_patience,
            time_budget=settings.rectools_budget,
        )  # fmt: skip
    else:
        log(f"{dataset.name}: RecTools SASRec skipped: no .venv-peers (`make peers` builds it)")

    rows = [
        Row("tuned", f"tuned (llmrec tune, {tuned['trials']} trials)",
            ["--config", str(work / "tuned.json")], tuned["seconds"], tuned["cached"]),
        Row("fixed", "fixed recipe (README)", FIXED),
    ]  # fmt: skip
    for ids, what in ITEM_IDS.items():
        rows.append(
            Row(f"trained_{ids}", f"trained, {what} (--item-ids {ids})",
                ["--model", str(work / f"model_{ids}")], models[ids]["seconds"],
                models[ids]["cached"])
        )  # fmt: skip
    rows.append(
        Row("blend", f"trained + tuned blend (model: {ITEM_IDS[best_ids]})",
            ["--config", str(work / "tuned_seq.json")],
            models[best_ids]["seconds"] + seq["seconds"], seq["cached"])
    )  # fmt: skip
    if peer:
        rows.append(Row("rectools", "RecTools SASRec (peer)", [], peer["seconds"], peer["cached"]))
    rows += [
        Row("itemknn", "item-kNN alone (cooc=1, mean)", ["--blend", "cooc=1"]),
        Row("ease", "EASE alone (ease=1, λ=100)", ["--blend", "ease=1", "--ease-lambda", "100"]),
        Row("popular", "popularity", ["--baseline", "popular"]),
        Row("text_mean", "text-only, mean", ["--strategy", "mean"]),
        Row("text_last", "text-only, last 1", ["--strategy", "last", "--last-n", "1"]),
    ]
    paths = {row.key: work / "rankings" / f"{row.key}.csv" for row in rows if row.args}
    if peer:
        paths["rectools"] = work / "rectools" / "rankings.csv"
    log(f"{dataset.name}: ranking {len(rows) - bool(peer)} strategies on the outer history")
    rank_all(rows, history, items, paths)

    log(f"{dataset.name}: evaluating on the outer held-out (with intervals)")
    extra = ["--items", str(items), "--train", str(history), "--ci"]
    report = evaluate([paths[row.key] for row in rows], heldout, *extra)
    out.heading(
        f"{dataset.name}: leave-last-out, {report['users']['evaluated']:,} users, top {K}, "
        "full catalog"
    )
    out.text(protocol_note(history, heldout))
    for line in fitting_notes(tuned, models, best_ids, seq, peer):
        out.text(line)
    runs = results_table(rows, report, paths, out)
    new_items(work, history, heldout, rows, paths, out)
    shutil.rmtree(work / "rankings" / MODELS, ignore_errors=True)  # cooc/ease fits: up to 2 GB
    log(f"{dataset.name}: done in {time.perf_counter() - started:.0f} s")
    blend = runs["blend"]
    return Verdict(
        tuned=runs["tuned"]["metrics"][NDCG],
        fixed=runs["fixed"]["metrics"][NDCG],
        blend=blend["metrics"][NDCG],
        blend_ci=tuple(blend["ci"][NDCG]),
        p_fixed=runs["fixed"]["test"]["p_randomization"],
        p_blend=blend["test"]["p_randomization"],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings: check the pipeline")
    parser.add_argument("--dataset", action="append", help="only this dataset (repeatable)")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    if not DATA.is_dir():
        print(f"quality: {DATA} not found; nothing to measure (skipped)", file=sys.stderr)
        return 0
    OUT.mkdir(exist_ok=True)
    out = Output()
    results: dict[str, Verdict] = {}
    try:
        for dataset in DATASETS:
            if args.dataset and dataset.name not in args.dataset:
                continue
            verdict = run_dataset(dataset, settings, out)
            if verdict:
                results[dataset.name] = verdict
    except (subprocess.CalledProcessError, RuntimeError) as exc:
        what = exc
        if isinstance(exc, subprocess.CalledProcessError):
            what = f"exit {exc.returncode}: {' '.join(str(part) for part in exc.cmd)}"
        print(f"quality: failed ({what})", file=sys.stderr)
        return 1
    passed = verdicts(results, out)
    total = time.perf_counter() - STARTED
    print(f"\ntotal: {total:.0f} s", flush=True)
    report = OUT / ("QUALITY.md" if settings.mode == "full" else "QUALITY-quick.md")
    report.write_text(
        "## Quality on real data\n\n"
        f"Generated by `make quality` (benchmarks/quality.py{' --quick' * args.quick}) "
        f"in {total:.0f} s.\n" + "\n".join(out.markdown) + "\n"
    )
    log(f"Markdown tables written to {report.relative_to(ROOT)}")
    if not passed:
        log("some PASS/FAIL line failed (the exit status stays 0: the tables are the evidence)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
