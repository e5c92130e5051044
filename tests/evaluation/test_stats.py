"""Bootstrap intervals and paired tests over per-user values."""

from __future__ import annotations

import numpy as np
from scipy import stats as scipy_stats

from llmrec.evaluation.stats import bootstrap_ci, paired_tests


def test_bootstrap_interval_matches_a_plain_resampling_loop():
    rng = np.random.default_rng(0)
    values = rng.random((300, 2))
    low, high = bootstrap_ci(values, resamples=400, seed=7)
    draws = np.random.default_rng(1).integers(0, 300, size=(4000, 300))
    loop_means = values[draws].mean(axis=1)
    np.testing.assert_allclose(low, np.quantile(loop_means, 0.025, axis=0), atol=0.01)
    np.testing.assert_allclose(high, np.quantile(loop_means, 0.975, axis=0), atol=0.01)
    assert (low < values.mean(axis=0)).all() and (values.mean(axis=0) < high).all()


def test_bootstrap_is_seeded_and_narrows_with_more_users():
    rng = np.random.default_rng(0)
    few, many = rng.random((100, 1)), rng.random((10_000, 1))
    np.testing.assert_array_equal(bootstrap_ci(few, seed=3), bootstrap_ci(few, seed=3))

    def width(values):
        low, high = bootstrap_ci(values)
        return float(high[0] - low[0])

    assert width(many) < width(few) / 5


def test_bootstrap_ignores_nan_cells():
    values = np.array([[1.0], [np.nan], [1.0], [1.0]])
    low, high = bootstrap_ci(values, resamples=50)
    assert low[0] == high[0] == 1.0


def test_identical_runs_are_all_ties_with_p_one():
    values = np.random.default_rng(0).random((50, 3))
    test = paired_tests(values, values.copy(), permutations=500)
    np.testing.assert_array_equal(test.difference, 0)
    np.testing.assert_array_equal(test.ties, 50)
    np.testing.assert_array_equal(test.p_ttest, 1)
    np.testing.assert_array_equal(test.p_randomization, 1)


def test_a_clearly_better_run_wins_with_tiny_p_values():
    reference = np.random.default_rng(0).random((200, 1))
    better = reference + 0.1 + np.random.default_rng(1).normal(0, 0.01, (200, 1))
    test = paired_tests(reference, better, permutations=2000)
    assert test.wins[0] == 200 and test.losses[0] == 0
    assert test.difference[0] > 0.09
    assert test.p_ttest[0] < 1e-10
    assert test.p_randomization[0] == 1 / 2001  # the smallest value it can report


def test_t_test_equals_scipy_and_randomisation_agrees_on_noisy_data():
    rng = np.random.default_rng(5)
    a = rng.random((400, 4))
    b = a + rng.normal(0.01, 0.1, (400, 4))
    test = paired_tests(a, b, permutations=20_000, seed=2)
    np.testing.assert_allclose(test.p_ttest, scipy_stats.ttest_rel(b, a).pvalue, rtol=1e-9)
    np.testing.assert_allclose(test.p_randomization, test.p_ttest, atol=0.03)
