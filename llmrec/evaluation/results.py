"""What an evaluation produced: each run's per-user (or per-impression) values, intervals and
paired comparisons, and their plain-data views (a dict, a DataFrame, HTML for notebooks, one
sentence of accounting). Rendering as tables, Markdown and plots is `report`'s."""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field

import pandas as pd

from .impressions import CONVENTIONS as IMPRESSION_CONVENTIONS
from .stats import PairedTest

SIGNIFICANCE = 0.05
CONVENTIONS = (
    "binary relevance; users in the truth but missing from the rankings score 0; "
    "Precision@k divides by k; AP@k and Recall@k divide by |R|; "
    "IDCG@k uses min(|R|, k) hits (as ranx and trec_eval)"
)


@dataclass
class Evaluation:
    """One run's per-user metric values and the accounting of which users were scored."""

    ks: list[int]
    per_user: pd.DataFrame  # index user_id, columns "ndcg@10", ... (+ per-user beyond metrics)
    users_evaluated: int
    users_missing: int  # in the truth, not in the rankings: scored 0
    users_ignored: int  # in the rankings, not in the truth
    longest_list: int  # most items ranked for one user
    sources: dict[str, str] = field(default_factory=dict)
    catalog: dict[str, float] = field(default_factory=dict)  # coverage@k, gini@k
    impressions: dict[str, int] = field(default_factory=dict)  # counts, for impression logs

    @property
    def unit(self) -> str:
        """What a row of per_user is: a user, or an impression of an impression log."""
        return "impressions" if self.impressions else "users"

    @property
    def name(self) -> str:
        return self.sources.get("rankings", "run")

    def summary(self) -> dict[str, float]:
        """Mean of every per-user metric over the evaluated users."""
        return {name: float(value) for name, value in self.per_user.mean().items()}


@dataclass
class Comparison:
    """A run against the reference run, over the same users, per metric column."""

    run: str
    reference: str
    columns: list[str]
    test: PairedTest


@dataclass
class Report:
    """Every run's evaluation, with bootstrap intervals and comparisons when asked for."""

    runs: list[Evaluation]
    intervals: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    comparisons: list[Comparison] = field(default_factory=list)
    resamples: int = 0

    @property
    def ks(self) -> list[int]:
        return self.runs[0].ks

    def to_dict(self) -> dict:
        """The report as plain data: what `llmrec evaluate --format json` writes."""
        return report_dict(self)

    def to_frame(self) -> pd.DataFrame:
        """One row per run, one column per measure (means over users or impressions)."""
        index = pd.Index([run.name for run in self.runs], name="run")
        return pd.DataFrame([measures(run) for run in self.runs], index=index)

    def _repr_html_(self) -> str:
        table = self.to_frame().to_html(float_format=lambda value: f"{value:.4f}")
        return f"{table}<p>{html.escape(accounting(self))}.</p>"


def as_report(result: Evaluation | Report) -> Report:
    return result if isinstance(result, Report) else Report([result])


def run_labels(report: Report) -> list[str]:
    """Short names for the runs: file stems when they are distinct, else the paths."""
    stems = [os.path.splitext(os.path.basename(run.name))[0] for run in report.runs]
    return stems if len(set(stems)) == len(stems) else [run.name for run in report.runs]


def measures(run: Evaluation) -> dict[str, float]:
    """Every value reported for a run: per-user means and catalog measures."""
    return {**run.summary(), **run.catalog}


def _users(run: Evaluation) -> dict[str, int]:
    return {
        "evaluated": run.users_evaluated,
        "missing_from_rankings": run.users_missing,
        "ranked_without_truth": run.users_ignored,
    }


def report_dict(result: Evaluation | Report) -> dict:
    """The report as plain data: k values, every run's means (and intervals), comparisons.

    Values keep full float64 precision: JSON is read by programs, and a rounded mean would
    differ from ranx's or trec_eval's; only the table and Markdown round for people.
    """
    report = as_report(result)
    first = report.runs[0]
    runs = []
    unit = first.unit
    for run in report.runs:
        entry = {
            "name": run.name,
            "metrics": {key: float(value) for key, value in measures(run).items()},
            unit: run.impressions or _users(run),
        }
        if unit == "users":
            entry["longest_list"] = run.longest_list
        if run.name in report.intervals:
            entry["ci"] = {
                key: [float(lo), float(hi)] for key, (lo, hi) in report.intervals[run.name].items()
            }
        runs.append(entry)
    data = {"k": report.ks, "metrics": runs[0]["metrics"], unit: runs[0][unit]}
    if unit == "users":
        data["longest_list"] = first.longest_list
    data.update(
        sources=first.sources,
        runs=runs,
        conventions=IMPRESSION_CONVENTIONS if unit == "impressions" else CONVENTIONS,
    )
    if report.resamples:
        data["bootstrap"] = {"resamples": report.resamples, "confidence": 0.95}
    if report.comparisons:
        data["comparisons"] = [_comparison_dict(c) for c in report.comparisons]
    return data


def _comparison_dict(comparison) -> dict:
    test = comparison.test
    return {
        "run": comparison.run,
        "reference": comparison.reference,
        "metrics": {
            column: {
                "difference": float(test.difference[i]),
                "p_ttest": float(test.p_ttest[i]),
                "p_randomization": float(test.p_randomization[i]),
                "wins": int(test.wins[i]),
                "ties": int(test.ties[i]),
                "losses": int(test.losses[i]),
            }
            for i, column in enumerate(comparison.columns)
        },
    }


def accounting(result: Evaluation | Report) -> str:
    """One sentence on which users were scored, and on lists shorter than the largest k."""
    report = as_report(result)
    run = report.runs[0]
    if run.impressions:
        return _impression_accounting(report)
    text = (
        f"{run.users_evaluated:,} users evaluated; {run.users_missing:,} in the truth "
        f"but missing from the rankings (scored 0); {run.users_ignored:,} ranked without "
        "truth (ignored)"
    )
    if len(report.runs) > 1:
        text = (
            f"all {len(report.runs)} runs scored on the same {run.users_evaluated:,} truth users "
            "(missing users score 0); missing/ignored per run: "
            + ", ".join(
                f"{label} {r.users_missing:,}/{r.users_ignored:,}"
                for label, r in zip(run_labels(report), report.runs, strict=True)
            )
        )
    longest = min(r.longest_list for r in report.runs)
    if longest < max(report.ks):
        text += f"; lists hold at most {longest} items, so metrics at larger k count only those"
    return text + _statistics_note(report, "users")


def _statistics_note(report: Report, unit: str) -> str:
    """The end of the accounting: how intervals were drawn and what `*` marks."""
    text = ""
    if report.resamples:
        text += f"; 95% bootstrap intervals over {unit} ({report.resamples:,} resamples)"
    if report.comparisons:
        text += (
            f"; * = paired randomisation test p < {SIGNIFICANCE} against {run_labels(report)[0]}"
        )
    return text


def _impression_accounting(report: Report) -> str:
    """One sentence on which impressions were scored, per run when there are several."""
    counts = report.runs[0].impressions
    text = (
        f"{counts['evaluated']:,} impressions of {report.runs[0].users_evaluated:,} users, "
        f"{counts['with_click']:,} with a click"
    )
    if "with_conversion" in counts:
        text += f", {counts['with_conversion']:,} with a conversion"
    unscored = ", ".join(
        f"{label} {run.impressions['without_scored_item']:,}"
        for label, run in zip(run_labels(report), report.runs, strict=True)
    )
    text += f"; without any item of the user's list (all tied): {unscored}"
    return text + _statistics_note(report, "impressions")
