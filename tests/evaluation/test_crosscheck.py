"""Cross-check llmrec's ranking metrics against ranx and trec_eval (pytrec_eval).

Hypothesis draws truth and rankings files (tied scores, duplicate rows, duplicate truth rows,
truth users with no ranking, ranked users with no truth, k beyond the list length, string ids
whose text order differs from their number order) and checks that Precision, Recall, NDCG,
MAP (AP@k), MRR (RR@k) and HitRate at several k equal ranx's and trec_eval's to 1e-9, per user
and in the mean. The peers are given llmrec's list order as strictly decreasing scores, and
the users the truth has, so that only the metric definitions are compared.

Where the peers differ from llmrec by convention (each shown by its own test below):

- Tied scores. llmrec orders a list by score descending, ties by item id ascending.
  trec_eval breaks ties by document id *descending* (reverse strcmp), so with scores a=b=x
  it ranks x, b, a and P@1, RR and the rest differ. ranx keeps the insertion order of the
  run dict for tied items in lists of up to 15 items (numba's argsort is an insertion sort
  there) and an unspecified order in longer lists (numba's unstable quicksort). To get
  llmrec's numbers from a peer, give it strictly decreasing scores in llmrec's order.
- Truth users missing from the run. llmrec scores them 0 on every metric and counts them.
  trec_eval leaves them out of its per-query output, so a mean over that output is over the
  ranked users only (the trec_eval binary's -c adds them; pytrec_eval has no such switch);
  a user given an empty ranking ({}) is kept and scored 0. ranx refuses a run whose users
  differ from the qrels' (AssertionError) unless make_comparable=True, which adds the
  missing users with empty results, scored 0 and counted, as llmrec does.
- Ranked users absent from the truth: ignored by llmrec and by trec_eval; ranx refuses them
  unless make_comparable=True, which drops them.
- MRR: trec_eval's recip_rank has no cut-off, so it equals llmrec's mrr@k only when the run
  is cut at k first (or no list is longer than k). ranx's mrr@k is cut at k, like llmrec's
  (its docstring says k is ignored; its code cuts).
- Duplicate rows: ranx and pytrec_eval take {user: {item: score}} dicts, so a repeated
  (user, item) cannot be expressed; llmrec keeps the best-placed row. Duplicate truth rows
  count once in all three.
- NDCG: ranx's "ndcg" is the Järvelin form (gain = relevance, as trec_eval's ndcg_cut);
  "ndcg_burges" uses 2^rel - 1. With binary relevance both equal llmrec's NDCG.
- pandas 3 reads strings as its own str dtype; ranx's from_df insists on object columns.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrec.evaluation.metrics import METRICS
from llmrec.evaluation.scoring import Evaluation, evaluate_frames

ranx = pytest.importorskip("ranx")
pytrec_eval = pytest.importorskip("pytrec_eval")

# ranx's numba code warns about a uint64 → int64 cast of id hashes when it compiles.
pytestmark = pytest.mark.filterwarnings("ignore:unsafe cast from uint64 to int64")

TOL = 1e-9
USERS = ["u1", "u2", "u10", "U3", "é"]  # text order: U3 < u1 < u10 < u2 < é
EXTRA_USERS = ["x1", "x2"]  # ranked, never in the truth
ITEMS = ["i1", "i2", "i10", "i11", "I5", "a", "b", "é"]  # 'i10' < 'i2' as text
SCORES = [0.0, 0.5, 1.0, 2.0]  # few values, so ties are common
LONG = len(ITEMS)  # no de-duplicated list is longer than this

RANX = {m: m for m in METRICS}  # ranx names: precision recall ndcg map mrr hit_rate (@k)
TREC = {  # trec_eval names at cut-off k; recip_rank has no cut-off, see trec_raw
    "precision": "P_{k}",
    "recall": "recall_{k}",
    "ndcg": "ndcg_cut_{k}",
    "map": "map_cut_{k}",
    "hit_rate": "success_{k}",
}

Lists = dict[str, list[str]]  # user → items, best first
Scores = dict[str, dict[str, float]]  # metric column ("ndcg@5") → user → value


# --- generated cases ----------------------------------------------------------------------


@dataclass
class Case:
    mode: str  # "score", "rank" or "order" (neither column: file order)
    truth: list[tuple[str, str]]  # (user, item) rows, repeats allowed
    rows: list[tuple[str, str, int, float]]  # (user, item, rank, score), repeats allowed
    ks: list[int]

    @property
    def truth_users(self) -> list[str]:
        return sorted({user for user, _ in self.truth})

    @property
    def relevant(self) -> dict[str, set[str]]:
        relevant = defaultdict(set)
        for user, item in self.truth:
            relevant[user].add(item)
        return dict(relevant)


def sort_key(mode: str):
    """llmrec's order within a user, as the README states it; file position breaks the rest."""
    if mode == "rank":
        return lambda entry: (entry[1][2], entry[0])
    if mode == "score":
        return lambda entry: (-entry[1][3], entry[1][1], entry[0])
    return lambda entry: entry[0]


@st.composite
def cases(draw, modes=("score", "rank", "order")) -> Case:
    mode = draw(st.sampled_from(modes))
    truth_users = draw(st.lists(st.sampled_from(USERS), min_size=1, unique=True))
    truth = [
        (user, item)
        for user in truth_users
        for item in draw(st.lists(st.sampled_from(ITEMS), min_size=1, max_size=4))
    ]
    others = [user for user in USERS + EXTRA_USERS if user not in truth_users]
    ranked = [user for user in truth_users if draw(st.booleans())]  # the rest: missing
    ranked += draw(st.lists(st.sampled_from(others), unique=True, max_size=2))  # no truth
    ranked = list(draw(st.permutations(ranked)))
    rows = []
    for user in ranked:
        items = draw(st.lists(st.sampled_from(ITEMS), min_size=1, max_size=10))
        n = len(items)
        ranks = draw(st.lists(st.integers(1, 40), min_size=n, max_size=n, unique=True))
        scores = draw(st.lists(st.sampled_from(SCORES), min_size=n, max_size=n))
        rows += list(zip([user] * n, items, ranks, scores, strict=True))
    layout = draw(st.sampled_from(["shuffled", "grouped", "in order"]))
    if layout == "shuffled":
        rows = list(draw(st.permutations(rows)))
    elif layout == "in order":  # grouped by user and in list order: llmrec's no-sort path
        rows = [row for _, row in sorted(enumerate(rows), key=sort_key(mode))]
        rows.sort(key=lambda row: ranked.index(row[0]))  # stable: keeps the list order
    ks = sorted(draw(st.sets(st.integers(1, 12), min_size=1, max_size=4)))
    return Case(mode, truth, rows, ks)


def reference_lists(case: Case, mode: str | None = None) -> Lists:
    """Each ranked user's list as the README defines it, de-duplicated keeping the best place."""
    entries = defaultdict(list)
    for position, row in enumerate(case.rows):
        entries[row[0]].append((position, row))
    lists = {}
    for user, rows in entries.items():
        ordered = [row[1] for _, row in sorted(rows, key=sort_key(mode or case.mode))]
        lists[user] = list(dict.fromkeys(ordered))
    return lists


def trec_tie_lists(case: Case) -> Lists:
    """Lists in trec_eval's order of raw scores: best score first, ties by item descending."""
    best = raw_scores(case)
    return {
        user: sorted(items, key=lambda item: (items[item], item), reverse=True)
        for user, items in best.items()
    }


def raw_scores(case: Case) -> dict[str, dict[str, float]]:
    """{user: {item: best score}} in item-ascending insertion order (a dict has no repeats)."""
    best = defaultdict(dict)
    for user, item, _, score in sorted(case.rows, key=lambda row: (row[0], row[1])):
        best[user][item] = max(score, best[user].get(item, -math.inf))
    return dict(best)


# --- the three evaluators --------------------------------------------------------------------


def llmrec_frames(case: Case, mode: str | None = None, lists: Lists | None = None):
    """The case as llmrec input frames (pandas 3 str dtype ids), or `lists` given as ranks."""
    mode = mode or case.mode
    if lists is None:
        users, items, ranks, scores = ([row[i] for row in case.rows] for i in range(4))
    else:
        users = [user for user, ranked in lists.items() for _ in ranked]
        items = [item for ranked in lists.values() for item in ranked]
        ranks = [rank for ranked in lists.values() for rank in range(1, len(ranked) + 1)]
        scores = [0.0] * len(users)
    columns = {"user_id": pd.Series(users, dtype="str"), "item_id": pd.Series(items, dtype="str")}
    if mode == "rank":
        columns["rank"] = pd.Series(ranks, dtype="int64")
    elif mode == "score":
        columns["score"] = pd.Series(scores, dtype="float64")
    truth_users, truth_items = (list(c) for c in zip(*case.truth, strict=True))
    truth = pd.DataFrame(
        {
            "user_id": pd.Series(truth_users, dtype="str"),
            "item_id": pd.Series(truth_items, dtype="str"),
        }
    )
    return pd.DataFrame(columns), truth


def llmrec_scores(evaluation: Evaluation) -> Scores:
    frame = evaluation.per_user
    return {column: {user: float(v) for user, v in frame[column].items()} for column in frame}


def qrels_of(case: Case) -> dict[str, dict[str, int]]:
    return {user: dict.fromkeys(sorted(items), 1) for user, items in case.relevant.items()}


def as_run(lists: Lists) -> dict[str, dict[str, float]]:
    """Strictly decreasing scores in list order, so no peer has a tie to break."""
    return {
        user: {item: float(len(items) - i) for i, item in enumerate(items)}
        for user, items in lists.items()
    }


def ranx_scores(qrels: dict, run: dict, ks: list[int]) -> tuple[Scores, dict[str, float]]:
    """ranx per user and mean; make_comparable adds truth users missing from the run (scored
    0) and drops ranked users absent from the truth, as llmrec does."""
    qrels_ = ranx.Qrels.from_dict(qrels)
    run_ = ranx.Run.from_dict(run) if run else ranx.Run()
    names = {f"{m}@{k}": f"{RANX[m]}@{k}" for m in METRICS for k in ks}  # llmrec → ranx
    ranx.evaluate(qrels_, run_, list(names.values()), return_mean=False, make_comparable=True)
    per_user = {c: {u: float(v) for u, v in run_.scores[n].items()} for c, n in names.items()}
    means = {c: float(run_.mean_scores[n]) for c, n in names.items()}
    return per_user, means


def cut(run: dict, k: int) -> dict:
    """The top k of every list (run dicts are in list order)."""
    return {user: dict(list(items.items())[:k]) for user, items in run.items()}


def trec_raw(qrels: dict, run: dict, ks: list[int]) -> dict[str, dict[str, float]]:
    """pytrec_eval's own output: {user: {measure: value}} for the users it reports."""
    cutoffs = ",".join(str(k) for k in ks)
    measures = {name.format(k=cutoffs) for name in TREC.values()}
    evaluated = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    mrr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"})
    for k in ks:  # recip_rank has no cut-off: evaluate the run cut at k
        for user, values in mrr.evaluate(cut(run, k)).items():
            evaluated[user][f"recip_rank@{k}"] = values["recip_rank"]
    return evaluated


def trec_scores(qrels: dict, run: dict, ks: list[int]) -> tuple[Scores, dict[str, float]]:
    """trec_eval per user and mean over *all* truth users: trec_eval leaves out the truth
    users that are not in the run, so they are added here with 0 on every measure."""
    evaluated = trec_raw(qrels, run, ks)
    per_user, means = {}, {}
    for m in METRICS:
        for k in ks:
            name = f"recip_rank@{k}" if m == "mrr" else TREC[m].format(k=k)
            column = {user: evaluated.get(user, {}).get(name, 0.0) for user in qrels}
            per_user[f"{m}@{k}"] = column
            means[f"{m}@{k}"] = pytrec_eval.compute_aggregated_measure(name, list(column.values()))
    return per_user, means


def mismatches(name: str, expected: Scores, actual: Scores) -> list[str]:
    """Every (column, user) where llmrec (`actual`) and a peer disagree by more than TOL."""
    found = []
    for column, users in expected.items():
        if set(actual[column]) != set(users):
            found.append(f"{column}: llmrec users {sorted(actual[column])}, {name} {sorted(users)}")
            continue
        for user, value in users.items():
            if not math.isclose(actual[column][user], value, rel_tol=0, abs_tol=TOL):
                found.append(
                    f"{column} {user!r}: llmrec {actual[column][user]!r}, {name} {value!r}"
                )
    return found


def mean_mismatches(name: str, expected: dict[str, float], actual: dict[str, float]) -> list[str]:
    return [
        f"mean {column}: llmrec {actual[column]!r}, {name} {value!r}"
        for column, value in expected.items()
        if not math.isclose(actual[column], value, rel_tol=0, abs_tol=TOL)
    ]


@pytest.fixture(scope="module")
def warm_ranx():
    """Compile (or load from numba's cache) every ranx function used here, once."""
    ranx_scores({"q": {"d": 1}}, {"q": {"d": 1.0, "e": 0.5}, "x": {"d": 1.0}}, [1, 3])


# --- the cross-check -------------------------------------------------------------------------


@pytest.mark.extended  # make test-all: keeps make test within 8 minutes
@settings(max_examples=25, deadline=None)
@given(case=cases())
def test_llmrec_matches_ranx_and_trec_eval(case, warm_ranx):
    rankings, truth = llmrec_frames(case)
    evaluation = evaluate_frames(rankings, truth, case.ks)
    ours, our_means = llmrec_scores(evaluation), evaluation.summary()

    lists = reference_lists(case)
    qrels, run = qrels_of(case), as_run(lists)
    ranx_users, ranx_means = ranx_scores(qrels, run, case.ks)
    trec_users, trec_means = trec_scores(qrels, run, case.ks)
    problems = (
        mismatches("ranx", ranx_users, ours)
        + mean_mismatches("ranx", ranx_means, our_means)
        + mismatches("trec_eval", trec_users, ours)
        + mean_mismatches("trec_eval", trec_means, our_means)
    )
    assert not problems, "\n".join(problems)

    # llmrec's accounting of users, and a truth user with no relevant item in its list gets 0
    truth_users = case.truth_users
    assert list(evaluation.per_user.index) == truth_users
    assert evaluation.users_evaluated == len(truth_users)
    assert evaluation.users_missing == len(set(truth_users) - set(lists))
    assert evaluation.users_ignored == len(set(lists) - set(truth_users))
    for user in truth_users:
        if not set(lists.get(user, [])) & case.relevant[user]:
            assert (evaluation.per_user.loc[user] == 0.0).all(), user


@settings(max_examples=40, deadline=None)
@given(case=cases(modes=("score",)))
def test_raw_tied_scores_each_peer_follows_its_own_tie_order(case, warm_ranx):
    """All three given the raw scores: each equals llmrec fed that peer's tie order as ranks."""
    ks = sorted({*case.ks, LONG})
    rankings, truth = llmrec_frames(case)
    ours = llmrec_scores(evaluate_frames(rankings, truth, ks))
    qrels, raw = qrels_of(case), raw_scores(case)  # raw: tied scores, items inserted ascending

    # ranx keeps insertion order for ties (lists ≤ 15): item-ascending insertion = llmrec
    ranx_ascending, _ = ranx_scores(qrels, raw, ks)
    problems = mismatches("ranx ascending insertion", ranx_ascending, ours)

    # trec_eval breaks ties by item descending: equal to llmrec given that order as ranks
    trec_order = trec_tie_lists(case)
    as_ranked = llmrec_scores(evaluate_frames(*llmrec_frames(case, "rank", trec_order), ks))
    # recip_rank has no cut, so compare the raw run only where k reaches every list's end
    trec_users, _ = trec_scores(qrels, raw, ks)
    for column in [c for c in trec_users if c.startswith("mrr@") and c != f"mrr@{LONG}"]:
        del trec_users[column]
    problems += mismatches("trec_eval raw ties", trec_users, as_ranked)

    # ranx with items inserted descending follows the same order as trec_eval
    descending = {user: dict(sorted(items.items(), reverse=True)) for user, items in raw.items()}
    ranx_descending, _ = ranx_scores(qrels, descending, ks)
    problems += mismatches("ranx descending insertion", ranx_descending, as_ranked)
    assert not problems, "\n".join(problems)


# --- the documented differences, one tiny example each ---------------------------------------


def frames(rankings: list[tuple], truth: list[tuple[str, str]], column: str = "score"):
    ranked = pd.DataFrame(rankings, columns=["user_id", "item_id", column])
    return ranked, pd.DataFrame(truth, columns=["user_id", "item_id"])


def test_tied_scores_trec_eval_orders_ties_by_item_descending_llmrec_ascending(warm_ranx):
    rankings, truth = frames([("u", "a", 1.0), ("u", "b", 1.0), ("u", "x", 1.0)], [("u", "a")])
    ours = evaluate_frames(rankings, truth, [1, 3]).per_user.loc["u"]
    assert ours["precision@1"] == 1.0 and ours["mrr@3"] == 1.0  # llmrec: a, b, x

    trec = trec_raw({"u": {"a": 1}}, {"u": {"a": 1.0, "b": 1.0, "x": 1.0}}, [1, 3])["u"]
    assert trec["P_1"] == 0.0  # trec_eval: x, b, a
    assert trec["recip_rank@3"] == pytest.approx(1 / 3)
    assert trec["ndcg_cut_3"] == pytest.approx(0.5)  # 1/log2(4)


def test_tied_scores_ranx_keeps_the_run_dicts_insertion_order(warm_ranx):
    qrels = {"u": {"a": 1}}
    for inserted, expected in ((["a", "b", "x"], 1.0), (["x", "b", "a"], 0.0), (["b", "a"], 0.0)):
        run = {"u": dict.fromkeys(inserted, 1.0)}
        assert ranx_scores(qrels, run, [1])[0]["precision@1"]["u"] == expected, inserted
    # llmrec does not depend on the row order: a first either way
    for order in (["a", "b", "x"], ["x", "b", "a"]):
        rankings, truth = frames([("u", item, 1.0) for item in order], [("u", "a")])
        assert evaluate_frames(rankings, truth, [1]).per_user.loc["u", "precision@1"] == 1.0


def test_tied_scores_ranx_order_of_a_long_list_is_not_its_insertion_order(warm_ranx):
    """Beyond 15 items numba's argsort is an unstable quicksort: ties come out reshuffled."""
    items = [f"i{n:02d}" for n in range(20)]
    run = ranx.Run.from_dict({"u": dict.fromkeys(items, 1.0)})
    assert list(run.run["u"].keys()) != items


def test_truth_users_missing_from_the_run(warm_ranx):
    rankings, truth = frames([("u1", "a", 1.0)], [("u1", "a"), ("u2", "b")])
    evaluation = evaluate_frames(rankings, truth, [1])
    assert evaluation.users_missing == 1
    assert evaluation.per_user.loc["u2"].eq(0.0).all()
    assert evaluation.summary()["precision@1"] == 0.5  # u1 1, u2 0: u2 counts

    qrels, run = {"u1": {"a": 1}, "u2": {"b": 1}}, {"u1": {"a": 1.0}}
    # ranx refuses the run unless asked to make it comparable; then u2 is 0 and counted
    with pytest.raises(AssertionError, match="make_comparable"):
        ranx.evaluate(ranx.Qrels.from_dict(qrels), ranx.Run.from_dict(run), "precision@1")
    comparable = ranx.evaluate(
        ranx.Qrels.from_dict(qrels), ranx.Run.from_dict(run), "precision@1", make_comparable=True
    )
    assert comparable == 0.5

    # trec_eval leaves u2 out, so the mean over its output is over ranked users only ...
    trec = pytrec_eval.RelevanceEvaluator(qrels, {"P_1"})
    assert set(trec.evaluate(run)) == {"u1"}
    assert np.mean([v["P_1"] for v in trec.evaluate(run).values()]) == 1.0
    # ... but keeps a user given an empty ranking, scored 0
    empty = trec.evaluate({**run, "u2": {}})
    assert empty["u2"]["P_1"] == 0.0
    assert np.mean([v["P_1"] for v in empty.values()]) == 0.5


def test_ranked_users_absent_from_the_truth(warm_ranx):
    rankings, truth = frames([("u", "a", 1.0), ("x", "a", 1.0)], [("u", "a")])
    evaluation = evaluate_frames(rankings, truth, [1])
    assert evaluation.users_ignored == 1
    assert list(evaluation.per_user.index) == ["u"]

    qrels, run = {"u": {"a": 1}}, {"u": {"a": 1.0}, "x": {"a": 1.0}}
    assert set(pytrec_eval.RelevanceEvaluator(qrels, {"P_1"}).evaluate(run)) == {"u"}
    with pytest.raises(AssertionError, match="make_comparable"):
        ranx.evaluate(ranx.Qrels.from_dict(qrels), ranx.Run.from_dict(run), "precision@1")
    run_ = ranx.Run.from_dict(run)
    ranx.evaluate(ranx.Qrels.from_dict(qrels), run_, "precision@1", make_comparable=True)
    assert run_.get_query_ids() == ["u"]


def test_mrr_trec_eval_recip_rank_has_no_cutoff(warm_ranx):
    rankings, truth = frames([("u", "a", 3.0), ("u", "b", 2.0), ("u", "c", 1.0)], [("u", "c")])
    assert evaluate_frames(rankings, truth, [2]).per_user.loc["u", "mrr@2"] == 0.0
    qrels, run = {"u": {"c": 1}}, {"u": {"a": 3.0, "b": 2.0, "c": 1.0}}
    assert ranx_scores(qrels, run, [2])[0]["mrr@2"]["u"] == 0.0  # ranx cuts at k
    recip_rank = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"})
    assert recip_rank.evaluate(run)["u"]["recip_rank"] == pytest.approx(1 / 3)  # no cut
    assert recip_rank.evaluate(cut(run, 2))["u"]["recip_rank"] == 0.0  # cut first: equal


def test_relevant_items_all_absent_from_the_run_score_zero(warm_ranx):
    rankings, truth = frames(
        [("u", "x", 3.0), ("u", "y", 2.0), ("v", "a", 1.0)], [("u", "a"), ("u", "b"), ("v", "a")]
    )
    ours = llmrec_scores(evaluate_frames(rankings, truth, [1, 5]))
    assert all(ours[column]["u"] == 0.0 for column in ours)
    qrels, run = (
        {"u": {"a": 1, "b": 1}, "v": {"a": 1}},
        {"u": {"x": 3.0, "y": 2.0}, "v": {"a": 1.0}},
    )
    assert not mismatches("ranx", ranx_scores(qrels, run, [1, 5])[0], ours)
    assert not mismatches("trec_eval", trec_scores(qrels, run, [1, 5])[0], ours)


def test_duplicate_rows_and_k_beyond_the_list(warm_ranx):
    """llmrec keeps a repeated item at its best rank and counts a repeated truth row once."""
    rankings, truth = frames(
        [("u", "b", 2), ("u", "a", 3), ("u", "b", 1), ("u", "a", 9)],
        [("u", "a"), ("u", "a"), ("u", "c")],
        column="rank",
    )
    ours = llmrec_scores(evaluate_frames(rankings, truth, [1, 2, 10]))
    assert ours["recall@10"]["u"] == 0.5  # |R| = 2: a (twice) and c
    assert ours["precision@10"]["u"] == 0.1  # 1 hit / k, though the list has 2 items
    assert ours["mrr@2"]["u"] == 0.5  # b, a
    qrels, run = {"u": {"a": 1, "c": 1}}, {"u": {"b": 2.0, "a": 1.0}}
    assert not mismatches("ranx", ranx_scores(qrels, run, [1, 2, 10])[0], ours)
    assert not mismatches("trec_eval", trec_scores(qrels, run, [1, 2, 10])[0], ours)


def test_ranx_from_df_needs_object_strings_not_pandas_str():
    frame = pd.DataFrame({"q_id": ["u"], "doc_id": ["a"], "score": [1.0]})
    if frame["q_id"].dtype != object:  # pandas 3: its own str dtype
        with pytest.raises(AssertionError, match="object"):
            ranx.Run.from_df(frame)
    run = ranx.Run.from_df(frame.astype({"q_id": object, "doc_id": object}))
    assert run.get_query_ids() == ["u"]


# --- what a user reads: the JSON report and the per-user file --------------------------------


def test_json_report_and_per_user_file_equal_ranx_and_trec_eval_to_1e12(tmp_path, warm_ranx):
    """The files `llmrec evaluate` writes carry full float64 precision: read back, every mean
    equals ranx's and every per-user value trec_eval's to 1e-12 (the terminal table rounds)."""
    from conftest import run_cli

    rng = np.random.default_rng(7)
    n_users, n_items = 3000, 400
    users = [f"u{i}" for i in range(n_users)]
    lists = {u: [f"i{j}" for j in rng.choice(n_items, 20, replace=False)] for u in users}
    relevant = {u: {f"i{j}" for j in rng.choice(n_items, int(rng.integers(1, 6)))} for u in users}
    rows = [(u, r + 1, item) for u, items in lists.items() for r, item in enumerate(items)]
    pd.DataFrame(rows, columns=["user_id", "rank", "item_id"]).to_csv(
        tmp_path / "r.csv", index=False
    )
    truth = [(u, item) for u, items in relevant.items() for item in sorted(items)]
    pd.DataFrame(truth, columns=["user_id", "item_id"]).to_csv(tmp_path / "t.csv", index=False)

    ks = [5, 10, 20]
    result = run_cli(
        "evaluate", tmp_path / "r.csv", "--truth", tmp_path / "t.csv", "-k", "5,10,20",
        "--format", "json", "-o", tmp_path / "report.json",
        "--per-user", tmp_path / "per_user.parquet", "-q",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    import json

    report = json.loads((tmp_path / "report.json").read_text())
    qrels = {u: dict.fromkeys(sorted(items), 1) for u, items in relevant.items()}
    _, ranx_means = ranx_scores(qrels, as_run(lists), ks)
    trec_users, _ = trec_scores(qrels, as_run(lists), ks)
    assert set(report["metrics"]) == set(ranx_means)
    for name, value in ranx_means.items():
        assert abs(report["metrics"][name] - value) <= 1e-12, (name, report["metrics"][name], value)
    per_user = pd.read_parquet(tmp_path / "per_user.parquet").set_index("user_id")
    for name, values in trec_users.items():
        ours = per_user.loc[list(values), name].to_numpy()
        np.testing.assert_allclose(ours, list(values.values()), rtol=0, atol=1e-12, err_msg=name)
