"""The option objects of embed, split and rank, and where a history keeps its columns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import InputError, flag
from .choices import (
    ANN_INDEXES,
    BASELINES,
    BLEND_PARTS,
    DEVICES,
    DTYPES,
    GPU_DEVICES,
    SPLIT_STRATEGIES,
    AnnIndex,
    Baseline,
    Device,
    DType,
    Pooling,
    SplitStrategy,
    check_choice,
)


@dataclass(frozen=True)
class EmbedOptions:
    """How `embed` turns item rows into vectors: which columns make the text, which model
    (the bundled one by default) pools it how, in what dtype and batches, and what it may reuse."""

    id_col: str = "item_id"
    template: str | None = None  # e.g. "{title}. {description}"
    text_cols: list[str] | None = None  # joined with ". " [default: title, description]
    model: str | None = None  # a local folder, or a hub id with allow_download
    pooling: Pooling | None = None  # [default: what the model folder declares, else mean]
    max_length: int = 256
    batch_size: int = 64
    normalize: bool = True
    device: Device = "auto"
    dtype: DType = "float32"
    reuse: str | None = None  # a previous item table [default: the output, if reuse_output]
    reuse_output: bool = True
    chunk_rows: int | None = None  # rows encoded and written at a time [default: 4096]
    allow_download: bool = False
    allow_pickle: bool = False

    def __post_init__(self) -> None:
        check_choice("device", self.device, DEVICES)
        check_choice("dtype", self.dtype, DTYPES)
        if self.reuse and not self.reuse_output:
            raise InputError(f"give either {flag('reuse')} or {flag('reuse_output')}, not both")
        for name in ("batch_size", "chunk_rows", "max_length"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise InputError(f"{flag(name)} {value}: must be at least 1")


@dataclass(frozen=True)
class SplitOptions:
    """How `split` holds out interactions: each user's latest `n` (leave-last), or everything
    from a `cutoff` time or the latest `fraction` of rows on (temporal)."""

    strategy: SplitStrategy = "leave-last"
    n: int = 1
    cutoff: str | None = None
    fraction: float | None = None
    min_history: int = 1  # hold out only users who keep at least this many history rows
    user_col: str = "user_id"
    item_col: str = "item_id"
    time_col: str | None = None

    def __post_init__(self) -> None:
        check_choice("strategy", self.strategy, SPLIT_STRATEGIES)


@dataclass(frozen=True)
class HistoryColumns:
    """Where a history file keeps users, items and time; `text_col` names a column of free text
    (e.g. "Apple iPhone 12") to embed instead of item ids."""

    user_col: str = "user_id"
    item_col: str = "item_id"
    time_col: str | None = None
    text_col: str | None = None


@dataclass(frozen=True)
class SearchOptions:
    """How `rank` finds each user's top k by vectors: exactly, on `device` (auto: a CUDA GPU
    when there is one), or approximately through a faiss `index` (ivf or hnsw, on the CPU),
    kept at `index_path` and reused while the item vectors are unchanged. `nprobe` (ivf) and
    `ef_search` (hnsw) trade speed for recall [default: chosen by the index's size];
    `recall_check` users, drawn at random, are ranked exactly too, to measure recall@k."""

    device: str = "auto"
    index: AnnIndex | None = None
    index_path: str | None = None
    nprobe: int | None = None
    ef_search: int | None = None
    recall_check: int = 0

    def __post_init__(self) -> None:
        check_choice("device", self.device, GPU_DEVICES)
        if self.index is None:
            for name in ("index_path", "nprobe", "ef_search"):
                if getattr(self, name) is not None:
                    raise InputError(f"{flag(name)} needs {flag('index')} ivf or hnsw")
            if self.recall_check:
                raise InputError(f"{flag('recall_check')} needs {flag('index')} ivf or hnsw")
            return
        check_choice("index", self.index, ANN_INDEXES)
        if self.device == "cuda":
            raise InputError(
                f"{flag('index')} searches on the CPU (faiss-cpu); drop {flag('device')} cuda, "
                "or rank exactly on the GPU without an index"
            )
        wrong = {"ivf": "ef_search", "hnsw": "nprobe"}[self.index]
        if getattr(self, wrong) is not None:
            raise InputError(f"{flag(wrong)} does not apply to {flag('index')} {self.index}")
        for name in ("nprobe", "ef_search"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise InputError(f"{flag(name)} {getattr(self, name)}: must be at least 1")
        if self.recall_check < 0:
            raise InputError(f"{flag('recall_check')} {self.recall_check}: must be 0 or more")


@dataclass(frozen=True)
class RankOptions:
    """How `rank` scores and what it writes: top `k` per user, by text (optionally `blend`ed with
    item-to-item models, popularity and a trained model), or by a `baseline`; explained,
    diversified, or scored fast in bfloat16. Checked when built.

    `blend` and `ease_lambda` left as None are chosen by `rank` (see `ranking.recipe`): the
    recommended recipe when it profiles users from a history, else text similarity alone (a
    model's scores alone with `model`) and λ = 500."""

    k: int = 10
    exclude_seen: bool = True
    baseline: Baseline | None = None
    seed: int = 0
    blend: Mapping[str, float] | None = None  # [default: chosen by rank, see above]
    ease_lambda: float | None = None  # [default: 500, or 100 in the recommended recipe]
    cache_dir: str | None = None
    explain: bool = False
    diversify_strength: float = 0.0
    interests: int = 0
    fast: bool = False
    budget_bytes: int | None = None  # memory for one block of scores [default: 256 MiB]
    model: str | None = None  # a model folder from `train`: the `seq` blend part
    search: SearchOptions = SearchOptions()

    def __post_init__(self) -> None:
        if self.fast and self.search.index:
            raise InputError(f"{flag('fast')} and {flag('index')}: choose one")
        if self.blend and self.blend.get("seq") and not self.model:
            raise InputError(
                f"{flag('blend')} seq needs {flag('model')} (a folder from llmrec train)"
            )
        if self.k < 1:
            raise InputError(f"{flag('k')} {self.k}: must be at least 1")
        if not 0 <= self.diversify_strength <= 1:
            raise InputError(
                f"{flag('diversify_strength')} {self.diversify_strength}: must be between 0 and 1"
            )
        if self.interests < 0:
            raise InputError(
                f"{flag('interests')} {self.interests}: must be 0 (one profile) or more"
            )
        if self.baseline is not None:
            check_choice("baseline", self.baseline, BASELINES)
            if self.explain:
                raise InputError(
                    f"{flag('explain')} needs scores that come from a history; not a baseline"
                )
            if self.diversify_strength > 0:
                raise InputError(
                    f"{flag('diversify_strength')} needs item vectors; not with a baseline"
                )
        if self.blend is not None:
            for name in self.blend:
                check_choice("blend", name, BLEND_PARTS)
            if not any(self.blend.values()):
                raise InputError(f"{flag('blend')}: give at least one part with a non-zero weight")

    @property
    def learns_from_history(self) -> bool:
        """Whether scoring needs the history's items (blends beyond text, explanations)."""
        return bool(self.explain or self.interests or set(self.blend or ()) - {"text", "seq"})
