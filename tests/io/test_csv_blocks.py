"""CSV blocks through pyarrow: the same bytes as pandas' to_csv(float_format="%.6f")."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from llmrec.io.csv_blocks import fixed_decimals, write_csv_block


def pandas_bytes(frame: pd.DataFrame) -> str:
    out = io.StringIO()
    frame.to_csv(out, header=False, index=False, float_format="%.6f", lineterminator="\n")
    return out.getvalue()


def ours(frame: pd.DataFrame, fixed=("score",)) -> str:
    out = io.StringIO()
    write_csv_block(frame, out, fixed)
    return out.getvalue()


def test_six_decimals_equal_python_formatting_including_exact_ties_and_negative_zero():
    rng = np.random.default_rng(3)
    halves = rng.integers(-(2**20), 2**20, 50_000) / 2**21  # many exact ties at the 7th decimal
    values = np.concatenate(
        [
            rng.standard_normal(50_000) * 10.0 ** rng.integers(-8, 6, 50_000),
            halves,
            [0.0, -0.0, 1e-7, -1e-7, 5e-7, -5e-7, 0.0078125, -0.0078125, 1.0, 123456.5],
        ]
    ).astype(np.float32)
    expected = [f"{value:.6f}" for value in values.astype(np.float64)]
    assert fixed_decimals(values).to_pylist() == expected


@pytest.mark.parametrize(
    "ids",
    [
        ["u1", "u2", "u3"],
        ["a,b", 'say "hi"', "line\nbreak"],  # need quotes: written by pandas
        ["", " lead", "é ü 漢"],
        [1, 2, 3],
    ],
)
def test_blocks_are_the_bytes_pandas_writes(ids):
    frame = pd.DataFrame(
        {
            "user_id": np.array(ids, dtype=object),
            "rank": np.arange(1, 4),
            "item_id": np.array(["x", "y", "z"], dtype=object),
            "score": np.float32([0.5, -1e-9, 0.1234565]),
        }
    )
    assert ours(frame) == pandas_bytes(frame)


def test_scores_that_are_not_finite_float32_fall_back_to_pandas():
    frame = pd.DataFrame({"user_id": ["u"] * 3, "score": np.float32([np.nan, 1.0, 2.0])})
    assert ours(frame) == pandas_bytes(frame)
    wide = pd.DataFrame({"user_id": ["u"], "score": np.float64([0.1234565])})
    assert ours(wide) == pandas_bytes(wide)
