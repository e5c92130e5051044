"""Recommendation quality on the real datasets in ../shared/data (what `make quality` runs).

For each dataset (online-retail, movielens-small), driving the real `llmrec` CLI:

1. outer leave-last-out split (`llmrec split`, default options) → history.csv + heldout.csv;
   item texts embedded once and cached under quality_out/<dataset>/items.parquet;
2. the recommended configuration is tuned on the history only: the outer history is split
   again (leave-last) into inner history + inner held-out, every candidate is ranked on the
   inner history and scored by NDCG@10 on the inner held-out; the outer held-out is never
   looked at while tuning. The search is staged (the full grid would take too long):
   a. recency half-life of item-kNN (cooc=1) over 1, 2, 3, 5 events or none, and EASE's λ
      (ease=1, plain strategy) over 100, 500, 2000;
   b. at that half-life and λ, the blend grid cooc=1 with text ∈ {0, 0.25, 0.5, 1},
      ease ∈ {0, 0.5, 1}, pop ∈ {0, 0.1};
   c. the best blend again with every other half-life and, if it uses EASE, every other λ;
   the best of all candidates evaluated wins (ties go to the one evaluated first);
3. every strategy is ranked on the outer history (top 10, full catalog, seen items excluded)
   and evaluated in one `llmrec evaluate` call against the outer held-out, item-kNN alone
   first as the reference; a table per dataset is printed, then PASS/FAIL lines and a
   cold-start row (held-out interactions whose item never occurs in the outer history).

Tables go to stdout and, as Markdown, to quality_out/QUALITY.md; progress goes to stderr.
Ranks run two at a time and share fitted cooc/ease models within a run (`rank --cache-dir`,
deleted afterwards). About 5 minutes on a 2-core machine, item embedding (~35 s, only when
quality_out/ has no vectors for the current item file and template) included.

    .venv/bin/python benchmarks/quality.py
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "quality_out"
LLMREC = str(Path(sys.executable).with_name("llmrec"))

K = 10
NDCG = f"ndcg@{K}"
RECALL = f"recall@{K}"
COVERAGE = f"coverage@{K}"
NOVELTY = f"novelty@{K}"
HALF_LIVES: list[int | None] = [None, 1, 2, 3, 5]  # events; None = no recency weighting
TEXT_WEIGHTS = [0.0, 0.25, 0.5, 1.0]
EASE_WEIGHTS = [0.0, 0.5, 1.0]
POP_WEIGHTS = [0.0, 0.1]
LAMBDAS = [100.0, 500.0, 2000.0]
DEFAULT_LAMBDA = 500.0
MODELS = "models"  # rank --cache-dir beside the rankings: shared within a run, then deleted
WORKERS = 2  # rank is mostly single-threaded: two at once nearly halve the wall time
TARGET_GAIN = 8.0  # % NDCG@10 the recommended configuration must gain over item-kNN alone

STARTED = time.perf_counter()


@dataclass(frozen=True)
class Dataset:
    name: str
    template: str  # embed --text (movielens: never `tags`, it leaks held-out interactions)


DATASETS = [
    Dataset("online-retail", "{title}"),
    Dataset("movielens-small", "{title}. {genres}"),
]


@dataclass(frozen=True)
class Config:
    """One scoring configuration of `llmrec rank` (blend weights, recency, EASE λ)."""

    cooc: float = 1.0
    text: float = 0.0
    ease: float = 0.0
    pop: float = 0.0
    half_life: int | None = None
    lam: float = DEFAULT_LAMBDA

    def __post_init__(self) -> None:
        if not self.ease:  # λ means nothing without EASE: equal configurations compare equal
            object.__setattr__(self, "lam", DEFAULT_LAMBDA)

    def args(self) -> list[str]:
        parts = {"text": self.text, "cooc": self.cooc, "ease": self.ease, "pop": self.pop}
        blend = ",".join(f"{name}={_num(w)}" for name, w in parts.items() if w)
        args = ["--blend", blend]
        if self.ease:
            args += ["--ease-lambda", _num(self.lam)]
        if self.half_life is None:
            args += ["--strategy", "mean"]
        else:
            args += ["--strategy", "decay", "--half-life", str(self.half_life)]
        return args

    def describe(self) -> str:
        parts = {"text": self.text, "cooc": self.cooc, "ease": self.ease, "pop": self.pop}
        blend = ",".join(f"{name}={_num(w)}" for name, w in parts.items() if w)
        recency = "none" if self.half_life is None else f"{self.half_life} events"
        text = f"--blend {blend}, half-life {recency}"
        return text + (f", EASE λ={_num(self.lam)}" if self.ease else "")

    def slug(self) -> str:
        hl = "none" if self.half_life is None else str(self.half_life)
        lam = f"_l{_num(self.lam)}" if self.ease else ""
        return (
            f"c{_num(self.cooc)}_t{_num(self.text)}_e{_num(self.ease)}_p{_num(self.pop)}"
            f"_hl{hl}{lam}"
        )


@dataclass
class Strategy:
    key: str  # file stem of its rankings
    label: str
    args: list[str]


def _num(value: float) -> str:
    return f"{value:g}"


def log(message: str) -> None:
    print(f"[{time.perf_counter() - STARTED:6.1f} s] {message}", file=sys.stderr, flush=True)


def llmrec(*args: str, capture: bool = False) -> str:
    """Run the CLI (quietly); return its stdout when captured. Fails loudly on a non-zero exit."""
    result = subprocess.run(
        [LLMREC, *args, "--quiet"], check=True, text=True, capture_output=capture
    )
    return result.stdout if capture else ""


def rank(history: Path, items: Path, output: Path, args: list[str]) -> float:
    """Rank with `args`; fitted cooc/ease models are shared through the output's folder."""
    started = time.perf_counter()
    llmrec(
        "rank",
        "--cache-dir",
        str(output.parent / MODELS),
        "--user-history",
        str(history),
        "--items",
        str(items),
        "-k",
        str(K),
        "-o",
        str(output),
        *args,
    )
    return time.perf_counter() - started


def rank_all(jobs: list[tuple[str, Path, Path, Path, list[str]]]) -> None:
    """Rank (label, history, items, output, args) jobs, WORKERS at a time."""

    def one(job):
        label, history, items, output, args = job
        seconds = rank(history, items, output, args)
        log(f"  ranked {label} ({seconds:.1f} s)")

    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(one, jobs))


def evaluate(rankings: list[Path], truth: Path, *extra: str) -> dict:
    text = llmrec(
        "evaluate", *map(str, rankings), "--truth", str(truth), "-k", str(K), "-f", "json", *extra,
        capture=True,
    )  # fmt: skip
    return json.loads(text)


def split(interactions: Path, history: Path, heldout: Path) -> None:
    llmrec("split", str(interactions), "--history-out", str(history), "--heldout-out", str(heldout))


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


class Tuner:
    """Scores configurations by NDCG@10 on the inner split, each at most once."""

    def __init__(self, name: str, folder: Path, items: Path, outer_history: Path):
        self.name = name
        self.folder = folder
        self.items = items
        self.history = folder / "history.csv"
        self.heldout = folder / "heldout.csv"
        folder.mkdir(parents=True, exist_ok=True)
        split(outer_history, self.history, self.heldout)
        self.scores: dict[Config, float] = {}

    def score(self, configs: list[Config], stage: str) -> None:
        todo = [c for c in dict.fromkeys(configs) if c not in self.scores]
        if not todo:
            return
        log(f"{self.name}: tuning, {stage}: {len(todo)} candidates on the inner split")
        jobs = [
            (c.slug(), self.history, self.items, self.folder / f"{c.slug()}.csv", c.args())
            for c in todo
        ]
        rank_all(jobs)
        report = evaluate([job[3] for job in jobs], self.heldout)
        by_name = {run["name"]: run["metrics"][NDCG] for run in report["runs"]}
        for config, job in zip(todo, jobs, strict=True):
            self.scores[config] = by_name[str(job[3])]

    def best(self, configs: list[Config]) -> Config:
        """The highest inner NDCG@10; on a tie, the first in `configs`."""
        best = configs[0]
        for config in configs[1:]:
            if self.scores[config] > self.scores[best]:
                best = config
        return best


def tune(tuner: Tuner) -> tuple[Config, float, list[str]]:
    """Pick the recommended configuration and EASE-alone's λ; return notes to print."""
    knn = [Config(half_life=hl) for hl in HALF_LIVES]
    ease_alone = [Config(cooc=0.0, ease=1.0, lam=lam) for lam in LAMBDAS]
    tuner.score(knn + ease_alone, "stage a (recency of item-kNN, λ of EASE alone)")
    half_life = tuner.best(knn).half_life
    lam = tuner.best(ease_alone).lam

    grid = [
        Config(text=t, ease=e, pop=p, half_life=half_life, lam=lam)
        for t in TEXT_WEIGHTS
        for e in EASE_WEIGHTS
        for p in POP_WEIGHTS
    ]
    tuner.score(grid, "stage b (blend weights)")
    blend = tuner.best(grid)

    refine = [replace(blend, half_life=hl) for hl in HALF_LIVES]
    if blend.ease:
        refine += [replace(blend, lam=value) for value in LAMBDAS]
    tuner.score(refine, "stage c (recency and λ of the best blend)")

    family = [c for c in tuner.scores if c.cooc == 1.0]  # every item-kNN-based candidate
    chosen = tuner.best(family)
    ranked = sorted(family, key=lambda c: -tuner.scores[c])
    plain = tuner.scores[Config()]
    notes = [
        f"tuned on the inner split ({len(tuner.scores)} candidates ranked, NDCG@{K} on the "
        "inner held-out; the outer held-out was not used)",
        f"EASE alone: λ = {_num(lam)}{_edge(lam, LAMBDAS)} (inner NDCG@{K} "
        + ", ".join(f"λ={_num(c.lam)}: {tuner.scores[c]:.4f}" for c in ease_alone)
        + ")",
        "item-kNN recency (inner NDCG@10): "
        + ", ".join(f"{c.half_life or 'none'}: {tuner.scores[c]:.4f}" for c in knn),
        f"recommended: {chosen.describe()} (inner NDCG@{K} {tuner.scores[chosen]:.4f} vs "
        f"{plain:.4f} for item-kNN alone); rank flags: {' '.join(chosen.args())}",
        "runners-up: " + "; ".join(f"{c.describe()} {tuner.scores[c]:.4f}" for c in ranked[1:4]),
    ]
    return chosen, lam, notes


def _edge(value: float, grid: list[float]) -> str:
    return " (at the edge of the grid)" if value in (min(grid), max(grid)) else ""


def fmt_ci(run: dict, key: str) -> str:
    value = run["metrics"][key]
    ci = run.get("ci", {}).get(key)
    return f"{value:.4f} [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else f"{value:.4f}"


def fmt_p(p: float) -> str:
    return "<0.0001" if p < 0.0001 else f"{p:.4f}"


def p_is(p: float) -> str:
    return "p < 0.0001" if p < 0.0001 else f"p = {p:.4f}"


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells):
        return "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


class Output:
    """Everything printed to stdout, kept also as Markdown for quality_out/QUALITY.md."""

    def __init__(self) -> None:
        self.markdown: list[str] = []

    def heading(self, text: str) -> None:
        print(f"\n=== {text} ===", flush=True)
        self.markdown.append(f"\n### {text}\n")

    def text(self, text: str) -> None:
        print(text, flush=True)
        self.markdown.append(text + "  ")

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        print(text_table(header, rows), flush=True)
        self.markdown.append("\n" + markdown_table(header, rows) + "\n")


def run_dataset(dataset: Dataset, out: Output) -> None:
    source = DATA / dataset.name
    if not (source / "items.csv").is_file() or not (source / "interactions.csv").is_file():
        log(f"{dataset.name}: {source} has no items.csv/interactions.csv; skipped")
        out.heading(f"{dataset.name}: skipped ({source} has no items.csv/interactions.csv)")
        return
    started = time.perf_counter()
    folder = OUT / dataset.name
    for stale in ("inner", "rankings"):  # earlier rankings and fitted models: never reused
        shutil.rmtree(folder / stale, ignore_errors=True)
    (folder / "rankings").mkdir(parents=True)
    history, heldout = folder / "history.csv", folder / "heldout.csv"
    log(f"{dataset.name}: outer leave-last-out split")
    split(source / "interactions.csv", history, heldout)
    items = embed(dataset, source / "items.csv", folder)

    chosen, lam, notes = tune(Tuner(dataset.name, folder / "inner", items, history))

    strategies = [
        Strategy("itemknn", "item-kNN alone (cooc=1, mean)", Config().args()),
        Strategy(
            "ease", f"EASE alone (ease=1, λ={_num(lam)})", Config(cooc=0, ease=1, lam=lam).args()
        ),
        Strategy("popular", "popularity", ["--baseline", "popular"]),
        Strategy("text_mean", "text-only, mean", ["--strategy", "mean"]),
        Strategy("text_last", "text-only, last 1", ["--strategy", "last", "--last-n", "1"]),
    ]
    if chosen.half_life is not None:
        strategies.append(
            Strategy(
                "itemknn_recency",
                f"item-kNN + recommended recency (half-life {chosen.half_life})",
                Config(half_life=chosen.half_life).args(),
            )
        )
    strategies.append(Strategy("recommended", "recommended (tuned)", chosen.args()))
    log(f"{dataset.name}: ranking {len(strategies)} strategies on the outer history")
    paths = {s.key: folder / "rankings" / f"{s.key}.csv" for s in strategies}
    rank_all([(s.key, history, items, paths[s.key], s.args) for s in strategies])

    log(f"{dataset.name}: evaluating on the outer held-out (with intervals)")
    train = ["--items", str(items), "--train", str(history), "--ci"]
    report = evaluate([paths[s.key] for s in strategies], heldout, *train)
    runs = {run["name"]: run for run in report["runs"]}
    tests = {c["run"]: c["metrics"][NDCG] for c in report.get("comparisons", [])}
    reference = runs[str(paths["itemknn"])]["metrics"][NDCG]

    users = report["users"]["evaluated"]
    out.heading(f"{dataset.name}: leave-last-out, {users:,} users, top {K}, full catalog")
    out.text(protocol_note(history, heldout))
    for note in notes:
        out.text(note)
    header = [
        "strategy",
        f"NDCG@{K} [95% CI]",
        f"Recall@{K} [95% CI]",
        f"Coverage@{K}",
        f"Novelty@{K} (bits)",
        "Δ NDCG vs item-kNN",
        "p (rand)",
    ]
    rows = []
    for s in strategies:
        run = runs[str(paths[s.key])]
        ndcg = run["metrics"][NDCG]
        test = tests.get(str(paths[s.key]))
        rows.append(
            [
                s.label,
                fmt_ci(run, NDCG),
                fmt_ci(run, RECALL),
                f"{100 * run['metrics'][COVERAGE]:.1f}%",
                f"{run['metrics'][NOVELTY]:.2f}",
                "reference" if test is None else f"{_gain(ndcg, reference):+.1f}%",
                "" if test is None else fmt_p(test["p_randomization"]),
            ]
        )
    out.table(header, rows)
    out.text(
        f"p (rand): paired randomisation test against item-kNN alone on NDCG@{K}; "
        f"95% bootstrap intervals over users; Novelty = mean self-information of the top {K}."
    )

    # PASS / FAIL
    recommended = runs[str(paths["recommended"])]["metrics"][NDCG]
    gain = _gain(recommended, reference)
    p = tests[str(paths["recommended"])]["p_randomization"]
    verdict = "PASS" if gain >= TARGET_GAIN else "FAIL"
    out.text(
        f"{verdict}: recommended beats item-kNN alone by ≥ {TARGET_GAIN:g}% NDCG@{K}: "
        f"{recommended:.4f} vs {reference:.4f} ({gain:+.1f}%, {p_is(p)})"
    )
    best_text = max(("text_mean", "text_last"), key=lambda k: runs[str(paths[k])]["metrics"][NDCG])
    pair = evaluate([paths["popular"], paths[best_text]], heldout)
    text_ndcg = pair["runs"][1]["metrics"][NDCG]
    pop_ndcg = pair["runs"][0]["metrics"][NDCG]
    p_pop = pair["comparisons"][0]["metrics"][NDCG]["p_randomization"]
    verdict = "PASS" if text_ndcg > pop_ndcg else "FAIL"
    which = "mean" if best_text == "text_mean" else "last 1"
    out.text(
        f"{verdict}: text-only (best of mean/last on this table: {which}) beats popularity on NDCG@{K}: "
        f"{text_ndcg:.4f} vs {pop_ndcg:.4f} ({_gain(text_ndcg, pop_ndcg):+.1f}%, "
        f"{p_is(p_pop)})"
    )

    cold_start(dataset.name, folder, history, heldout, paths, out)
    for used in (folder / "inner" / MODELS, folder / "rankings" / MODELS):
        shutil.rmtree(used, ignore_errors=True)  # fitted models: up to 2 GB, never reused
    log(f"{dataset.name}: done in {time.perf_counter() - started:.0f} s")


def protocol_note(history: Path, heldout: Path) -> str:
    """What the held-out rows are: same session as the history's end? repeats of seen items?"""
    past = pd.read_csv(history, dtype={"user_id": str, "item_id": str})
    truth = pd.read_csv(heldout, dtype={"user_id": str, "item_id": str})
    latest = past.groupby("user_id")["timestamp"].max().reindex(truth["user_id"]).to_numpy()
    same_time = (truth["timestamp"].to_numpy() == latest).mean()
    seen = pd.MultiIndex.from_frame(past[["user_id", "item_id"]])
    repeat = pd.MultiIndex.from_frame(truth[["user_id", "item_id"]]).isin(seen).mean()
    return (
        f"held-out rows: {100 * same_time:.1f}% share the timestamp of the user's last history "
        f"event (same basket/session); {100 * repeat:.1f}% repeat an item already in the "
        "user's history (unreachable: seen items are excluded)"
    )


def cold_start(name: str, folder: Path, history: Path, heldout: Path, paths: dict, out) -> None:
    """Held-out rows whose item never occurs in the outer history, and only their users."""
    seen = set(pd.read_csv(history, usecols=["item_id"], dtype=str)["item_id"])
    truth = pd.read_csv(heldout, dtype=str)
    cold = truth[~truth["item_id"].isin(seen)]
    if cold.empty:
        out.text(f"cold start: none of the {len(truth):,} held-out items is new to the history")
        return
    cold_path = folder / "heldout_cold.csv"
    cold.to_csv(cold_path, index=False)
    keys = ["itemknn", "recommended", "text_mean"]
    labels = ["item-kNN alone", "recommended (tuned)", "text-only, mean (for comparison)"]
    report = evaluate([paths[key] for key in keys], cold_path)
    out.text(
        f"cold start: {len(cold):,} of {len(truth):,} held-out rows name an item never seen in "
        f"the history ({cold['item_id'].nunique():,} items, {cold['user_id'].nunique():,} users)"
    )
    rows = [
        [
            f"cold start: {label}",
            f"{run['metrics'][NDCG]:.4f}",
            f"{run['metrics'][RECALL]:.4f}",
            f"{run['users']['evaluated']:,}",
        ]
        for label, run in zip(labels, report["runs"], strict=True)
    ]
    out.table(["strategy", f"NDCG@{K}", f"Recall@{K}", "users"], rows)


def _gain(value: float, reference: float) -> float:
    return 100 * (value - reference) / reference if reference else float("inf")


def main() -> int:
    if not DATA.is_dir():
        print(f"quality: {DATA} not found; nothing to measure (skipped)", file=sys.stderr)
        return 0
    OUT.mkdir(exist_ok=True)
    out = Output()
    try:
        for dataset in DATASETS:
            run_dataset(dataset, out)
    except subprocess.CalledProcessError as exc:
        command = " ".join(str(part) for part in exc.cmd)
        print(f"quality: failed (exit {exc.returncode}): {command}", file=sys.stderr)
        return 1
    total = time.perf_counter() - STARTED
    print(f"\ntotal: {total:.0f} s", flush=True)
    report = OUT / "QUALITY.md"
    report.write_text(
        "## Quality on real data\n\n"
        f"Generated by `make quality` (benchmarks/quality.py) in {total:.0f} s.\n"
        + "\n".join(out.markdown)
        + "\n"
    )
    log(f"Markdown tables written to {report.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
