"""How a user's history events are weighted into a profile: the `Weighting` option object,
which also computes the weights."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import InputError, flag
from .choices import (
    PROFILE_STRATEGIES,
    WEIGHT_MODES,
    ProfileStrategy,
    WeightMode,
    check_choice,
    parse_half_life,
)

if TYPE_CHECKING:
    import numpy as np

    from ..data.history import History


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
