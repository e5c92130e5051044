"""Any bytes given as an input table give a table or an InputError (exit 2), never a crash."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmrec.data.interactions import read_interactions
from llmrec.errors import InputError
from llmrec.io.tables import read_table

CSV_PIECES = st.lists(
    st.sampled_from(
        [
            "user_id",
            "item_id",
            "timestamp",
            ",",
            "\n",
            '"',
            "a",
            "1",
            "2024-01-01",
            "\r\n",
            "\t",
            "é",
            "\xff",
            "\ufeff",
            " ",
            "nan",
            "-",
            "1e309",
        ]
    ),
    max_size=40,
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.one_of(
        st.binary(max_size=200),
        CSV_PIECES.map(lambda p: "".join(p).encode("utf-8", "surrogatepass")),
    )
)
def test_any_bytes_read_as_a_table_or_fail_cleanly(tmp_path, data):
    for suffix in (".csv", ".tsv", ".jsonl", ".parquet", ".csv.gz"):
        path = tmp_path / f"input{suffix}"
        path.write_bytes(data)
        with contextlib.suppress(InputError):
            assert "user_id" in read_table(str(path), required=["user_id"]).columns
        with contextlib.suppress(InputError):
            frame = read_interactions(str(path))
            assert list(frame.columns) == ["user_id", "item_id", "order"] and len(frame) > 0
