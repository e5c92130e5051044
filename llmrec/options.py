"""Typed options: the choices each stage accepts, and the option objects the stages take.

A choice is a `Literal` type with its values in one place; an option object checks itself once,
when it is built, so neither the stages nor the command line check the same thing again. A
message names an option the way its users know it, through one mapping (`flag`): the command
line's `--half-life` for the field `half_life`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, get_args

from .errors import InputError

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
BlendPart = Literal["text", "cooc", "ease", "pop"]
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

# Fields whose command-line name is not "--" + the field with dashes.
_FLAG_NAMES = {
    "k": "-k",
    "diversify_strength": "--diversify",
    "exclude_seen": "--include-seen",
    "text_col": "--history-text-col",
    "history_path": "--user-history",
    "users_path": "--users",
    "items_path": "--items",
    "template": "--text",
    "reuse_output": "--no-reuse",
    "resamples": "--bootstrap",
    "address": "--ray-address",
}


def flag(name: str) -> str:
    """The command-line name of the option that sets field `name` (`half_life` → `--half-life`)."""
    return _FLAG_NAMES.get(name, "--" + name.replace("_", "-"))


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
    blend: Mapping[str, float] = field(default_factory=lambda: {"text": 1.0})
    ease_lambda: float = 500.0
    cache_dir: str | None = None
    explain: bool = False
    diversify_strength: float = 0.0
    interests: int = 0
    fast: bool = False
    budget_bytes: int | None = None  # memory for one block of scores [default: 256 MiB]

    def __post_init__(self) -> None:
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
        return bool(self.explain or self.interests or set(self.blend) - {"text"})


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
