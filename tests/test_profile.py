"""profile: user vectors as (decayed, truncated) means of item vectors, all users at once."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmrec.errors import InputError
from llmrec.profile import Weighting, build_profiles, map_history, parse_half_life, profile_users
from llmrec.vectors import VectorTable

ITEM_VECTORS = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]], dtype=np.float32)


def items() -> VectorTable:
    return VectorTable(
        "items",
        np.array(["i0", "i1", "i2", "i3"], dtype=object),
        ITEM_VECTORS,
        {"model": "m", "model_fingerprint": "f", "pooling": "mean"},
    )


def history(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user_id", "item_id", "order"])


def test_mean_profile_is_the_normalised_mean_of_item_vectors():
    mapped = map_history(history([("u", "i0", 1), ("u", "i1", 2), ("v", "i2", 1)]), items().ids)
    users = build_profiles(mapped, items())
    assert users.ids.tolist() == ["u", "v"]
    np.testing.assert_allclose(users.vectors[0], np.array([1, 1, 0]) / np.sqrt(2), atol=1e-6)
    np.testing.assert_allclose(users.vectors[1], [0, 0, 1], atol=1e-6)
    assert users.extra["n_history"].tolist() == [2, 1]


def test_decay_weights_halve_every_half_life_events():
    rows = [("u", "i0", t) for t in range(5)]
    mapped = map_history(history(rows), items().ids)
    weights = Weighting("decay", half_life=2).weights(mapped)
    np.testing.assert_allclose(weights, [0.25, 2**-1.5, 0.5, 2**-0.5, 1])
    with pytest.raises(InputError, match="--half-life"):
        Weighting("decay").check()


def test_half_life_in_events_or_time():
    assert parse_half_life("5") == (5, "events")
    assert parse_half_life("30d") == (30 * 86400, "seconds")
    assert parse_half_life("12h") == (12 * 3600, "seconds")
    for bad in ("-1", "nan", "0", "x", "3y"):
        with pytest.raises(InputError, match="--half-life"):
            parse_half_life(bad)


def test_decay_profile_leans_to_recent_items():
    # u saw i0 first, then i1: with half-life 1 event, weights are 0.5 (i0) and 1 (i1)
    mapped = map_history(history([("u", "i1", 20), ("u", "i0", 10)]), items().ids)
    users = build_profiles(mapped, items(), Weighting("decay", half_life=1), normalize=False)
    np.testing.assert_allclose(users.vectors[0], [0.5 / 1.5, 1 / 1.5, 0], atol=1e-6)
    assert users.meta["strategy"] == "decay" and users.meta["half_life"] == "1"


def test_max_history_keeps_most_recent_events():
    rows = [("u", "i0", 1), ("u", "i1", 2), ("u", "i2", 3)]
    users = build_profiles(
        map_history(history(rows), items().ids), items(), Weighting(max_history=2)
    )
    np.testing.assert_allclose(users.vectors[0], np.array([0, 1, 1]) / np.sqrt(2), atol=1e-6)
    assert users.extra["n_history"].tolist() == [2]


def test_unknown_items_are_counted_and_users_without_known_items_left_out():
    rows = [("u", "i0", 1), ("u", "zz", 2), ("w", "zz", 1), ("w", "yy", 2)]
    mapped = map_history(history(rows), items().ids)
    assert (mapped.unknown_events, mapped.unknown_items, mapped.users_without_known) == (3, 2, 1)
    assert build_profiles(mapped, items()).ids.tolist() == ["u"]


def test_vectorised_profiles_equal_a_per_user_loop():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(30, 8)).astype(np.float32)
    table = VectorTable("items", np.array([f"i{j}" for j in range(30)], dtype=object), vectors)
    rows = [(f"u{rng.integers(12)}", f"i{rng.integers(30)}", float(t)) for t in range(300)]
    users = build_profiles(
        map_history(history(rows), table.ids),
        table,
        Weighting("decay", half_life=3, max_history=5),
        normalize=False,
    )
    frame = history(rows)
    for user, vector in zip(users.ids, users.vectors, strict=True):
        events = frame[frame.user_id == user].sort_values("order").tail(5)
        weights = 0.5 ** (np.arange(len(events))[::-1] / 3)
        chosen = vectors[[int(i[1:]) for i in events.item_id]]
        expected = (weights[:, None] * chosen).sum(0) / weights.sum()
        np.testing.assert_allclose(vector, expected, rtol=1e-5, atol=1e-6)


def test_seen_lists_items_per_requested_user():
    mapped = map_history(history([("u", "i2", 1), ("u", "i0", 2), ("v", "i1", 1)]), items().ids)
    indptr, indices = mapped.seen(np.array(["v", "x", "u"], dtype=object), 4)
    assert indptr.tolist() == [0, 1, 1, 3]
    assert indices.tolist() == [1, 0, 2]


def test_profile_users_reads_iso_dates_and_custom_columns(tmp_path):
    path = tmp_path / "h.csv"
    pd.DataFrame(
        {"who": ["u", "u"], "what": ["i1", "i0"], "when": ["2024-01-02", "2024-01-01T10:00:00Z"]}
    ).to_csv(path, index=False)
    users, _ = profile_users(
        str(path),
        items(),
        user_col="who",
        item_col="what",
        time_col="when",
        weighting=Weighting("decay", half_life=1),
    )
    np.testing.assert_allclose(users.vectors[0], np.array([0.5, 1, 0]) / np.sqrt(1.25), atol=1e-6)


def test_history_with_no_known_item_is_an_error(tmp_path):
    path = tmp_path / "h.csv"
    pd.DataFrame({"user_id": ["u"], "item_id": ["nope"]}).to_csv(path, index=False)
    with pytest.raises(InputError, match="none of its 1 rows"):
        profile_users(str(path), items())


def test_last_strategy_keeps_the_last_n_events():
    rows = [("u", "i0", 1), ("u", "i1", 2), ("u", "i2", 3)]
    users = build_profiles(
        map_history(history(rows), items().ids), items(), Weighting("last", last_n=1)
    )
    np.testing.assert_allclose(users.vectors[0], [0, 0, 1], atol=1e-6)
    with pytest.raises(InputError, match="--last-n"):
        Weighting("last").check()


def test_centred_ratings_push_disliked_items_away():
    frame = history([("u", "i0", 1), ("u", "i1", 2)]).assign(rating=[5.0, 1.0])
    mapped = map_history(frame, items().ids, "rating")
    users = build_profiles(mapped, items(), Weighting("weighted", weight_col="rating"))
    # centred: i0 +2, i1 −2 → (2·e0 − 2·e1) / 4, normalised
    np.testing.assert_allclose(users.vectors[0], np.array([1, -1, 0]) / np.sqrt(2), atol=1e-6)
    assert users.vectors[0] @ ITEM_VECTORS[1] < 0


def test_quantities_are_log_scaled():
    frame = history([("u", "i0", 1), ("u", "i1", 2)]).assign(quantity=[np.e**2 - 1, np.e - 1])
    mapped = map_history(frame, items().ids, "quantity")
    users = build_profiles(
        mapped, items(), Weighting("weighted", weight_col="quantity"), normalize=False
    )
    np.testing.assert_allclose(users.vectors[0], [2 / 3, 1 / 3, 0], atol=1e-6)


def test_time_half_life_uses_time_since_the_latest_event():
    day = 86400.0
    rows = [("u", "i0", 0.0), ("u", "i1", 10 * day), ("u", "i2", 20 * day)]
    mapped = map_history(history(rows), items().ids)
    weights = Weighting("decay", half_life="10d").weights(mapped)
    np.testing.assert_allclose(weights, [0.25, 0.5, 1.0])


def test_weighted_strategy_through_the_cli(tmp_path):
    from typer.testing import CliRunner

    from llmrec.cli import app
    from llmrec.vectors import read_vectors, write_vectors

    write_vectors(items(), str(tmp_path / "items.parquet"))
    history([("u", "i0", 1), ("u", "i1", 2)]).assign(rating=[5, 1]).rename(
        columns={"order": "timestamp"}
    ).to_csv(tmp_path / "h.csv", index=False)
    result = CliRunner().invoke(
        app,
        [
            "profile",
            str(tmp_path / "h.csv"),
            "--items",
            str(tmp_path / "items.parquet"),
            "--strategy",
            "weighted",
            "--weight-col",
            "rating",
            "-o",
            str(tmp_path / "u.parquet"),
        ],
    )
    assert result.exit_code == 0, result.stderr
    users = read_vectors(str(tmp_path / "u.parquet"), "users")
    assert users.meta["strategy"] == "weighted" and users.meta["weight_mode"] == "auto"
    np.testing.assert_allclose(users.vectors[0], np.array([1, -1, 0]) / np.sqrt(2), atol=1e-6)
