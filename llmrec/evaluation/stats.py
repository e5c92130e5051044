"""Statistics over per-user metric values: bootstrap intervals and paired tests between runs.

All functions take a (users × metrics) matrix and resample or permute users with matrix
products in chunks, so 100k users × 1000 resamples stay within a few hundred MiB and seconds.
NaN values (a measure undefined for a user, e.g. diversity of an empty list) are left out of
every mean.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

CHUNK_CELLS = 8_000_000  # resamples × users per chunk


def _chunks(total: int, n_users: int) -> list[int]:
    size = max(1, CHUNK_CELLS // max(n_users, 1))
    return [min(size, total - start) for start in range(0, total, size)]


def _weighted_means(weights: np.ndarray, values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Means of each column under each row of user weights, ignoring NaN cells."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return (weights @ values) / (weights @ known)


def bootstrap_ci(
    values: np.ndarray, *, resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of each column's mean, resampling users with replacement.

    Each resample draws n users uniformly; its weights (how often each user was drawn) come
    from one bincount, and all columns' means from one matrix product.
    """
    n = len(values)
    known = (~np.isnan(values)).astype(np.float64)
    filled = np.nan_to_num(values.astype(np.float64))
    rng = np.random.default_rng(seed)
    means = []
    for size in _chunks(resamples, n):
        draws = rng.integers(0, n, size=(size, n)) + (np.arange(size) * n)[:, None]
        weights = np.bincount(draws.ravel(), minlength=size * n).reshape(size, n)
        means.append(_weighted_means(weights.astype(np.float64), filled, known))
    means = np.vstack(means)
    alpha = (1 - confidence) / 2
    return np.nanquantile(means, alpha, axis=0), np.nanquantile(means, 1 - alpha, axis=0)


@dataclass
class PairedTest:
    """A run against the reference, per metric column."""

    difference: np.ndarray  # mean(b) − mean(a)
    p_ttest: np.ndarray
    p_randomization: np.ndarray
    wins: np.ndarray  # users where b > a
    ties: np.ndarray
    losses: np.ndarray


def paired_tests(
    reference: np.ndarray, other: np.ndarray, *, permutations: int = 10_000, seed: int = 0
) -> PairedTest:
    """Paired t-test and two-sided paired randomisation (sign-flip) test per column.

    Users where either run is NaN are left out of that column. The randomisation p-value is
    (1 + #{|mean(s·d)| ≥ |mean(d)|}) / (1 + permutations) over random signs s.
    """
    from scipy import stats as scipy_stats

    diff = other.astype(np.float64) - reference.astype(np.float64)
    known = ~np.isnan(diff)
    filled = np.where(known, diff, 0.0)
    n = known.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # constant differences: handled below
        mean = filled.sum(axis=0) / n
        t_result = scipy_stats.ttest_rel(
            np.where(known, other, np.nan),
            np.where(known, reference, np.nan),
            axis=0,
            nan_policy="omit",
        )
    p_ttest = np.asarray(t_result.pvalue, dtype=np.float64)
    constant = np.nanstd(np.where(known, diff, np.nan), axis=0) == 0
    p_ttest = np.where(constant, np.where(mean == 0, 1.0, 0.0), p_ttest)
    observed = np.abs(mean)
    rng = np.random.default_rng(seed)
    exceed = np.zeros(diff.shape[1])
    for size in _chunks(permutations, len(diff)):
        bits = np.unpackbits(
            rng.integers(0, 256, size=(size, -(-len(diff) // 8)), dtype=np.uint8),
            axis=1,
            count=len(diff),
        )
        # float64: sign flips that tie the observed mean exactly (common with discrete metrics)
        # must count as ties on every CPU, which a float32 product's rounding does not allow
        signs = bits.astype(np.float64) * 2 - 1
        with np.errstate(invalid="ignore", divide="ignore"):
            permuted = np.abs((signs @ filled) / n)
        exceed += (permuted >= observed - 1e-12).sum(axis=0)
    p_random = (exceed + 1) / (permutations + 1)
    return PairedTest(
        difference=mean,
        p_ttest=p_ttest,
        p_randomization=p_random,
        wins=((diff > 0) & known).sum(axis=0),
        ties=((diff == 0) & known).sum(axis=0),
        losses=((diff < 0) & known).sum(axis=0),
    )
