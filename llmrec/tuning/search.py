"""The search: Optuna's TPE sampler over the recipe space, one trial after another (so a seed
and a number of trials give the same search), starting from the fixed recipe."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..options import TuneOptions
from .scoring import InnerRanker
from .space import FIXED_RECIPE, Recipe, Space


@dataclass
class Trial:
    """One scored recipe (`recipe` None: every blend weight was drawn as 0; not scored)."""

    number: int
    recipe: Recipe | None
    value: float | None
    seconds: float


@dataclass
class Search:
    """Every trial, and the per-user values of the best one and of the fixed recipe."""

    trials: list[Trial] = field(default_factory=list)
    best: int = 0  # index into trials
    best_values: np.ndarray | None = None
    fixed_values: np.ndarray | None = None
    seconds: float = 0.0

    def record(self, trial: Trial, values: np.ndarray | None) -> None:
        """Add a finished trial; it becomes the best only if strictly better (ties: earlier)."""
        self.trials.append(trial)
        if values is None:
            return
        if self.fixed_values is None:
            self.fixed_values = self.best_values = values  # the first trial: the fixed recipe
            self.best = len(self.trials) - 1
        elif trial.value > self.trials[self.best].value:
            self.best, self.best_values = len(self.trials) - 1, values

    @property
    def best_value(self) -> float:
        """The best mean value so far."""
        return float(self.trials[self.best].value)


def search(
    ranker: InnerRanker,
    space: Space,
    options: TuneOptions,
    on_trial: Callable[[int, float], None] | None = None,
) -> Search:
    """Run the trials, the fixed recipe first whatever the time budget; `on_trial(trials done,
    best value)` after each."""
    import optuna

    found = Search()
    started = time.perf_counter()
    objective = _objective(ranker, space, found)
    callbacks = [lambda *_: on_trial(len(found.trials), found.best_value)] if on_trial else []
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # no log line per trial
    try:
        sampler = optuna.samplers.TPESampler(seed=options.seed)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.enqueue_trial(space.fixed_params())
        study.optimize(objective, n_trials=1, callbacks=callbacks)
        more = None if options.n_trials is None else options.n_trials - 1
        left = None if options.seconds is None else options.seconds - _since(started)
        if more != 0 and (left is None or left > 0):
            study.optimize(objective, n_trials=more, timeout=left, callbacks=callbacks)
    finally:
        optuna.logging.set_verbosity(verbosity)
    found.seconds = _since(started)
    return found


def _objective(ranker: InnerRanker, space: Space, found: Search) -> Callable:
    """The function Optuna maximises: draw a recipe, score it, record it in `found`."""
    import optuna

    def objective(trial: optuna.Trial) -> float:
        began = time.perf_counter()
        recipe = space.suggest(trial)
        if trial.number == 0 and recipe != FIXED_RECIPE:
            raise RuntimeError(f"the first trial drew {recipe}, not the fixed recipe")
        if recipe is None:
            found.record(Trial(trial.number, None, None, _since(began)), None)
            raise optuna.TrialPruned()
        values = ranker.values(recipe)
        value = float(values.mean())
        found.record(Trial(trial.number, recipe, value, _since(began)), values)
        return value

    return objective


def _since(start: float) -> float:
    return time.perf_counter() - start
