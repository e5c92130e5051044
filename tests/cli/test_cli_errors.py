"""The error contract of every command: bad input gives exit 2 and ONE line on stderr.

That line starts `llmrec <command>: error:`, names the file and the column or row at fault
(or the option) and says what to do. There is never a traceback (unless --debug), no output
file is created, no `.*.tmp` file is left behind and no input file is touched.

Each case below builds its bad input in a fresh folder (`in/`, outputs go to `out/`) and runs
the command in-process with typer's CliRunner; a few tests at the end run the real executable.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from conftest import run_cli
from llmrec.cli import app
from llmrec.io.vectors import VectorTable, read_meta, write_vectors

# --- watching for network access, without replacing anything -------------------------------

NETWORK_EVENTS = {
    "socket.connect",
    "socket.getaddrinfo",
    "socket.gethostbyname",
    "socket.gethostbyname_ex",
    "socket.gethostbyaddr",
    "socket.sendto",
}
_network_calls: list[tuple[str, tuple]] = []
_watching = [False]


def _audit(event: str, args: tuple) -> None:
    if _watching[0] and event in NETWORK_EVENTS:
        _network_calls.append((event, args))


sys.addaudithook(_audit)  # audit hooks cannot be removed; this one only records while watching


# --- the workspace a case builds its bad input in ---------------------------------------------


@dataclass
class Workspace:
    """A case's folder (the working directory while it runs): inputs in in/, outputs in out/."""

    root: Path
    assets: dict[str, Path]
    bert: Path
    gpt2: Path
    sample_items: Path
    sample_interactions: Path

    def write(self, name: str, content: str | bytes) -> str:
        """Write an input file under in/ and return its path as given on the command line."""
        path = self.root / "in" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(content)
        return f"in/{name}"

    def copy(self, source: Path, name: str) -> str:
        """Copy a file or folder (an asset, a sample file, a model) under in/."""
        target = self.root / "in" / name
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copyfile(source, target)
        return f"in/{name}"

    def asset(self, name: str) -> str:
        """A copy of one of the module's valid vector tables, e.g. `items_bert`."""
        return self.copy(self.assets[name], f"{name}.parquet")

    def items(self) -> str:
        return self.copy(self.sample_items, "items.csv")

    def history(self) -> str:
        return self.copy(self.sample_interactions, "history.csv")


# --- the cases --------------------------------------------------------------------------------

CASES = []


def case(*expect: str):
    """Register a case: the builder returns the argv; `expect` must all appear in the message."""

    def register(build: Callable[[Workspace], list[str]]):
        CASES.append(pytest.param(build, expect, id=build.__name__.replace("_", "-")))
        return build

    return register


def embed_args(w: Workspace, items: str, *extra: str, model: Path | str | None = None) -> list:
    return ["embed", items, "-o", "out/items.parquet", "--model", model or w.bert, "-q", *extra]


ITEMS_HEADER = "item_id,title,description\n"
HISTORY_HEADER = "user_id,item_id,timestamp\n"
RANKINGS = "user_id,rank,item_id,score\nU1,1,A,0.9\nU1,2,B,0.8\n"
TRUTH = "user_id,item_id\nU1,A\n"


# embed: the item table


@case("in/missing.csv", "not found")
def embed_missing_input(w):
    return embed_args(w, "in/missing.csv")


@case("in/folder", "folder holds no shards", ".parquet or .csv files")
def embed_input_is_a_folder_without_shards(w):
    (w.root / "in" / "folder").mkdir(parents=True)
    return embed_args(w, "in/folder")


@case("in/items.csv", "'nope'", "--id-col")
def embed_unknown_id_column(w):
    return embed_args(w, w.items(), "--id-col", "nope")


@case("in/items.csv", "no rows")
def embed_header_only(w):
    return embed_args(w, w.write("items.csv", ITEMS_HEADER))


@case("in/items.csv", "empty")
def embed_empty_file(w):
    return embed_args(w, w.write("items.csv", b""))


@case("in/items.csv", "'title'", "more than once")
def embed_duplicate_column_names(w):
    return embed_args(w, w.write("items.csv", "item_id,title,title\nA,x,y\n"))


@case("in/items.csv", "'A'", "rows 1 and 3", "unique")
def embed_duplicate_item_ids(w):
    return embed_args(w, w.write("items.csv", ITEMS_HEADER + "A,a,x\nB,b,y\nA,c,z\n"))


@case("in/items.csv", "row 2", "'item_id'")
def embed_empty_item_id(w):
    return embed_args(w, w.write("items.csv", ITEMS_HEADER + "A,a,x\n,b,y\n"))


@case("in/items.csv", "row 2", "'B'", "title, description", "fill it in")
def embed_empty_text_in_a_row(w):
    return embed_args(w, w.write("items.csv", ITEMS_HEADER + "A,a,x\nB,,\nC,c,z\n"))


@case("in/items.csv", "'nope'", "--text")
def embed_template_names_a_missing_column(w):
    return embed_args(w, w.items(), "--text", "{title}. {nope}")


@case("in/items.csv", "'nope'", "--text-cols")
def embed_text_cols_names_a_missing_column(w):
    return embed_args(w, w.items(), "--text-cols", "title,nope")


@case("--text", "{title")
def embed_template_not_closed(w):
    return embed_args(w, w.items(), "--text", "{title")


@case("in/items.csv", "'title'", "--text")
def embed_no_text_columns(w):
    return embed_args(w, w.write("items.csv", "item_id,name\nA,x\n"))


@case("in/items.csv", "Expected 3 columns, got 4")
def embed_ragged_row(w):
    return embed_args(w, w.write("items.csv", ITEMS_HEADER + "A,a,x\nB,b,y,extra\n"))


@case("in/items.csv", "row 2 opens a quote that is never closed")
def embed_unterminated_quote(w):
    return embed_args(w, w.write("items.csv", ITEMS_HEADER + 'A,a,x\nB,b,"never closed\nC,c,z\n'))


@case("in/history.csv", "row 2 opens a quote that is never closed")
def profile_unterminated_quote_at_end_of_file(w):
    return profile_args(w, w.write("history.csv", HISTORY_HEADER + 'U1,P001,1\nU1,P002,"5'))


@case("in/history.csv.gz", "row 2 opens a quote that is never closed")
def profile_unterminated_quote_in_a_gzip_file(w):
    text = HISTORY_HEADER + 'U1,P001,1\nU1,P002,"5'
    return profile_args(w, w.write("history.csv.gz", gzip.compress(text.encode())))


@case("in/old", "a folder of shards can't be reused yet")
def embed_reuse_of_a_folder_of_shards(w):
    folder = w.root / "in" / "old"
    folder.mkdir(parents=True)
    shutil.copyfile(w.assets["items_bert"], folder / "part-000000000000.parquet")
    return embed_args(w, w.items(), "--reuse", "in/old")


@case("in/items.csv", "UTF-8")
def embed_latin1_bytes(w):
    text = ITEMS_HEADER + "A,Caf\u00e9 cr\u00e8me,x\n"
    return embed_args(w, w.write("items.csv", text.encode("latin-1")))


@case("in/items.csv.gz", "cannot read")
def embed_gzip_that_is_not_gzip(w):
    return embed_args(w, w.write("items.csv.gz", ITEMS_HEADER + "A,a,x\n"))


@case("in/items.jsonl", "JSON")
def embed_broken_jsonl(w):
    return embed_args(w, w.write("items.jsonl", '{"item_id": "A", "title": "a"}\n{"item_id": \n'))


@case("in/items.parquet", "not")
def embed_garbage_parquet_items(w):
    return embed_args(w, w.write("items.parquet", b"PAR1 this is not parquet at all"))


@case("in/items.jsonl", "'item_id'")
def embed_nested_item_id_in_jsonl(w):
    return embed_args(w, w.write("items.jsonl", '{"item_id": {"sku": 1}, "title": "a"}\n'))


@case("in/items.parquet", "'title'")
def embed_list_title_in_parquet(w):
    table = pa.table({"item_id": ["A", "B"], "title": [["a", "b"], ["c"]]})
    pq.write_table(table, w.root / "in" / "items.parquet")
    return embed_args(w, "in/items.parquet")


@case("--nope")
def embed_unknown_option(w):
    return embed_args(w, w.items(), "--nope")


@case("out/no-such-folder/items.parquet", "does not exist")
def embed_output_folder_missing(w):
    return ["embed", w.items(), "-o", "out/no-such-folder/items.parquet", "--model", w.bert]


@case("in/items.csv", "overwrite the input")
def embed_output_is_the_input(w):
    return ["embed", w.items(), "-o", "in/items.csv", "--model", w.bert]


# embed: the model and its options


@case("in/no-config-model", "config.json")
def embed_model_folder_without_config(w):
    folder = w.root / "in" / "no-config-model"
    folder.mkdir(parents=True)
    shutil.copyfile(w.bert / "model.safetensors", folder / "model.safetensors")
    return embed_args(w, w.items(), model="in/no-config-model")


@case("./in/no-such-model", "not found")
def embed_model_folder_missing(w):
    return embed_args(w, w.items(), model="./in/no-such-model")


@case("'someone/some-model'", "--allow-download")
def embed_hub_name_without_allow_download(w):
    return embed_args(w, w.items(), model="someone/some-model")


@case("in/weightless-model", "weights")
def embed_model_folder_without_weights(w):
    folder = w.root / "in" / "weightless-model"
    folder.mkdir(parents=True)
    shutil.copyfile(w.bert / "config.json", folder / "config.json")
    return embed_args(w, w.items(), model="in/weightless-model")


@case("in/pickle-model", "safetensors", "--allow-pickle")
def embed_model_with_pickle_weights_only(w):
    folder = Path(w.copy(w.bert, "pickle-model"))
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    return embed_args(w, w.items(), model="in/pickle-model")


@case("in/bad-config-model")
def embed_model_config_not_json(w):
    folder = Path(w.copy(w.bert, "bad-config-model"))
    (folder / "config.json").write_text("{this is not json", encoding="utf-8")
    return embed_args(w, w.items(), model="in/bad-config-model")


@case("in/corrupt-weights-model")
def embed_model_weights_corrupt(w):
    folder = Path(w.copy(w.bert, "corrupt-weights-model"))
    (folder / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header}")
    return embed_args(w, w.items(), model="in/corrupt-weights-model")


@case("--pooling", "'nope'", "mean, cls, last")
def embed_unknown_pooling(w):
    return embed_args(w, w.items(), "--pooling", "nope")


@case("--device", "'tpu'")
def embed_unknown_device(w):
    return embed_args(w, w.items(), "--device", "tpu")


@case("--max-length 0")
def embed_max_length_zero(w):
    return embed_args(w, w.items(), "--max-length", "0")


@case("--batch-size 0")
def embed_batch_size_zero(w):
    return embed_args(w, w.items(), "--batch-size", "0")


# profile


def profile_args(w: Workspace, history: str, *extra: str, items: str | None = None) -> list:
    return [
        "profile",
        history,
        "--items",
        items or w.asset("items_bert"),
        "-o",
        "out/users.parquet",
        "-q",
        *extra,
    ]


@case("in/missing.csv", "not found")
def profile_missing_history(w):
    return profile_args(w, "in/missing.csv")


@case("in/missing.parquet", "not found")
def profile_missing_items(w):
    return profile_args(w, w.history(), items="in/missing.parquet")


@case("in/users_bert.parquet", "users vectors", "llmrec embed")
def profile_items_is_a_users_table(w):
    return profile_args(w, w.history(), items=w.asset("users_bert"))


@case("in/items.csv", "not a readable Parquet", "llmrec embed")
def profile_items_is_a_csv(w):
    return profile_args(w, w.history(), items=w.items())


@case("in/history.csv", "'nope'", "--user-col")
def profile_unknown_user_column(w):
    return profile_args(w, w.history(), "--user-col", "nope")


@case("in/history.csv", "'nope'", "--item-col")
def profile_unknown_item_column(w):
    return profile_args(w, w.history(), "--item-col", "nope")


@case("in/history.csv", "'nope'", "--time-col")
def profile_unknown_time_column(w):
    return profile_args(w, w.history(), "--time-col", "nope")


@case("in/history.csv", "no rows")
def profile_header_only(w):
    return profile_args(w, w.write("history.csv", HISTORY_HEADER))


@case("in/history.csv", "empty")
def profile_empty_file(w):
    return profile_args(w, w.write("history.csv", b""))


@case("in/history.csv", "row 2", "'user_id'")
def profile_empty_user_id(w):
    rows = "U1,P001,2024-01-01\n,P002,2024-01-02\n"
    return profile_args(w, w.write("history.csv", HISTORY_HEADER + rows))


@case("--strategy decay", "--half-life")
def profile_decay_without_half_life(w):
    return profile_args(w, w.history(), "--strategy", "decay")


@case("--half-life")
def profile_decay_with_negative_half_life(w):
    return profile_args(w, w.history(), "--strategy", "decay", "--half-life", "-1")


@case("--half-life")
def profile_decay_with_nan_half_life(w):
    return profile_args(w, w.history(), "--strategy", "decay", "--half-life", "nan")


@case("--items")
def profile_without_items_option(w):
    return ["profile", w.history(), "-o", "out/users.parquet"]


@case("--strategy", "'median'", "mean, decay")
def profile_unknown_strategy(w):
    return profile_args(w, w.history(), "--strategy", "median")


@case("--max-history 0")
def profile_max_history_zero(w):
    return profile_args(w, w.history(), "--max-history", "0")


@case("in/history.csv", "none of its 2 rows", "same ids")
def profile_history_items_all_unknown(w):
    rows = "U1,X1,2024-01-01\nU2,X2,2024-01-02\n"
    return profile_args(w, w.write("history.csv", HISTORY_HEADER + rows))


@case("in/history.csv", "row 2", "'timestamp'", "'yesterday'")
def profile_unparsable_timestamp(w):
    rows = "U1,P001,2024-01-01\nU1,P002,yesterday\n"
    return profile_args(w, w.write("history.csv", HISTORY_HEADER + rows))


@case("in/history.csv", "row 2", "'timestamp'")
def profile_empty_timestamp(w):
    rows = "U1,P001,2024-01-01\nU1,P002,\n"
    return profile_args(w, w.write("history.csv", HISTORY_HEADER + rows))


@case("in/history.csv", "Expected 3 columns, got 2")
def profile_ragged_row(w):
    rows = "U1,P001,2024-01-01\nU1,P002\n"
    return profile_args(w, w.write("history.csv", HISTORY_HEADER + rows))


@case("in/history.csv", "UTF-8")
def profile_latin1_bytes(w):
    rows = "J\u00fcrgen,P001,2024-01-01\n"
    return profile_args(w, w.write("history.csv", (HISTORY_HEADER + rows).encode("latin-1")))


@case("in/history.csv", "UTF-8")
def profile_latin1_bytes_in_timestamp(w):
    rows = "U1,P001,2024-01-01\nU1,P002,2024-01-0\u00e9\n"
    return profile_args(w, w.write("history.csv", (HISTORY_HEADER + rows).encode("latin-1")))


@case("in/history.csv", "UTF-8")
def profile_latin1_bytes_in_header(w):
    text = "user_id,item_id,d\u00e9j\u00e0\nU1,P001,x\n"
    return profile_args(w, w.write("history.csv", text.encode("latin-1")))


@case("in/items_bert.parquet", "overwrite the input")
def profile_output_is_the_item_table(w):
    items = w.asset("items_bert")
    return ["profile", w.history(), "--items", items, "-o", items, "-q"]


# rank


def rank_args(
    w: Workspace,
    *extra: str,
    items: str | None = None,
    users: str | None = None,
    history: str | None = None,
    output: str = "out/rankings.csv",
) -> list:
    args = ["rank", "--items", items or w.asset("items_bert"), "-o", output, "-q", *extra]
    if users:
        args += ["--users", users]
    if history:
        args += ["--user-history", history]
    if not users and not history:
        args += ["--users", w.asset("users_bert")]
    return args


@case("in/missing.parquet", "not found")
def rank_missing_items(w):
    return rank_args(w, items="in/missing.parquet")


@case("in/missing.parquet", "not found")
def rank_missing_users(w):
    return rank_args(w, users="in/missing.parquet")


@case("in/missing.csv", "not found")
def rank_missing_history(w):
    return rank_args(w, history="in/missing.csv")


@case("--users", "--user-history")
def rank_without_users_or_history(w):
    return ["rank", "--items", w.asset("items_bert"), "-o", "out/rankings.csv"]


@case("in/users_bert.parquet", "in/items_gpt2.parquet", "different models", "profile")
def rank_tables_from_different_models(w):
    return rank_args(w, items=w.asset("items_gpt2"), users=w.asset("users_bert"))


@case("in/users_bert.parquet", "in/items_dim16.parquet", "different dimensions", "16")
def rank_tables_of_different_dimensions(w):
    return rank_args(w, items=w.asset("items_dim16"), users=w.asset("users_bert"))


@case("in/plain.parquet", "not an llmrec vector table", "llmrec embed")
def rank_non_vector_parquet_as_items(w):
    pd.read_csv(w.sample_items, dtype=str).to_parquet(w.root / "in" / "plain.parquet")
    return rank_args(w, items="in/plain.parquet")


@case("in/garbage.parquet", "not a readable Parquet file")
def rank_garbage_parquet_as_items(w):
    return rank_args(w, items=w.write("garbage.parquet", b"this is not a parquet file\n" * 50))


@case("in/truncated.parquet", "not a readable Parquet file")
def rank_truncated_parquet_as_items(w):
    data = w.assets["items_bert"].read_bytes()
    return rank_args(w, items=w.write("truncated.parquet", data[: len(data) // 2]))


@case("in/corrupt.parquet")
def rank_parquet_with_corrupt_pages_as_items(w):
    # header and footer intact, so the metadata reads fine; the column data is garbage
    data = bytearray(w.assets["items_bert"].read_bytes())
    footer = int.from_bytes(data[-8:-4], "little") + 8
    for i in range(4, len(data) - footer):
        data[i] = (data[i] * 7 + 13) % 256
    return rank_args(w, items=w.write("corrupt.parquet", bytes(data)))


@case("in/users_bert.parquet", "users vectors", "expected items vectors")
def rank_users_table_as_items(w):
    return rank_args(w, items=w.asset("users_bert"))


@case("in/items.parquet", "row 2", "'B'", "NaN")
def rank_items_with_nan_vectors(w):
    vectors = np.ones((3, 32), dtype=np.float32)
    vectors[1, 5] = np.nan
    meta = read_meta(str(w.assets["items_bert"]))  # the real model's, so only the NaN is wrong
    table = VectorTable("items", np.array(["A", "B", "C"], dtype=object), vectors, meta)
    write_vectors(table, str(w.root / "in" / "items.parquet"))
    return rank_args(w, items="in/items.parquet")


@case("-k 0", "at least 1")
def rank_k_zero(w):
    return rank_args(w, "-k", "0")


@case("-k -3", "at least 1")
def rank_k_negative(w):
    return rank_args(w, "-k", "-3")


@case("'-k'", "integer", "--help")
def rank_k_not_an_integer(w):
    return rank_args(w, "-k", "abc")


@case("--strategy decay", "--half-life")
def rank_decay_without_half_life(w):
    return rank_args(w, "--strategy", "decay", history=w.history())


@case("in/history.csv", "none of its 2 rows")
def rank_history_items_all_unknown(w):
    rows = "U1,X1,2024-01-01\nU2,X2,2024-01-02\n"
    return rank_args(w, history=w.write("history.csv", HISTORY_HEADER + rows))


@case("in/history.csv", "row 1", "'timestamp'", "'soon'")
def rank_unparsable_timestamp(w):
    rows = "U1,P001,soon\nU1,P002,2024-01-02\n"
    return rank_args(w, history=w.write("history.csv", HISTORY_HEADER + rows))


@case("in/history.csv", "row 1", "'timestamp'", "'soon'")
def rank_unparsable_timestamp_with_users_table(w):
    rows = "U1,P001,soon\nU1,P002,2024-01-02\n"
    return rank_args(
        w, users=w.asset("users_bert"), history=w.write("history.csv", HISTORY_HEADER + rows)
    )


@case("out/no-such-folder/rankings.csv", "does not exist")
def rank_output_folder_missing(w):
    return rank_args(w, output="out/no-such-folder/rankings.csv")


@case("in/history.csv", "overwrite the input")
def rank_output_is_the_history(w):
    history = w.history()
    return rank_args(w, history=history, output=history)


# evaluate


def evaluate_args(
    w: Workspace, *extra: str, rankings: str | None = None, truth: str | None = None
) -> list:
    return [
        "evaluate",
        rankings or w.write("rankings.csv", RANKINGS),
        "--truth",
        truth or w.write("truth.csv", TRUTH),
        "-o",
        "out/report.json",
        "-q",
        *extra,
    ]


@case("in/missing.csv", "not found")
def evaluate_missing_rankings(w):
    return evaluate_args(w, rankings="in/missing.csv")


@case("in/missing.csv", "not found")
def evaluate_missing_truth(w):
    return evaluate_args(w, truth="in/missing.csv")


@case("-k '0'", "at least 1")
def evaluate_k_zero(w):
    return evaluate_args(w, "-k", "0")


@case("-k '5,ten'", "integers")
def evaluate_k_not_an_integer(w):
    return evaluate_args(w, "-k", "5,ten")


@case("--format", "'xml'", "table, json, markdown")
def evaluate_unknown_format(w):
    return evaluate_args(w, "--format", "xml")


@case("in/rankings.csv", "'item_id'")
def evaluate_rankings_without_item_column(w):
    return evaluate_args(w, rankings=w.write("rankings.csv", "user_id,rank\nU1,1\n"))


@case("in/rankings.csv", "'rank'", "numeric")
def evaluate_rank_not_numeric(w):
    text = "user_id,rank,item_id\nU1,first,A\nU1,second,B\n"
    return evaluate_args(w, rankings=w.write("rankings.csv", text))


@case("in/truth.csv", "no rows")
def evaluate_truth_header_only(w):
    return evaluate_args(w, truth=w.write("truth.csv", "user_id,item_id\n"))


@case("in/rankings.csv", "empty")
def evaluate_rankings_empty_file(w):
    return evaluate_args(w, rankings=w.write("rankings.csv", b""))


@case("in/truth.csv", "UTF-8")
def evaluate_truth_latin1_bytes(w):
    text = "user_id,item_id\nU1,Caf\u00e9\n".encode("latin-1")
    return evaluate_args(w, truth=w.write("truth.csv", text))


@case("in/rankings.csv", "Expected 4 columns, got 3")
def evaluate_rankings_ragged_row(w):
    return evaluate_args(w, rankings=w.write("rankings.csv", RANKINGS + "U2,1,A\n"))


@case("in/rankings.csv", "overwrite the input")
def evaluate_output_is_the_rankings(w):
    rankings = w.write("rankings.csv", RANKINGS)
    return ["evaluate", rankings, "--truth", w.write("truth.csv", TRUTH), "-o", rankings, "-q"]


# split


def split_args(
    w: Workspace,
    interactions: str,
    *extra: str,
    history_out: str = "out/history.csv",
    heldout_out: str = "out/heldout.csv",
) -> list:
    return [
        "split",
        interactions,
        "--history-out",
        history_out,
        "--heldout-out",
        heldout_out,
        "-q",
        *extra,
    ]


@case("in/missing.csv", "not found")
def split_missing_input(w):
    return split_args(w, "in/missing.csv")


@case("in/history.csv", "no rows")
def split_header_only(w):
    return split_args(w, w.write("history.csv", HISTORY_HEADER))


@case("in/history.csv", "empty")
def split_empty_file(w):
    return split_args(w, w.write("history.csv", b""))


@case("in/history.csv", "'nope'", "--user-col")
def split_unknown_user_column(w):
    return split_args(w, w.history(), "--user-col", "nope")


@case("in/history.csv", "'nope'", "--time-col")
def split_unknown_time_column(w):
    return split_args(w, w.history(), "--time-col", "nope")


@case("in/history.csv", "row 2", "'user_id'")
def split_empty_user_id(w):
    rows = "U1,P001,2024-01-01\n,P002,2024-01-02\n"
    return split_args(w, w.write("history.csv", HISTORY_HEADER + rows))


@case("in/history.csv", "row 3", "'timestamp'", "'31/31/2024'")
def split_unparsable_timestamp(w):
    rows = "U1,P001,2024-01-01\nU1,P002,2024-01-02\nU1,P003,31/31/2024\n"
    return split_args(w, w.write("history.csv", HISTORY_HEADER + rows))


@case("in/history.csv", "Expected 3 columns, got 4")
def split_ragged_row(w):
    rows = "U1,P001,2024-01-01\nU1,P002,2024-01-02,oops\n"
    return split_args(w, w.write("history.csv", HISTORY_HEADER + rows))


@case("in/history.csv", "UTF-8")
def split_latin1_bytes(w):
    rows = "U1,Cr\u00e8me,2024-01-01\nU1,P002,2024-01-02\n"
    return split_args(w, w.write("history.csv", (HISTORY_HEADER + rows).encode("latin-1")))


@case("in/history.csv", "UTF-8")
def split_latin1_bytes_in_an_extra_column(w):
    text = "user_id,item_id,note\nU1,P001,caf\u00e9\nU1,P002,ok\n"
    return split_args(w, w.write("history.csv", text.encode("latin-1")))


@case("--strategy", "'random'", "leave-last, temporal")
def split_unknown_strategy(w):
    return split_args(w, w.history(), "--strategy", "random")


@case("--cutoff", "--fraction")
def split_temporal_without_cutoff_or_fraction(w):
    return split_args(w, w.history(), "--strategy", "temporal")


@case("--cutoff", "'someday'")
def split_temporal_unparsable_cutoff(w):
    return split_args(w, w.history(), "--strategy", "temporal", "--cutoff", "someday")


@case("--fraction 1.5", "between 0 and 1")
def split_fraction_out_of_range(w):
    return split_args(w, w.history(), "--strategy", "temporal", "--fraction", "1.5")


@case("--n 0")
def split_n_zero(w):
    return split_args(w, w.history(), "--n", "0")


@case("--min-history -1")
def split_negative_min_history(w):
    return split_args(w, w.history(), "--min-history", "-1")


@case("in/history.csv", "nothing was held out", "--min-history")
def split_nothing_held_out(w):
    return split_args(w, w.history(), "--min-history", "1000")


@case("out/no-such-folder/heldout.csv", "does not exist")
def split_second_output_folder_missing(w):
    return split_args(w, w.history(), heldout_out="out/no-such-folder/heldout.csv")


@case("in/history.csv", "overwrite the input")
def split_history_out_is_the_input(w):
    history = w.history()
    return split_args(w, history, history_out=history)


# --- the table-driven test --------------------------------------------------------------------


def build_tiny_bert_dim16(tiny_bert: Path, folder: Path) -> Path:
    """The tiny BERT's tokenizer with a 16-wide random model: vectors of another dimension."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    config = BertConfig.from_pretrained(tiny_bert)
    config.hidden_size, config.intermediate_size = 16, 32
    torch.manual_seed(1)
    BertModel(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def assets(tmp_path_factory, tiny_bert, tiny_gpt2, sample_items, sample_interactions):
    """Valid vector tables made once with the real commands: items from three models, users."""
    folder = tmp_path_factory.mktemp("cli-errors-assets")
    dim16 = build_tiny_bert_dim16(tiny_bert, folder / "tiny-bert-16")
    runner = CliRunner()

    def ok(*args) -> None:
        result = runner.invoke(app, [str(a) for a in args])
        assert result.exit_code == 0, result.output

    for name, model in (
        ("items_bert", tiny_bert),
        ("items_gpt2", tiny_gpt2),
        ("items_dim16", dim16),
    ):
        ok("embed", sample_items, "-o", folder / f"{name}.parquet", "--model", model, "-q")
    ok(
        "profile",
        sample_interactions,
        "--items",
        folder / "items_bert.parquet",
        "-o",
        folder / "users_bert.parquet",
        "-q",
    )
    return {path.stem: path for path in folder.glob("*.parquet")}


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` (hidden ones too) with a hash of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize(("build", "expect"), CASES)
def test_bad_input_gives_one_line_exit_2_and_no_output(
    build,
    expect,
    assets,
    tiny_bert,
    tiny_gpt2,
    sample_items,
    sample_interactions,
    tmp_path,
    monkeypatch,
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    w = Workspace(tmp_path, assets, tiny_bert, tiny_gpt2, sample_items, sample_interactions)
    args = [str(a) for a in build(w)]
    inputs_before = snapshot(tmp_path / "in")

    _network_calls.clear()
    _watching[0] = True
    try:
        result = CliRunner().invoke(app, args)
    finally:
        _watching[0] = False

    command = args[0]
    lines = result.stderr.splitlines()
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    assert len(lines) == 1 and lines[0].strip(), f"want one line on stderr, got {lines!r}"
    message = lines[0]
    assert message.startswith(f"llmrec {command}: error: "), message
    for part in expect:
        assert part in message, f"{part!r} not in {message!r}"
    assert result.stdout == ""
    # nothing was written: no output, no temp file, and every input is as it was
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []
    assert snapshot(tmp_path / "in") == inputs_before
    assert not list(tmp_path.rglob(".*.tmp"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]
    assert _network_calls == []


# --- the real executable ----------------------------------------------------------------------


def test_executable_prints_one_line_and_nothing_on_stdout(tmp_path):
    result = run_cli("evaluate", "missing.csv", "--truth", "x.csv", cwd=tmp_path, timeout=120)
    lines = result.stderr.decode().splitlines()
    assert result.returncode == 2
    assert result.stdout == b""
    assert len(lines) == 1
    assert lines[0].startswith("llmrec evaluate: error: missing.csv")
    assert sorted(tmp_path.iterdir()) == []


def test_unterminated_quote_on_stdin_is_named(tmp_path, tiny_bert):
    text = ITEMS_HEADER + 'A,a,x\nB,b,"never closed\nC,c,z\n'
    out = tmp_path / "items.parquet"
    result = run_cli("embed", "-", "--model", str(tiny_bert), "-o", str(out), stdin=text.encode())
    assert result.returncode == 2
    assert result.stderr.decode().strip().splitlines() == [
        "llmrec embed: error: <stdin>: row 2 opens a quote that is never closed; "
        'close it (a quote inside a quoted value is written "")'
    ]
    assert not out.exists()


def test_debug_shows_the_traceback_that_is_hidden_otherwise(tmp_path):
    (tmp_path / "history.csv").write_text(HISTORY_HEADER + "U1,P001,yesterday\n")
    args = ("split", "history.csv", "--history-out", "h.csv", "--heldout-out", "t.csv")

    plain = run_cli(*args, cwd=tmp_path, timeout=120)
    debug = run_cli(*args, "--debug", cwd=tmp_path, timeout=120)

    assert plain.returncode == 2
    assert b"Traceback" not in plain.stderr
    assert len(plain.stderr.decode().splitlines()) == 1
    assert debug.returncode != 0
    assert b"Traceback (most recent call last)" in debug.stderr
    assert b"'yesterday' is not a date" in debug.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.csv"]


def test_rank_to_a_closed_pipe_stops_quietly(tmp_path):
    """`llmrec rank ... -o - | head -n 3`: the reader leaves early; no traceback follows."""
    rng = np.random.default_rng(0)
    meta = {"model": "m", "model_fingerprint": "f" * 64, "pooling": "mean"}
    for kind, prefix, n in (("items", "I", 1000), ("users", "U", 3000)):
        ids = np.array([f"{prefix}{i:05d}" for i in range(n)], dtype=object)
        vectors = rng.standard_normal((n, 8)).astype(np.float32)
        write_vectors(
            VectorTable(kind, ids, vectors, dict(meta)), str(tmp_path / f"{kind}.parquet")
        )
    exe = Path(sys.executable).with_name("llmrec")
    # 3000 users x 50 rows is several MB of CSV: far more than a pipe buffer holds
    process = subprocess.Popen(
        [
            str(exe),
            "rank",
            "--items",
            "items.parquet",
            "--users",
            "users.parquet",
            "-k",
            "50",
            "-o",
            "-",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        head = [process.stdout.readline() for _ in range(3)]
        process.stdout.close()
        returncode = process.wait(timeout=120)
        stderr = process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
    assert head[0] == b"user_id,rank,item_id,score\n"
    assert head[1].startswith(b"U00000,1,I") and head[2].startswith(b"U00000,2,I")
    assert b"Traceback" not in stderr
    assert b"Exception ignored" not in stderr
    assert stderr == b""
    assert returncode in (141, -13), (returncode, stderr)  # 141: stopped on the broken pipe
    assert sorted(p.name for p in tmp_path.iterdir()) == ["items.parquet", "users.parquet"]


def test_log_format_json_writes_one_object_per_event(tmp_path, sample_items, tiny_bert):
    import json as jsonlib
    import os
    import subprocess
    import sys

    failed = run_cli("--log-format", "json", "evaluate", tmp_path / "missing.csv", "--truth", "x")
    assert failed.returncode == 2
    (line,) = failed.stderr.decode().splitlines()
    record = jsonlib.loads(line)
    assert record["level"] == "error" and record["exit_code"] == 2
    assert record["command"] == "evaluate" and "missing.csv" in record["message"]
    assert {"time", "level", "command", "message"} <= set(record)

    exe = str(Path(sys.executable).with_name("llmrec"))  # the environment variable works too
    done = subprocess.run(
        [exe, "embed", str(sample_items), "--model", str(tiny_bert), "-o", str(tmp_path / "i.pq")],
        capture_output=True,
        env={**os.environ, "LLMREC_LOG_FORMAT": "json"},
    )
    assert done.returncode == 0
    records = [jsonlib.loads(line) for line in done.stderr.decode().splitlines()]
    assert [r["level"] for r in records] == ["info"]
    assert records[0]["command"] == "embed" and "60 items" in records[0]["message"]

    bad = run_cli("--log-format", "xml", "evaluate", "a.csv", "--truth", "b.csv")
    assert bad.returncode == 2 and bad.stderr.decode().count("\n") == 1
