"""profile: user vectors as (decayed, truncated) means of item vectors, all users at once."""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmrec.data.history import map_history
from llmrec.errors import InputError
from llmrec.io.vectors import VectorTable
from llmrec.options import Weighting, parse_half_life
from llmrec.profiles import build_profiles, profile_users

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
    from llmrec.io.vectors import read_vectors, write_vectors

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


# ----------------------------------------------------------------- large-history reading path


def history_file(tmp_path, suffix: str, rows: list[tuple], columns=("who", "what", "when")) -> str:
    path = tmp_path / f"h{suffix}"
    frame = pd.DataFrame(rows, columns=list(columns))
    if suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return str(path)


MIXED_ROWS = [
    ("u2", "i1", "2024-01-03", 4),
    ("u1", "i0", "2024-01-01", 5),
    ("u2", "zz", "2024-01-02", 1),  # not in the item table
    ("u1", "i2", "2024-01-01", 3),  # same time as row 2: file order breaks the tie
    ("u 1", "i3", "2024-01-05", 2),  # a different id from u1
    ("u3", "yy", "2024-01-04", 5),  # u3 has no known item
    ("u2", "i3", "2024-01-03", 1),
]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_interactions_are_read_in_blocks_as_text_ids_in_file_order(tmp_path, monkeypatch, suffix):
    from llmrec.data.interactions import read_encoded_interactions, read_interactions
    from llmrec.io import tables

    monkeypatch.setattr(tables, "BATCH_ROWS", 2)  # several blocks, ids recurring across them
    path = history_file(tmp_path, suffix, MIXED_ROWS, ("who", "what", "when", "rating"))
    options = dict(user_col="who", item_col="what", time_col="when", extra=["rating"])
    encoded = read_encoded_interactions(path, **options)
    assert encoded.users[encoded.user_codes].tolist() == [row[0] for row in MIXED_ROWS]
    assert encoded.items[encoded.item_codes].tolist() == [row[1] for row in MIXED_ROWS]
    assert encoded.users.tolist() == ["u2", "u1", "u 1", "u3"]  # in order of first appearance
    assert len(encoded.users) == 4 and encoded.user_codes.dtype == np.int32
    utc = datetime.timezone.utc
    seconds = [
        datetime.datetime.fromisoformat(r[2]).replace(tzinfo=utc).timestamp() for r in MIXED_ROWS
    ]
    np.testing.assert_array_equal(encoded.order, seconds)
    assert [int(v) for v in encoded.extra["rating"]] == [row[3] for row in MIXED_ROWS]
    frame = read_interactions(path, **options)  # the same rows, decoded
    assert frame.columns.tolist() == ["user_id", "item_id", "order", "rating"]
    assert frame["user_id"].tolist() == [row[0] for row in MIXED_ROWS]
    np.testing.assert_array_equal(frame["order"].to_numpy(), seconds)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
@pytest.mark.parametrize("weighting", [Weighting(), Weighting("decay", half_life=2)])
def test_profiles_from_a_file_equal_profiles_from_a_frame(tmp_path, monkeypatch, suffix, weighting):
    from llmrec import profiles as profile
    from llmrec.io import tables

    monkeypatch.setattr(tables, "BATCH_ROWS", 3)
    monkeypatch.setattr(profile, "BLOCK_VALUES", 2 * ITEM_VECTORS.shape[1])  # 2 users a block
    rows = [(f"u{k % 5}", f"i{k % 4}" if k % 7 else "zz", k // 3) for k in range(40)]
    path = history_file(tmp_path, suffix, rows)
    users, mapped = profile_users(
        path, items(), user_col="who", item_col="what", time_col="when", weighting=weighting
    )
    expected = map_history(history(rows), items().ids)
    for name in ("user_ids", "user_index", "item_index", "age"):
        np.testing.assert_array_equal(getattr(mapped, name), getattr(expected, name))
    assert (mapped.unknown_events, mapped.unknown_items) == (6, 1)
    reference = build_profiles(expected, items(), weighting)
    np.testing.assert_array_equal(users.ids, reference.ids)
    np.testing.assert_allclose(users.vectors, reference.vectors, atol=1e-6)
    assert users.extra["n_history"].tolist() == reference.extra["n_history"].tolist()


def test_ties_in_time_keep_file_order():
    rows = [("u", "i0", 1), ("u", "i1", 1), ("u", "i2", 1)]
    mapped = map_history(history(rows), items().ids)
    assert mapped.item_index.tolist() == [0, 1, 2] and mapped.age.tolist() == [2, 1, 0]
    users = build_profiles(mapped, items(), Weighting("last", last_n=1))
    np.testing.assert_allclose(users.vectors[0], [0, 0, 1], atol=1e-6)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_empty_id_in_a_later_block_names_its_row(tmp_path, monkeypatch, suffix):
    from llmrec.data.interactions import read_encoded_interactions, read_interactions
    from llmrec.io import tables

    monkeypatch.setattr(tables, "BATCH_ROWS", 2)
    rows = [("u1", "i0", 1), ("u2", "i1", 2), ("u1", "i2", 3), ("u3", "i1", 4), ("  ", "i0", 5)]
    path = history_file(tmp_path, suffix, rows)
    options = dict(user_col="who", item_col="what", time_col="when")
    with pytest.raises(InputError, match="row 5 has an empty 'who'"):
        read_interactions(path, **options)
    rows[1] = ("u2", None, 2)  # an earlier block, but users are checked first
    path = history_file(tmp_path, suffix, rows)
    with pytest.raises(InputError, match="row 5 has an empty 'who'"):
        read_encoded_interactions(path, **options)
    rows[4] = ("u4", "i0", 5)
    path = history_file(tmp_path, suffix, rows)
    with pytest.raises(InputError, match="row 2 has an empty 'what'"):
        read_encoded_interactions(path, **options)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_missing_columns_are_named_with_the_option_to_fix(tmp_path, suffix):
    from llmrec.data.interactions import read_interactions

    path = history_file(tmp_path, suffix, [("u", "i0", 1)])
    with pytest.raises(InputError, match="no column 'user'.*--user-col"):
        read_interactions(path, user_col="user", item_col="what")
    with pytest.raises(
        InputError, match=r"no column 't' \(columns: who, what, when\); fix --time-col"
    ):
        read_interactions(path, user_col="who", item_col="what", time_col="t")


def test_times_are_kept_only_for_a_time_half_life(tmp_path):
    day = 86400
    rows = [("u", "i0", 0), ("u", "i1", 10 * day), ("u", "i2", 20 * day)]
    path = history_file(tmp_path, ".csv", rows)
    options = dict(user_col="who", item_col="what", time_col="when")
    _, mapped = profile_users(path, items(), **options)
    assert mapped.time is None
    with pytest.raises(ValueError, match="without its event times"):
        mapped.seconds_old()
    weighting = Weighting("decay", half_life="10d")
    users, mapped = profile_users(path, items(), weighting=weighting, **options)
    np.testing.assert_allclose(weighting.weights(mapped), [0.25, 0.5, 1.0])
    expected = np.array([0.25, 0.5, 1.0]) @ ITEM_VECTORS[:3]
    np.testing.assert_allclose(users.vectors[0], expected / np.linalg.norm(expected), atol=1e-6)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.sampled_from(["user_id", "item_id", "timestamp", ",", "\n", '"', "a", "b", "1", " "]),
        max_size=40,
    )
)
def test_any_csv_reads_encoded_as_read_interactions_reads_it(tmp_path, pieces):
    from llmrec.data.interactions import read_encoded_interactions, read_interactions

    path = tmp_path / "h.csv"
    path.write_text("".join(pieces))
    try:
        encoded = read_encoded_interactions(str(path))
    except InputError:
        return  # (read_interactions may still read it: it also parses the columns not needed)
    frame = read_interactions(str(path))
    assert encoded.users[encoded.user_codes].tolist() == frame["user_id"].tolist()
    assert encoded.items[encoded.item_codes].tolist() == frame["item_id"].tolist()
    np.testing.assert_array_equal(encoded.order, frame["order"].to_numpy())
