"""The search in memory: what a trial scores is what split → rank → evaluate would give, the
tuner ranks as rank does, models are fitted once per λ, and a time budget stops it."""

from __future__ import annotations

import json

import numpy as np
import pytest

import llmrec
from llmrec.data.history import map_encoded
from llmrec.data.interactions import read_encoded_interactions
from llmrec.io.vectors import read_vectors
from llmrec.options import RankOptions
from llmrec.ranking.blend import parse_blend
from llmrec.ranking.plan import blended_scorer
from llmrec.ranking.scorers import item_to_item
from llmrec.tuning.inner import inner_split
from llmrec.tuning.scoring import InnerRanker
from llmrec.tuning.space import FIXED_RECIPE, Recipe


@pytest.fixture(scope="module")
def sample(tmp_path_factory, tiny_bert, sample_items, sample_interactions):
    """sample_data split leave-last and its items embedded with the tiny BERT, in memory."""
    folder = tmp_path_factory.mktemp("tuning-search")
    paths = {name: str(folder / name) for name in ("history.csv", "heldout.csv", "items.parquet")}
    llmrec.split(str(sample_interactions), paths["history.csv"], paths["heldout.csv"])
    llmrec.embed(str(sample_items), paths["items.parquet"], model=str(tiny_bert))
    return folder, paths


def rank_options(options: dict, k: int = 10) -> tuple[RankOptions, llmrec.options.Weighting]:
    """RankOptions and Weighting from a config's options, as `rank` would build them."""
    rank = RankOptions(
        k=k,
        blend=parse_blend(options["blend"]),
        ease_lambda=float(options["ease_lambda"]),
        interests=options["interests"],
    )
    half_life = options["half_life"]
    weighting = llmrec.options.Weighting(
        options["strategy"],
        None if half_life is None else str(half_life),
        max_history=options["max_history"],
    )
    return rank, weighting


def test_a_trials_value_is_what_split_rank_evaluate_give_on_the_history(sample):
    folder, paths = sample
    result = llmrec.tune(
        paths["history.csv"], paths["items.parquet"], str(folder / "t.json"), trials=4, seed=1
    )
    config = json.loads((folder / "t.json").read_text())
    assert config == result.config

    inner_history, inner_truth = str(folder / "inner-history.csv"), str(folder / "inner-truth.csv")
    llmrec.split(paths["history.csv"], inner_history, inner_truth)
    for options, value in [
        (config["fixed_recipe"]["options"], config["fixed_recipe"]["value"]),
        (config["options"], config["value"]),
    ]:
        rank, weighting = rank_options(options)
        rankings = str(folder / "inner-rankings.csv")
        llmrec.rank(
            paths["items.parquet"], rankings, rank, history=inner_history, weighting=weighting
        )
        report = llmrec.evaluate(rankings, inner_truth, ks=[10])
        assert report.runs[0].summary()["ndcg@10"] == pytest.approx(value, abs=1e-12)


@pytest.mark.parametrize(
    "recipe",
    [
        Recipe("decay", "2.5d", 20, {"text": 0.3, "ease": 0.7, "pop": 0.2}, 50.0, 2),
        Recipe("mean", None, 5, {"cooc": 0.4, "text": 1.0}, 20.0, 0),
        Recipe("decay", 0.7, None, {"ease": 1.0}, 2000.0, 3),
    ],
    ids=str,
)
def test_the_tuner_ranks_as_rank_does(sample, recipe):
    _, paths = sample
    items = read_vectors(paths["items.parquet"], "items").sorted_by_id()
    split = inner_split(map_encoded(read_encoded_interactions(paths["history.csv"]), items.ids))
    ranker = InnerRanker(split, items, "ndcg", 10)
    rank, weighting = rank_options(recipe.options())
    users = ranker.profiles(recipe)
    expected, _ = blended_scorer(users, items, split.history, rank, weighting)
    scores = ranker.scorer(recipe)(0, len(users))
    assert scores.shape == (len(split.user_ids), len(items))
    np.testing.assert_array_equal(scores, expected(0, len(users)))


def test_each_model_is_fitted_once_per_lambda(sample, monkeypatch):
    folder, paths = sample
    fits: dict[str, list[float]] = {"ease": [], "cooc": []}
    ease, cooccurrence = item_to_item.ease, item_to_item.cooccurrence
    monkeypatch.setattr(
        item_to_item,
        "ease",
        lambda binary, lam=500.0: fits["ease"].append(lam) or ease(binary, lam),
    )
    monkeypatch.setattr(
        item_to_item, "cooccurrence", lambda binary: fits["cooc"].append(0) or cooccurrence(binary)
    )
    result = llmrec.tune(
        paths["history.csv"], paths["items.parquet"], str(folder / "f.json"), trials=15
    )

    tried = [t["params"] for t in result.config["trials"] if t["params"]]
    used = {float(p["ease_lambda"]) for p in tried if "ease=" in p["blend"]}
    assert len(set(fits["ease"])) > 1, "the search should try several λ"
    assert sorted(fits["ease"]) == sorted(used)  # each λ used once fitted, and only once
    assert len(fits["cooc"]) == 1


def test_a_time_budget_ends_the_search_after_the_fixed_recipe(sample):
    folder, paths = sample
    seen = []
    result = llmrec.tune(
        paths["history.csv"], paths["items.parquet"], str(folder / "b.json"),
        time_budget=1e-6, on_trial=lambda done, best: seen.append((done, best)),
    )  # fmt: skip
    config = result.config
    assert config["search"]["trials"] == 1 and seen == [(1, config["value"])]
    assert config["options"] == FIXED_RECIPE.options() == config["fixed_recipe"]["options"]
    assert config["interval"] == config["fixed_recipe"]["interval"]
