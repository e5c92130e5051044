"""The option objects of the stages that learn from a user's own data: train and tune."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError, flag
from .choices import GPU_DEVICES, ITEM_IDS, TUNE_METRICS, ItemIds, check_choice, parse_duration


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
        check_choice("device", self.device, GPU_DEVICES)
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
