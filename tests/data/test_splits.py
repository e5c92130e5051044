"""split: leave-last-n and temporal splits, min-history, determinism, option errors, the CLI."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from conftest import run_cli
from llmrec.data.splits import split_frame
from llmrec.errors import InputError
from llmrec.io.tables import read_table

# rows 0..6; u2's y and w tie at time 3 (w is later in the file); u3 has a single row
LEAVE = """
user_id,item_id,timestamp,rating
u1,a,5,1
u2,x,1,2
u1,b,9,3
u1,c,7,4
u2,y,3,5
u3,z,4,1
u2,w,3,2
"""

# rows 0..6; cutoff 2024-02-01: u2's e is exactly at it; u3 has nothing before it
TEMPORAL = """
user_id,item_id,timestamp
u1,a,2024-01-01T00:00:00Z
u1,b,2024-01-10T00:00:00Z
u2,c,2024-01-15T00:00:00Z
u1,d,2024-02-05T00:00:00Z
u2,e,2024-02-01T00:00:00Z
u3,f,2024-02-03T00:00:00Z
u3,g,2024-02-10T12:00:00Z
"""


def load(tmp_path: Path, text: str, name: str = "interactions.csv") -> tuple[pd.DataFrame, str]:
    path = tmp_path / name
    path.write_text(text.strip() + "\n", encoding="utf-8")
    return read_table(str(path), required=["user_id", "item_id"]), str(path)


def split(tmp_path: Path, text: str, **options) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    frame, path = load(tmp_path, text)
    history, heldout = split_frame(frame, path=path, **options)
    return frame, history, heldout


def assert_partition(frame: pd.DataFrame, history: pd.DataFrame, heldout: pd.DataFrame) -> None:
    """history + heldout are exactly the input rows, each once, with every column."""
    assert list(history.columns) == list(frame.columns)
    assert list(heldout.columns) == list(frame.columns)
    assert not set(history.index) & set(heldout.index)
    assert len(history) + len(heldout) == len(frame)
    pd.testing.assert_frame_equal(pd.concat([history, heldout]).sort_index(), frame)


@pytest.mark.parametrize(
    ("n", "min_history", "held_rows"),
    [
        (1, 1, [2, 6]),  # u1's b (t=9), u2's w (t=3, after y in the file); u3 keeps its one row
        (2, 1, [2, 3, 4, 6]),  # u1's b, c; u2's y, w
        (1, 0, [2, 5, 6]),  # with no history required u3's only row is held out
        (1, 2, [2, 6]),  # u1 and u2 keep 2 rows each
        (2, 2, []),  # nobody would keep 2 rows
        (1, 3, []),
    ],
)
def test_leave_last_holds_out_each_users_latest_rows(tmp_path, n, min_history, held_rows):
    frame, history, heldout = split(tmp_path, LEAVE, n=n, min_history=min_history)
    assert list(heldout.index) == held_rows
    assert list(history.index) == [i for i in range(len(frame)) if i not in held_rows]
    assert_partition(frame, history, heldout)


def test_leave_last_keeps_all_columns_and_values(tmp_path):
    frame, history, heldout = split(tmp_path, LEAVE, n=1)
    assert list(heldout.columns) == ["user_id", "item_id", "timestamp", "rating"]
    assert heldout.values.tolist() == [["u1", "b", 9, 3], ["u2", "w", 3, 2]]
    assert history["item_id"].tolist() == ["a", "x", "c", "y", "z"]  # file order kept


def test_leave_last_ties_in_time_go_by_file_order(tmp_path):
    text = "user_id,item_id,timestamp\nu,first,5\nu,second,5\nu,early,1\n"
    _, _, heldout = split(tmp_path, text, n=1)
    assert heldout["item_id"].tolist() == ["second"]
    swapped = "user_id,item_id,timestamp\nu,second,5\nu,first,5\nu,early,1\n"
    _, _, heldout = split(tmp_path, swapped, n=1)
    assert heldout["item_id"].tolist() == ["first"]


def test_leave_last_without_time_column_uses_file_order(tmp_path):
    text = "user_id,item_id\nu1,a\nu2,b\nu1,c\nu2,d\nu1,e\n"
    frame, history, heldout = split(tmp_path, text, n=2)
    assert heldout["item_id"].tolist() == ["c", "e"]  # u2 would keep no history with n=2
    assert_partition(frame, history, heldout)


def test_leave_last_on_the_sample_takes_each_users_latest_timestamp(sample_interactions):
    frame = read_table(str(sample_interactions), required=["user_id", "item_id"])
    history, heldout = split_frame(frame, path=str(sample_interactions), n=2)
    assert_partition(frame, history, heldout)
    times = pd.to_datetime(frame["timestamp"], utc=True)
    for user, rows in frame.groupby("user_id"):
        latest = times[rows.index].sort_values(kind="stable").index[-2:]
        assert sorted(heldout.index[heldout["user_id"] == user]) == sorted(latest), user


def test_temporal_cutoff_holds_out_from_the_date_on(tmp_path):
    frame, history, heldout = split(tmp_path, TEMPORAL, strategy="temporal", cutoff="2024-02-01")
    assert list(history.index) == [0, 1, 2]  # strictly before the cutoff
    assert list(heldout.index) == [3, 4]  # at or after it; u3 has no earlier history
    assert list(history.columns) == list(heldout.columns) == list(frame.columns)
    # no future interaction leaks into the history
    assert (
        pd.to_datetime(history["timestamp"], utc=True) < pd.Timestamp("2024-02-01", tz="UTC")
    ).all()


@pytest.mark.parametrize(("min_history", "held_rows"), [(0, [3, 4, 5, 6]), (1, [3, 4]), (2, [3])])
def test_temporal_cutoff_respects_min_history(tmp_path, min_history, held_rows):
    _, history, heldout = split(
        tmp_path, TEMPORAL, strategy="temporal", cutoff="2024-02-01", min_history=min_history
    )
    assert list(heldout.index) == held_rows
    assert list(history.index) == [0, 1, 2]


def test_temporal_cutoff_with_a_time_of_day(tmp_path):
    _, history, heldout = split(
        tmp_path, TEMPORAL, strategy="temporal", min_history=0, cutoff="2024-02-05T00:00:01Z"
    )
    assert list(heldout.index) == [6]  # only g (Feb 10) is at or after it
    assert list(history.index) == [0, 1, 2, 3, 4, 5]


def ten_rows() -> str:
    # times 1..10 in a shuffled file order over two users
    times = [4, 9, 1, 7, 10, 2, 6, 3, 8, 5]
    return "user_id,item_id,timestamp\n" + "\n".join(f"u{t % 2},i{t},{t}" for t in times)


def test_temporal_fraction_holds_out_the_latest_rows(tmp_path):
    frame, history, heldout = split(
        tmp_path, ten_rows(), strategy="temporal", fraction=0.3, min_history=0
    )
    assert sorted(heldout["timestamp"]) == [8, 9, 10]
    assert sorted(history["timestamp"]) == [1, 2, 3, 4, 5, 6, 7]
    assert_partition(frame, history, heldout)


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.5, 0.7, 0.8, 0.9])
def test_temporal_fraction_holds_out_that_share_of_distinct_times(tmp_path, fraction):
    _, history, heldout = split(
        tmp_path, ten_rows(), strategy="temporal", fraction=fraction, min_history=0
    )
    expected = round(10 * fraction)
    assert len(heldout) == expected
    assert sorted(heldout["timestamp"]) == list(range(11 - expected, 11))
    assert len(history) == 10 - expected


def test_split_is_deterministic(tmp_path):
    frame, path = load(tmp_path, TEMPORAL)
    for options in ({"n": 2}, {"strategy": "temporal", "fraction": 0.4, "min_history": 0}):
        first = split_frame(frame, path=path, **options)
        second = split_frame(frame.copy(), path=path, **options)
        for a, b in zip(first, second, strict=True):
            pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n": 0}, "--n 0"),
        ({"n": -1}, "--n"),
        ({"min_history": -1}, "--min-history"),
        ({"strategy": "random"}, "--strategy"),
        ({"strategy": "temporal"}, "exactly one of"),
        ({"strategy": "temporal", "cutoff": "2024-02-01", "fraction": 0.2}, "exactly one of"),
        ({"strategy": "temporal", "fraction": 1.5}, "--fraction"),
        ({"strategy": "temporal", "fraction": 0.0}, "--fraction"),
        ({"strategy": "temporal", "fraction": 1.0}, "--fraction"),
        ({"time_col": "when"}, "'when'"),
    ],
)
def test_bad_options_raise_input_error(tmp_path, options, message):
    frame, path = load(tmp_path, TEMPORAL)
    with pytest.raises(InputError, match=message):
        split_frame(frame, path=path, **options)


def test_temporal_without_a_time_column_raises_input_error(tmp_path):
    frame, path = load(tmp_path, "user_id,item_id\nu1,a\nu1,b\n")
    with pytest.raises(InputError, match="time column"):
        split_frame(frame, path=path, strategy="temporal", fraction=0.5)
    with pytest.raises(InputError, match="time column"):
        split_frame(frame, path=path, strategy="temporal", cutoff="2024-01-01")


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def run_split(tmp_path: Path, source: Path, tag: str, *extra: str):
    history, heldout = tmp_path / f"history-{tag}.csv", tmp_path / f"heldout-{tag}.csv"
    done = run_cli("split", source, "--history-out", history, "--heldout-out", heldout, *extra)
    return done, history, heldout


def test_cli_split_on_the_sample_is_deterministic(tmp_path, sample_interactions):
    done, history, heldout = run_split(tmp_path, sample_interactions, "a")
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b""  # the summary goes to stderr
    assert b"llmrec split:" in done.stderr
    again, history2, heldout2 = run_split(tmp_path, sample_interactions, "b")
    assert again.returncode == 0, again.stderr.decode()
    assert history.read_bytes() == history2.read_bytes()
    assert heldout.read_bytes() == heldout2.read_bytes()

    source = pd.read_csv(sample_interactions, dtype=str)
    hist = pd.read_csv(history, dtype=str)
    held = pd.read_csv(heldout, dtype=str)
    assert list(hist.columns) == list(held.columns) == list(source.columns)
    assert len(hist) + len(held) == len(source)
    assert held["user_id"].is_unique
    assert set(held["user_id"]) == set(source["user_id"])  # every sample user has > 1 row
    # each held-out row is its user's latest interaction
    source["t"] = pd.to_datetime(source["timestamp"], utc=True)
    held["t"] = pd.to_datetime(held["timestamp"], utc=True)
    latest = source.sort_values("t", kind="stable").groupby("user_id").tail(1)
    key = ["user_id", "item_id", "rating", "t"]
    pd.testing.assert_frame_equal(
        held[key].sort_values("user_id").reset_index(drop=True),
        latest[key].sort_values("user_id").reset_index(drop=True),
    )


def test_cli_split_writes_the_input_rows_unchanged(tmp_path, sample_interactions):
    """The output files are a partition of the input lines: values are not reformatted."""
    done, history, heldout = run_split(tmp_path, sample_interactions, "a")
    assert done.returncode == 0, done.stderr.decode()
    source = read_rows(sample_interactions)
    written = read_rows(history) + read_rows(heldout)
    assert sorted(map(tuple, (r.values() for r in written))) == sorted(
        map(tuple, (r.values() for r in source))
    )


def test_cli_split_bad_option_exits_2_and_writes_nothing(tmp_path, sample_interactions):
    done, history, heldout = run_split(tmp_path, sample_interactions, "a", "--n", "0")
    assert done.returncode == 2
    assert b"error" in done.stderr and b"--n 0" in done.stderr
    assert not history.exists() and not heldout.exists()
