"""The tables and PASS/FAIL lines of benchmarks/quality.py, from `llmrec evaluate`'s JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from quality_common import (
    COVERAGE,
    NDCG,
    NOVELTY,
    RECALL,
    K,
    Output,
    evaluate,
    fmt_ci,
    fmt_p,
    fmt_seconds,
    gain,
    p_is,
)

BLEND_GAIN = 1.05  # issue 13: the best trained blend ≥ 1.05 × tuned on at least one dataset
# rows of the new-items table (those present), tuned first: the reference of its tests
NEW_ITEM_ROWS = ["tuned", "fixed", "trained_off", "trained_only", "trained_on", "blend",
                 "rectools", "itemknn", "text_mean", "text_last"]  # fmt: skip


@dataclass
class Row:
    """One row of a dataset's table: a rankings file and how it was made."""

    key: str  # file stem of its rankings
    label: str
    args: list[str] = field(default_factory=list)  # rank options; none: rankings made elsewhere
    fit_seconds: float | None = None  # tuning/training before ranking
    cached: bool = False  # fit_seconds measured by an earlier run, whose output was reused
    rank_seconds: float | None = None


@dataclass
class Verdict:
    """What the PASS/FAIL lines need from one dataset (NDCG@10 on the outer held-out)."""

    tuned: float
    fixed: float
    blend: float
    blend_ci: tuple[float, float]
    p_fixed: float
    p_blend: float


def describe(options: dict) -> str:
    """A tuned config's options as rank flags."""
    parts = []
    for name, value in options.items():
        if value is None or name == "model" or (name == "interests" and not value):
            continue
        parts.append(f"--{name.replace('_', '-')} {value}")
    return " ".join(parts)


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


def fitting_notes(tuned: dict, models: dict, best_ids: str, seq: dict, peer: dict | None):
    """One line per fitted row: what tune chose, how each training stopped, the peer's epochs."""
    lines = [
        f"tuned: {describe(tuned['options'])} (inner {NDCG} {tuned['value']:.4f}, fixed recipe "
        f"{tuned['fixed_value']:.4f}; {tuned['trials']} trials)"
    ]
    for ids, model in models.items():
        lines.append(
            f"trained --item-ids {ids}: {model['epochs']} epochs + the final one, stopped by "
            f"{model['stopped']}; best inner {NDCG} {model['best_ndcg']:.4f} at epoch "
            f"{model['best_epoch']}; {fmt_seconds(model['seconds'])}"
        )
    lines.append(
        f"trained + tuned blend: the --item-ids {best_ids} model (best inner {NDCG} of the "
        f"three), {describe(seq['options'])} (inner {NDCG} {seq['value']:.4f})"
        + ("" if "seq=" in seq["options"]["blend"] else "; the search gave the model no weight")
    )
    if peer:
        curve = peer["inner_curve"]
        params = peer["params"]
        versions = ", ".join(f"{k} {v}" for k, v in peer["versions"].items())
        lines.append(
            f"RecTools SASRec: n_factors {params['n_factors']}, {params['loss']} loss, "
            f"session_max_len {params['session_max_len']}; {peer['best_epoch']} epochs, chosen on "
            f"the inner split (best inner {NDCG} {max(c['ndcg@10'] for c in curve):.4f}; "
            f"{len(curve)} epochs tried in {fmt_seconds(peer['search_seconds'])}), then refitted "
            f"on the history in {fmt_seconds(peer['fit_seconds'])}; {versions}"
        )
    return lines


def results_table(rows: list[Row], report: dict, paths: dict[str, Path], out: Output) -> dict:
    """The dataset's table (tuned = the reference); return each row's run by key."""
    runs = {run["name"]: run for run in report["runs"]}
    tests = {c["run"]: c["metrics"][NDCG] for c in report.get("comparisons", [])}
    reference = runs[str(paths["tuned"])]["metrics"][NDCG]
    header = [
        "strategy", f"NDCG@{K} [95% CI]", f"Recall@{K} [95% CI]", f"Coverage@{K}",
        f"Novelty@{K}", "Δ NDCG vs tuned", "p (rand)", "train/tune time", "rank time",
    ]  # fmt: skip
    table, by_key = [], {}
    for row in rows:
        run, test = runs[str(paths[row.key])], tests.get(str(paths[row.key]))
        by_key[row.key] = {**run, "test": test}
        table.append([
            row.label, fmt_ci(run, NDCG), fmt_ci(run, RECALL),
            f"{100 * run['metrics'][COVERAGE]:.1f}%", f"{run['metrics'][NOVELTY]:.2f}",
            "reference" if test is None else f"{gain(run['metrics'][NDCG], reference):+.1f}%",
            "" if test is None else fmt_p(test["p_randomization"]),
            fmt_seconds(row.fit_seconds) + (" (cached)" if row.cached else ""),
            fmt_seconds(row.rank_seconds),
        ])  # fmt: skip
    out.table(header, table)
    out.text(
        f"p (rand): paired randomisation test against tuned on NDCG@{K}; 95% bootstrap "
        f"intervals over users; Novelty = mean self-information (bits) of the top {K}; "
        "train/tune time: wall time of `llmrec tune` / `llmrec train` (blend: its model's "
        "training + `tune --model`; peer: epoch search + refit), measured when made ((cached): "
        "by an earlier run, whose output was reused); rank time: `llmrec rank`, 2 at a time."
    )
    return by_key


def new_items(work: Path, history: Path, heldout: Path, rows: list[Row], paths, out: Output):
    """Held-out rows whose item never occurs in the outer history, and only their users."""
    seen = set(pd.read_csv(history, usecols=["item_id"], dtype=str)["item_id"])
    truth = pd.read_csv(heldout, dtype=str)
    cold = truth[~truth["item_id"].isin(seen)]
    if cold.empty:
        out.text(f"new items: none of the {len(truth):,} held-out items is new to the history")
        return
    cold_path = work / "heldout_new_items.csv"
    cold.to_csv(cold_path, index=False)
    chosen = [row for key in NEW_ITEM_ROWS for row in rows if row.key == key]
    report = evaluate([paths[row.key] for row in chosen], cold_path, "--ci")
    tests = {c["run"]: c["metrics"] for c in report.get("comparisons", [])}
    out.text(
        f"new items: {len(cold):,} of {len(truth):,} held-out rows name an item never seen in "
        f"the history ({cold['item_id'].nunique():,} items, {cold['user_id'].nunique():,} users)"
    )
    table = []
    for row, run in zip(chosen, report["runs"], strict=True):
        test = tests.get(run["name"])
        table.append([
            f"new items: {row.label}", fmt_ci(run, NDCG), fmt_ci(run, RECALL),
            "reference" if test is None else fmt_p(test[NDCG]["p_randomization"]),
        ])  # fmt: skip
    out.table(["strategy", f"NDCG@{K} [95% CI]", f"Recall@{K} [95% CI]", "p (rand)"], table)
    out.text(f"p (rand): paired randomisation test against tuned on NDCG@{K}.")


def verdicts(results: dict[str, Verdict], out: Output) -> bool:
    """The PASS/FAIL lines of issue 13; True when all pass."""
    out.heading("issue 13: PASS/FAIL")
    ok = True
    for name, v in results.items():
        passed = v.tuned >= v.fixed
        ok &= passed
        out.text(
            f"{'PASS' if passed else 'FAIL'}: {name}: tuned ≥ fixed recipe on NDCG@{K}: "
            f"{v.tuned:.4f} vs {v.fixed:.4f} ({gain(v.tuned, v.fixed):+.1f}%, {p_is(v.p_fixed)})"
        )
    ratios = {name: v.blend / v.tuned for name, v in results.items()}
    passed = any(ratio >= BLEND_GAIN for ratio in ratios.values())
    ok &= passed
    detail = "; ".join(
        f"{n}: {v.blend:.4f} vs {v.tuned:.4f} = {ratios[n]:.3f}×" for n, v in results.items()
    )
    out.text(
        f"{'PASS' if passed else 'FAIL'}: trained + tuned blend ≥ {BLEND_GAIN:g}× tuned on "
        f"NDCG@{K} on at least one dataset ({detail})"
    )
    for name, v in results.items():
        passed = v.blend_ci[1] >= v.tuned
        ok &= passed
        out.text(
            f"{'PASS' if passed else 'FAIL'}: {name}: trained + tuned blend not below tuned beyond "
            f"its interval: tuned {v.tuned:.4f} ≤ the blend's upper bound {v.blend_ci[1]:.4f} "
            f"(blend {v.blend:.4f} [{v.blend_ci[0]:.4f}, {v.blend_ci[1]:.4f}], {p_is(v.p_blend)})"
        )
    return ok
