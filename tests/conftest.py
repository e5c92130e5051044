"""Shared fixtures: tiny random BERT and GPT-2 model folders built offline, and data paths.

The tiny models are real Hugging Face folders (config, safetensors weights, fast tokenizer
saved with save_pretrained), so every test exercises the same loading code users hit.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
SHARED_DATA = ROOT.parent / "shared" / "data"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Tests often run torch in more than one process at once: two pytest-xdist workers, several
# llmrec runs started together, a run beside the test that watches it. OpenMP threads (torch's,
# here and in the llmrec subprocesses, which inherit this) spin while they wait for work, and
# a spinning thread holds a core another process's threads need: on 2 cores, two encodes side
# by side took 3x as long as one, and 1.5x with PASSIVE (waiting threads sleep). Only how idle
# threads wait changes; no result does.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Under pytest-xdist, each worker (and every llmrec process it starts, which inherits this) runs
# torch, MKL and numba on one thread: two workers then fill the two cores without a third
# thread to preempt. Tests about thread counts set their own.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(name, "1")


@pytest.fixture(scope="session", autouse=True)
def quiet_transformers():
    """transformers draws progress bars while saving the tiny models; keep test output clean."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def corpus() -> list[str]:
    """Sentences to build the tiny tokenizers' vocabularies from (the sample catalog)."""
    with open(SAMPLE / "items.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [f"{r['title']}. {r['description']} {r['category']}" for r in rows] + [
        "a b c d e f g h i j k l m n o p q r s t u v w x y z 0 1 2 3 4 5 6 7 8 9 . , ! ?"
    ]


def build_tiny_bert(folder: Path) -> Path:
    """A 2-layer, 32-wide random BERT with a WordPiece tokenizer."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, BertTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(
        corpus(), trainers.WordPieceTrainer(vocab_size=400, special_tokens=specials)
    )
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
    )
    tokenizer = BertTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=128,
    )
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_tiny_gpt2(folder: Path) -> Path:
    """A 2-layer, 32-wide random GPT-2 with a byte-level BPE tokenizer and no pad token."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2Model, GPT2TokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        corpus(),
        trainers.BpeTrainer(
            vocab_size=500,
            special_tokens=["<|endoftext|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tokenizer = GPT2TokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        model_max_length=128,
    )
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=tok.get_vocab_size(),
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=128,
        bos_token_id=0,
        eos_token_id=0,
    )
    GPT2Model(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory) -> Path:
    return build_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="session", params=["bert", "gpt2"])
def tiny_model(request, tiny_bert, tiny_gpt2) -> Path:
    """Each tiny model in turn: an encoder and a decoder."""
    return tiny_bert if request.param == "bert" else tiny_gpt2


@pytest.fixture(scope="session")
def sample_items() -> Path:
    return SAMPLE / "items.csv"


@pytest.fixture(scope="session")
def sample_interactions() -> Path:
    return SAMPLE / "interactions.csv"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real datasets beside the repository; tests using them skip when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


def run_cli(
    *args: str,
    stdin: bytes | None = None,
    cwd: Path | None = None,
    timeout: float = 300,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """Run the real `llmrec` executable of this environment in a subprocess."""
    exe = Path(sys.executable).with_name("llmrec")
    return subprocess.run(
        [str(exe), *map(str, args)],
        input=stdin,
        capture_output=True,
        cwd=cwd,
        timeout=timeout,
        env=env,
    )


# Shard names whose file-name order (part-10 < part-2 < part-9) is not their numeric order.
SHARD_NAMES = ("part-10", "part-2", "part-9")


def write_shards(folder: Path, frame, fmt: str, sizes=(25, 5, 30), names=SHARD_NAMES) -> str:
    """`frame` cut into a folder of shards of `sizes` rows, in file-name order (Parquet in row
    groups of 4 rows, or CSV or TSV): the folder's path."""
    folder.mkdir()
    start = 0
    for name, size in zip(names, sizes, strict=True):
        part, start = frame.iloc[start : start + size], start + size
        path = folder / f"{name}.{fmt}"
        if fmt == "parquet":
            part.to_parquet(path, index=False, row_group_size=4)
        else:
            part.to_csv(path, index=False, sep="\t" if fmt == "tsv" else ",")
    return str(folder)


@pytest.fixture(scope="session")
def sample_embedded(tmp_path_factory, sample_items) -> tuple[Path, subprocess.CompletedProcess]:
    """sample_data's items embedded once with the bundled model by the real executable,
    `--text "{title}. {description}"`: (the item table, the finished embed run, whose
    stdout and stderr a test may check). Tests that are not about embed itself share it."""
    items = tmp_path_factory.mktemp("sample-embedded") / "items.parquet"
    embedded = run_cli("embed", sample_items, "--text", "{title}. {description}", "-o", items)
    assert embedded.returncode == 0, embedded.stderr.decode()
    return items, embedded


@pytest.fixture(scope="session")
def ray_address():
    """One local Ray for the whole session (2 CPUs, bound to 127.0.0.1): its address, for
    commands that join it with --ray-address. Starting Ray takes seconds, so every Ray test
    shares this one; it skips where Ray is not installed."""
    import logging

    ray = pytest.importorskip("ray")
    context = ray.init(
        num_cpus=2,
        _node_ip_address="127.0.0.1",
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.ERROR,
    )
    yield context.address_info["gcs_address"]
    ray.shutdown()


@pytest.fixture(scope="session")
def movielens(shared_data, tmp_path_factory, tiny_bert) -> dict[str, Path]:
    """movielens-small split leave-last and its whole catalog embedded once by the local engine
    with the tiny BERT (what ranks on it tests is shapes and bytes, not the vectors' meaning):
    {"interactions", "items_csv", "history", "heldout", "items"}."""
    source = shared_data / "movielens-small"
    folder = tmp_path_factory.mktemp("movielens")
    paths = {
        "interactions": source / "interactions.csv",
        "items_csv": source / "items.csv",
        "history": folder / "history.csv",
        "heldout": folder / "heldout.csv",
        "items": folder / "items.parquet",
    }
    for args in (
        ["split", paths["interactions"], "--history-out", paths["history"],
         "--heldout-out", paths["heldout"]],
        ["embed", paths["items_csv"], "--text", "{title}. {genres}", "--model", tiny_bert,
         "-o", paths["items"]],
    ):  # fmt: skip
        result = run_cli(*args, "-q", timeout=600)
        assert result.returncode == 0, result.stderr.decode()
    return paths
