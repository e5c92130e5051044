"""Blends: several scorers' standardized scores, weighted and summed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import InputError
from ..options import BLEND_PARTS, flag
from .scorers import Scorer

if TYPE_CHECKING:
    import torch


def standardized(scores):
    """Each row shifted to mean 0 and scaled to standard deviation 1 (constant rows → 0).

    Computed in float64 and rounded to float32 once: a float32 row sum depends on the width
    of the CPU's vector units (AVX2 and AVX-512 add in different orders), a float64 one only
    far below float32's precision, so blended scores are the same bytes on any x86 CPU."""
    wide = scores.double()
    std = wide.std(dim=1, keepdim=True)
    wide.sub_(wide.mean(dim=1, keepdim=True)).div_(std.where(std > 0, 1.0))
    return wide.float()


@dataclass
class BlendScorer(Scorer):
    """Σ weight · standardized(part scores): parts on different scales add fairly."""

    parts: list[tuple[float, Callable[[int, int], torch.Tensor]]]

    def __call__(self, start: int, stop: int) -> torch.Tensor:
        total = None
        for weight, scorer in self.parts:
            term = standardized(scorer(start, stop)) * weight
            total = term if total is None else total.add_(term)
        return total


def blend_scorer(parts: list[tuple[float, Callable[[int, int], torch.Tensor]]]) -> BlendScorer:
    """The weighted sum of standardized scores of `parts` (see `BlendScorer`)."""
    return BlendScorer(parts)


def parse_blend(text: str) -> dict[str, float]:
    """`text=1,cooc=0.5,pop=0.1` → {"text": 1.0, "cooc": 0.5, "pop": 0.1}."""
    weights: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in BLEND_PARTS:
            raise InputError(
                f"{flag('blend')} {text!r}: unknown part {name!r}; use {', '.join(BLEND_PARTS)}"
            )
        try:
            weights[name] = float(value) if value else 1.0
        except ValueError as exc:
            raise InputError(
                f"{flag('blend')} {text!r}: {part!r} needs a number, e.g. {name}=0.5"
            ) from exc
    if not weights or all(w == 0 for w in weights.values()):
        raise InputError(f"{flag('blend')} {text!r}: give at least one part with a non-zero weight")
    return weights
