"""Typed options: the choices each stage accepts, and the option objects the stages take.

A choice is a `Literal` type with its values in one place; an option object checks itself once,
when it is built, so neither the stages nor the command line check the same thing again. A
message names an option the way its users know it, through one mapping (`flag`): the command
line's `--half-life` for the field `half_life`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

from .errors import InputError, flag

if TYPE_CHECKING:
    import numpy as np

    from .data.history import History

Pooling = Literal["mean", "cls", "last"]
Device = Literal["auto", "cpu", "cuda", "mps"]
DType = Literal["float32", "bfloat16", "float16"]
Engine = Literal["local", "ray"]
ProfileStrategy = Literal["mean", "decay", "last", "weighted"]
WeightMode = Literal["auto", "centered", "log", "raw"]
SplitStrategy = Literal["leave-last", "temporal"]
Baseline = Literal["popular", "random"]
BlendPart = Literal["text", "cooc", "ease", "pop", "seq"]
ReportFormat = Literal["table", "json", "markdown"]
InfoFormat = Literal["table", "json"]

POOLINGS: tuple[str, ...] = get_args(Pooling)
DEVICES: tuple[str, ...] = get_args(Device)
DTYPES: tuple[str, ...] = get_args(DType)
ENGINES: tuple[str, ...] = get_args(Engine)
PROFILE_STRATEGIES: tuple[str, ...] = get_args(ProfileStrategy)
WEIGHT_MODES: tuple[str, ...] = get_args(WeightMode)
SPLIT_STRATEGIES: tuple[str, ...] = get_args(SplitStrategy)
BASELINES: tuple[str, ...] = get_args(Baseline)
BLEND_PARTS: tuple[str, ...] = get_args(BlendPart)
REPORT_FORMATS: tuple[str, ...] = get_args(ReportFormat)
INFO_FORMATS: tuple[str, ...] = get_args(InfoFormat)


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    """Fail in one line, naming the option, unless `value` is one of `choices`."""
    if value not in choices:
        raise InputError(f"{flag(name)} {value!r}: choose one of {', '.join(choices)}")


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
class RankOptions:
    """How `rank` scores and what it writes: top `k` per user, by text (optionally `blend`ed with
    item-to-item models and popularity), or by a `baseline`; explained, diversified, or scored
    fast in bfloat16. Checked when built."""

    k: int = 10
    exclude_seen: bool = True
    baseline: Baseline | None = None
    seed: int = 0
    blend: Mapping[str, float] | None = None  # [default: text=1, or seq=1 with a model]
    ease_lambda: float = 500.0
    cache_dir: str | None = None
    explain: bool = False
    diversify_strength: float = 0.0
    interests: int = 0
    fast: bool = False
    budget_bytes: int | None = None  # memory for one block of scores [default: 256 MiB]
    model: str | None = None  # a model folder from `train`: the `seq` blend part

    def __post_init__(self) -> None:
        if self.blend is None:
            object.__setattr__(self, "blend", {"seq": 1.0} if self.model else {"text": 1.0})
        if self.blend.get("seq") and not self.model:
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
        for name in self.blend:
            check_choice("blend", name, BLEND_PARTS)
        if not any(self.blend.values()):
            raise InputError(f"{flag('blend')}: give at least one part with a non-zero weight")

    @property
    def learns_from_history(self) -> bool:
        """Whether scoring needs the history's items (blends beyond text, explanations)."""
        return bool(self.explain or self.interests or set(self.blend) - {"text", "seq"})


ItemIds = Literal["auto", "on", "off", "only"]
ITEM_IDS: tuple[str, ...] = get_args(ItemIds)
TRAIN_DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrainOptions:
    """How `train` fits the sequential model: its size, its item inputs (text vectors through an
    adapter, plus learned ID vectors where `item_ids` says), and when training stops (the inner
    split's NDCG@10 stops improving for `patience` epochs, `epochs`, or `time_budget`)."""

    max_len: int = 50
    dim: int = 64
    layers: int = 2
    heads: int = 2
    dropout: float = 0.3
    item_ids: ItemIds = (
        "auto"  # auto: on when the history's items average ≥ 5 events; only: no text
    )
    id_dropout: float = 0.25  # share of ID vectors dropped per batch, so text alone still works
    epochs: int = 8  # online-retail (382k events): 8 epochs and the final one in about 4.5 min
    patience: int = 2
    time_budget: str | None = None  # e.g. 4m, 1h: no epoch starts after it
    batch_size: int = 128
    learning_rate: float = 2e-3
    weight_decay: float = 0.01
    temperature: float = 0.07
    full_softmax_max: int = 200_000  # above this many items, sampled softmax with logQ correction
    negatives: int = 8192  # sampled per batch when the softmax is sampled
    device: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("item_ids", self.item_ids, ITEM_IDS)
        check_choice("device", self.device, TRAIN_DEVICES)
        for name in ("max_len", "dim", "layers", "heads", "epochs", "batch_size", "negatives"):
            if getattr(self, name) < 1:
                raise InputError(f"{flag(name)} {getattr(self, name)}: must be at least 1")
        if self.dim % self.heads:
            raise InputError(f"{flag('dim')} {self.dim} must be a multiple of {flag('heads')}")
        for name in ("dropout", "id_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise InputError(f"{flag(name)} {getattr(self, name)}: must be in [0, 1)")
        if self.patience < 0:
            raise InputError(f"{flag('patience')} {self.patience}: must be 0 or more")
        if self.learning_rate <= 0 or self.temperature <= 0:
            raise InputError(f"{flag('learning_rate')} and {flag('temperature')} must be > 0")
        parse_duration(self.time_budget, "time_budget")


_TIME_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_half_life(value: str | float | None) -> tuple[float, str] | None:
    """`5` → (5, "events"); `30d`, `12h`, `2w`, `90m`, `45s` → (seconds, "seconds")."""
    if value is None or value == "":
        return None
    text = str(value).strip().lower()
    unit = "events"
    scale = 1.0
    if text and text[-1] in _TIME_UNITS:
        unit, scale, text = "seconds", _TIME_UNITS[text[-1]], text[:-1]
    try:
        amount = float(text) * scale
    except ValueError:
        amount = float("nan")
    if not math.isfinite(amount) or amount <= 0:
        raise InputError(
            f"{flag('half_life')} {value!r}: give a positive number of events (e.g. 5) "
            "or a time such as 30d, 12h, 2w"
        )
    return amount, unit


def parse_duration(value: str | float | None, name: str = "time_budget") -> float | None:
    """`90s`, `15m`, `2h`, `1d` or plain seconds → seconds (None stays None)."""
    if value is None or value == "":
        return None
    text = str(value).strip().lower()
    scale = 1.0
    if text and text[-1] in _TIME_UNITS:
        scale, text = _TIME_UNITS[text[-1]], text[:-1]
    try:
        seconds = float(text) * scale
    except ValueError:
        seconds = float("nan")
    if not math.isfinite(seconds) or seconds <= 0:
        raise InputError(f"{flag(name)} {value!r}: give a duration such as 90s, 15m or 2h")
    return seconds


@dataclass(frozen=True)
class Weighting:
    """How a user's events are weighted into their profile.

    mean: 1 each; decay: recency decay only; last: the last `last_n` events; weighted: from a
    weight column (ratings centred per user so disliked items push away, quantities
    log-scaled). A half-life (events or time) multiplies any of them by 0.5^(age/half-life).
    """

    strategy: ProfileStrategy = "mean"
    half_life: str | float | None = None
    last_n: int | None = None
    max_history: int | None = None
    weight_col: str | None = None
    weight_mode: WeightMode = "auto"

    @property
    def needs_time(self) -> bool:
        """Whether the weights depend on event times (a half-life such as 30d)."""
        decay = parse_half_life(self.half_life)
        return decay is not None and decay[1] == "seconds"

    def check(self) -> None:
        """Reject inconsistent options before any file is read."""
        check_choice("strategy", self.strategy, PROFILE_STRATEGIES)
        decay = parse_half_life(self.half_life)
        if self.strategy == "decay" and decay is None:
            raise InputError(
                f"{flag('strategy')} decay needs {flag('half_life')} "
                "(events, e.g. 5, or a time, e.g. 30d)"
            )
        if self.strategy == "last" and (self.last_n is None or self.last_n < 1):
            raise InputError(f"{flag('strategy')} last needs {flag('last_n')} N (N ≥ 1)")
        if self.strategy == "weighted" and not self.weight_col:
            raise InputError(
                f"{flag('strategy')} weighted needs {flag('weight_col')} (e.g. rating or quantity)"
            )
        check_choice("weight_mode", self.weight_mode, WEIGHT_MODES)
        if self.max_history is not None and self.max_history < 1:
            raise InputError(f"{flag('max_history')} {self.max_history}: must be at least 1")

    def weights(self, history: History) -> np.ndarray:
        """Per-event weights (float32); 0 leaves an event out."""
        import numpy as np

        self.check()
        weights = np.ones(len(history.item_index), dtype=np.float64)
        if self.strategy == "last":
            weights *= history.age < self.last_n
        if self.strategy == "weighted":
            weights *= self._column_weights(history)
        decay = parse_half_life(self.half_life)
        if decay:
            amount, unit = decay
            age = history.age if unit == "events" else history.seconds_old()
            weights *= np.power(0.5, age / amount)
        if self.max_history:
            weights *= history.age < self.max_history
        return weights.astype(np.float32)

    def _column_weights(self, history: History) -> np.ndarray:
        import numpy as np

        values = history.weight
        if values is None:
            raise InputError(f"{flag('weight_col')} {self.weight_col!r}: the column was not read")
        if np.isnan(values).any():
            raise InputError(
                f"{flag('weight_col')} {self.weight_col!r} has empty or non-numeric values"
            )
        mode = self.weight_mode
        if mode == "auto":
            mode = (
                "centered"
                if "rat" in self.weight_col.lower() or "star" in self.weight_col.lower()
                else "log"
            )
        if mode == "centered":
            means = history.user_sums(values) / history.counts
            return values - np.repeat(means, history.counts)
        if mode == "log":
            return np.log1p(np.maximum(values, 0))
        return values

    def metadata(self) -> dict[str, str]:
        meta = {"strategy": self.strategy}
        for key in ("half_life", "last_n", "max_history", "weight_col"):
            value = getattr(self, key)
            if value not in (None, ""):
                meta[key] = str(value)
        if self.weight_col:
            meta["weight_mode"] = self.weight_mode
        return meta


TuneMetric = Literal["ndcg", "recall", "hit_rate", "mrr"]
TUNE_METRICS: tuple[str, ...] = get_args(TuneMetric)


@dataclass(frozen=True)
class TuneOptions:
    """How `tune` searches the ranking recipe on an inner leave-last split of a history: the
    `metric` it maximises (name@k), for `trials` trials and/or a `time_budget` (15m, 2h, or
    seconds), whichever ends first, sampled from `seed`. Checked when built."""

    metric: str = "ndcg@10"
    trials: int | None = None  # [default: 50, unless only a time budget is given]
    time_budget: str | float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        name, _, k = self.metric.partition("@")
        if not k.isdigit() or int(k) < 1:
            raise InputError(f"{flag('metric')} {self.metric!r}: give a metric@k, e.g. ndcg@10")
        check_choice("metric", name, TUNE_METRICS)
        if self.trials is not None and self.trials < 1:
            raise InputError(f"{flag('trials')} {self.trials}: must be at least 1")
        _ = self.seconds  # reject a bad time budget now

    @property
    def name_and_k(self) -> tuple[str, int]:
        """The metric's name and cut-off: ("ndcg", 10) of `ndcg@10`."""
        name, _, k = self.metric.partition("@")
        return name, int(k)

    @property
    def n_trials(self) -> int | None:
        """Trials to run: as given, else 50, unless only a time budget bounds the search."""
        return self.trials if self.trials or self.time_budget is not None else 50

    @property
    def seconds(self) -> float | None:
        """The time budget in seconds (None: no time limit)."""
        return parse_duration(self.time_budget)
