"""The inner leave-last split and the tune options, in memory."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmrec.data.history import map_history
from llmrec.errors import InputError
from llmrec.options import TuneOptions
from llmrec.tuning.inner import inner_split
from llmrec.tuning.space import FIXED_RECIPE, Space, time_text

ITEMS = np.array(["a", "b", "c", "d", "e"], dtype=object)


def test_each_users_latest_event_is_held_out_and_single_event_users_stay_unscored():
    frame = pd.DataFrame(
        [
            ("u", "c", 30.0),  # u's latest, though not last in the file
            ("u", "a", 10.0),
            ("v", "e", 5.0),  # v has one event: kept in the history, not scored
            ("u", "b", 20.0),
            ("w", "a", 7.0),
            ("w", "d", 7.0),  # a tie in time: the later row in the file is the latest
            ("x", "zz", 1.0),  # an item not in the table: x has no known event
            ("x", "b", 2.0),
        ],
        columns=["user_id", "item_id", "order"],
    )
    split = inner_split(map_history(frame, ITEMS))

    assert list(split.user_ids) == ["u", "w"]
    assert list(ITEMS[split.targets]) == ["c", "d"]
    inner = split.history
    assert list(inner.user_ids) == ["u", "v", "w", "x"]
    assert list(inner.counts) == [2, 1, 1, 1]
    assert list(ITEMS[inner.item_index]) == ["a", "b", "e", "a", "b"]
    assert list(inner.time) == [10.0, 20.0, 5.0, 7.0, 2.0]
    assert list(inner.age) == [1, 0, 0, 0, 0]


def test_the_fixed_recipe_is_the_readmes():
    assert FIXED_RECIPE.options() == {
        "strategy": "decay",
        "half_life": 1.0,
        "max_history": None,
        "blend": "text=0.25,cooc=1,ease=0.5,pop=0.1",
        "ease_lambda": 100,
        "interests": 0,
    }
    assert Space().fixed_params()["ease_lambda"] == 100
    assert "half_life_unit" in Space((60.0, 86400.0)).fixed_params()


def test_time_half_lives_are_written_as_rank_reads_them():
    assert time_text(3.5 * 86400) == "3.5d"
    assert time_text(5400) == "1.5h"
    assert time_text(12.345) == "12.3s"


def test_tune_options_parse_and_check_themselves():
    assert TuneOptions().name_and_k == ("ndcg", 10)
    assert TuneOptions().n_trials == 50
    assert TuneOptions(metric="hit_rate@5", time_budget="15m").n_trials is None
    assert TuneOptions(time_budget="15m").seconds == 900
    assert TuneOptions(trials=6, time_budget="1h").n_trials == 6
    for fields, message in [
        ({"metric": "ndcg"}, "--metric 'ndcg': give a metric@k"),
        ({"metric": "ndcg@0"}, "--metric 'ndcg@0'"),
        ({"metric": "gauc@10"}, "--metric 'gauc': choose one of ndcg, recall, hit_rate, mrr"),
        ({"trials": 0}, "--trials 0: must be at least 1"),
        ({"time_budget": "soon"}, "--time-budget 'soon'"),
    ]:
        with pytest.raises(InputError, match=message):
            TuneOptions(**fields)
