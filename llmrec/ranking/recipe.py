"""The recipe `rank` uses when it is told none: what the evidence recommends.

Profiled from a history with no scoring option given, users are ranked by the recommended
recipe: recency decay with a half-life of one event, blended with what the history teaches
(text 0.25, co-occurrence 1, EASE 0.5 at λ = 100, popularity 0.1). It was the best
training-free recipe across the shared datasets (README, "Which strategy to use"); `llmrec
tune` fits one to a user's own history. Otherwise (user vectors given, a free-text history,
`--fast` or Ray, which score text alone, or any scoring option given) the unset options keep
their plain defaults: the mean profile, text similarity alone (a model's scores alone with a
model) and λ = 500.
"""

from __future__ import annotations

import dataclasses

from ..options import RankOptions, Weighting
from .scorers.item_to_item import EASE_LAMBDA

RECOMMENDED_WEIGHTING = Weighting("decay", 1.0)
RECOMMENDED_BLEND = {"text": 0.25, "cooc": 1.0, "ease": 0.5, "pop": 0.1}
RECOMMENDED_EASE_LAMBDA = 100.0


def choose_recipe(
    options: RankOptions,
    weighting: Weighting | None,
    *,
    profiles_from_history: bool,
    text_only: bool,
) -> tuple[RankOptions, Weighting, bool]:
    """`options` and `weighting` with what was left unset (None) chosen, and whether that is the
    recommended recipe. `profiles_from_history`: users are profiled from a history of catalog
    items; `text_only`: the scoring path takes text similarity alone (`--fast`, Ray)."""
    untold = (
        options.blend is None
        and options.ease_lambda is None
        and weighting is None
        and not options.interests
        and options.baseline is None
        and options.model is None
    )
    if untold and profiles_from_history and not text_only:
        chosen = dataclasses.replace(
            options, blend=dict(RECOMMENDED_BLEND), ease_lambda=RECOMMENDED_EASE_LAMBDA
        )
        return chosen, RECOMMENDED_WEIGHTING, True
    blend = options.blend
    if blend is None:
        blend = {"seq": 1.0} if options.model else {"text": 1.0}
    ease_lambda = EASE_LAMBDA if options.ease_lambda is None else options.ease_lambda
    chosen = dataclasses.replace(options, blend=blend, ease_lambda=ease_lambda)
    return chosen, weighting or Weighting(), False
