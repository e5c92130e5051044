"""Compile ranx's numba functions once per environment (what `make install` runs last).

ranx, the peer that the evaluation tests and `make bench` check llmrec's metrics against,
compiles each metric with numba on first use and caches the machine code beside its sources;
that first use costs about a minute on 2 cores. Doing it at install time keeps it out of every
test run. Nothing of llmrec is compiled or cached here.
"""

from __future__ import annotations

import ranx

METRICS = ["precision", "recall", "ndcg", "map", "mrr", "hit_rate"]

qrels = ranx.Qrels.from_dict({"q": {"d": 1}})
run = ranx.Run.from_dict({"q": {"d": 1.0, "e": 0.5}, "x": {"d": 1.0}})
ranx.evaluate(qrels, run, [f"{m}@{k}" for m in METRICS for k in (1, 3)], make_comparable=True)
ranx.evaluate(qrels, run, [f"{m}@3" for m in METRICS], return_mean=False, make_comparable=True)
print("ranx: metrics compiled")
