"""What `tune` searches: recipes of profile weighting and blend, and the fixed recipe it starts
from (the README's recommendation), so the tuned recipe is never worse on the inner split.

A recipe's values are rounded as they are drawn (weights to 0.01, half-lives to 3 significant
digits), so what is scored is exactly what the config says and `rank` reads back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..data.history import History
from ..options import Weighting
from ..ranking.recipe import RECOMMENDED_BLEND, RECOMMENDED_EASE_LAMBDA, RECOMMENDED_WEIGHTING

if TYPE_CHECKING:
    import optuna

EASE_LAMBDAS = (20, 50, 100, 200, 500, 1000, 2000)  # a fixed set: EASE is fitted once per λ
INTERESTS = (0, 2, 3, 5)
HALF_LIFE_EVENTS = (0.5, 20.0)  # log-uniform
MAX_HISTORY = (5, 200)  # log-uniform, or no limit
WEIGHT_RANGES = {"text": 1.0, "cooc": 1.0, "ease": 1.0, "pop": 0.5}  # each from 0
SEQ_WEIGHT = 4.0  # a trained model's scores, from 0 (with tune --model)
TIME_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


@dataclass(frozen=True)
class Recipe:
    """One point of the search: how events are weighted and how the scores are blended."""

    strategy: str  # mean | decay
    half_life: float | str | None  # events (a number) or a time ("3.5d"), with decay
    max_history: int | None
    blend: dict[str, float]
    ease_lambda: float
    interests: int

    def weighting(self) -> Weighting:
        """The profile weighting of this recipe."""
        return Weighting(self.strategy, self.half_life, max_history=self.max_history)

    def options(self) -> dict[str, object]:
        """The recipe as rank options, keyed by their command-line names (without dashes)."""
        return {
            "strategy": self.strategy,
            "half_life": self.half_life,
            "max_history": self.max_history,
            "blend": ",".join(f"{name}={number(w)}" for name, w in self.blend.items()),
            "ease_lambda": number(self.ease_lambda),
            "interests": self.interests,
        }


def number(value: float) -> int | float:
    """A whole float as an int (1.0 → 1), so options read as people write them."""
    return int(value) if float(value).is_integer() else float(value)


FIXED_RECIPE = Recipe(  # rank's recommended recipe
    strategy=RECOMMENDED_WEIGHTING.strategy,
    half_life=RECOMMENDED_WEIGHTING.half_life,
    max_history=None,
    blend=dict(RECOMMENDED_BLEND),
    ease_lambda=RECOMMENDED_EASE_LAMBDA,
    interests=0,
)


@dataclass(frozen=True)
class Space:
    """The search space; half-lives may also be times when the history has them."""

    time_range: tuple[float, float] | None = None  # half-life bounds in the time column's units
    seq: bool = False  # a trained model's scores are a blend part too

    @property
    def weight_ranges(self) -> dict[str, float]:
        return WEIGHT_RANGES | ({"seq": SEQ_WEIGHT} if self.seq else {})

    @classmethod
    def of(cls, history: History, timed: bool, *, seq: bool = False) -> Space:
        """The space for a history: time half-lives from the 5th to the 95th percentile of how
        old events are (relative to each user's latest), when the order comes from times."""
        if not timed:
            return cls(seq=seq)
        old = history.seconds_old()
        old = old[old > 0]
        if len(old) == 0:
            return cls(seq=seq)
        low, high = np.quantile(old, [0.05, 0.95])
        return cls((float(low), float(high)) if high > low else None, seq)

    def suggest(self, trial: optuna.Trial) -> Recipe | None:
        """Draw a recipe for `trial` (None when every blend weight came out 0)."""
        strategy = trial.suggest_categorical("strategy", ["mean", "decay"])
        half_life = self._half_life(trial) if strategy == "decay" else None
        max_history = None
        if trial.suggest_categorical("limit_history", [False, True]):
            max_history = trial.suggest_int("max_history", *MAX_HISTORY, log=True)
        blend = {
            name: round(trial.suggest_float(name, 0.0, high, step=0.01), 2)
            for name, high in self.weight_ranges.items()
        }
        blend = {name: weight for name, weight in blend.items() if weight > 0}
        if not blend:
            return None
        ease_lambda = float(trial.suggest_categorical("ease_lambda", EASE_LAMBDAS))
        interests = trial.suggest_categorical("interests", INTERESTS)
        return Recipe(strategy, half_life, max_history, blend, ease_lambda, interests)

    def _half_life(self, trial: optuna.Trial) -> float | str:
        unit = "events"
        if self.time_range is not None:
            unit = trial.suggest_categorical("half_life_unit", ["events", "time"])
        if unit == "events":
            return significant(trial.suggest_float("half_life", *HALF_LIFE_EVENTS, log=True))
        return time_text(trial.suggest_float("half_life_time", *self.time_range, log=True))

    def fixed_params(self) -> dict[str, object]:
        """The trial parameters that draw FIXED_RECIPE (to enqueue as the first trial)."""
        recipe = FIXED_RECIPE
        params: dict[str, object] = {
            "strategy": recipe.strategy,
            "half_life": recipe.half_life,
            "limit_history": False,
            "ease_lambda": int(recipe.ease_lambda),
            "interests": recipe.interests,
        }
        params.update({name: recipe.blend.get(name, 0.0) for name in self.weight_ranges})
        if self.time_range is not None:
            params["half_life_unit"] = "events"
        return params


def significant(value: float, digits: int = 3) -> float:
    """`value` rounded to `digits` significant digits."""
    return float(f"{value:.{digits}g}")


def time_text(seconds: float) -> str:
    """A time half-life as `rank --half-life` reads it, in the largest unit it fills: 3.52d."""
    suffix, scale = next((u for u in TIME_UNITS if seconds >= u[1]), TIME_UNITS[-1])
    return f"{significant(seconds / scale):g}{suffix}"
