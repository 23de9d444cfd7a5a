import doctest
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fmlib import stats


def test_the_exact_permutation_p_value_counts_relabellings():
    # 2 against 8 (transformers against CNNs): the best case is 1 relabelling in C(10, 2) = 45
    a, b = [10.0, 9.0], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    assert stats.permutation_p(a, b) == pytest.approx(1 / 45)
    assert stats.permutation_p(b, a) == pytest.approx(1.0)
    assert stats.permutation_p(a, b, alternative="two-sided") == pytest.approx(2 / 45)
    assert stats.smallest_p(2, 8) == pytest.approx(1 / 45)
    with pytest.raises(ValueError, match="alternative"):
        stats.permutation_p(a, b, alternative="bigger")


def test_what_a_small_study_cannot_test():
    assert stats.testable(2, 8)  # 1/45 < 0.05
    assert not stats.testable(2, 3)  # 1/10: no outcome is significant
    assert not stats.testable(2, 8, alpha=0.01)
    assert stats.smallest_p(3, 3, alternative="two-sided") == pytest.approx(2 / math.comb(6, 3))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=12))
def test_holm_adjusts_upwards_monotonically_and_caps_at_one(p):
    adjusted = stats.holm(p)
    assert (adjusted >= np.asarray(p) - 1e-12).all() and (adjusted <= 1).all()
    order = np.argsort(p, kind="stable")
    assert (np.diff(adjusted[order]) >= -1e-12).all()  # the order of the p-values is kept


def test_holm_matches_the_textbook_and_skips_nan():
    assert stats.holm([0.01, 0.04, 0.03]).round(6).tolist() == [0.03, 0.06, 0.06]
    out = stats.holm([0.02, np.nan, 0.01])
    assert np.isnan(out[1]) and out[0] == pytest.approx(0.02) and out[2] == pytest.approx(0.02)
    with pytest.raises(ValueError, match="p_values"):
        stats.holm([1.5])


def _seeds_table(seed_means, n_images=30, noise=0.01, rng=0):
    rng = np.random.default_rng(rng)
    return pd.DataFrame([{"seed": s, "image": i, "iou": m + rng.normal(0, noise)}
                         for s, m in enumerate(seed_means) for i in range(n_images)])


def test_resampling_seeds_widens_the_interval_when_training_runs_differ():
    varied = _seeds_table([0.6, 0.7, 0.8])
    est, lo, hi = stats.hierarchical_ci(varied, "iou", n_boot=500)
    pooled = stats.hierarchical_ci(varied.assign(seed=0), "iou", n_boot=500)  # images only
    assert est == pytest.approx(0.7, abs=0.01) and lo < 0.65 and hi > 0.75
    assert (hi - lo) > 5 * (pooled[2] - pooled[1])
    alike = stats.hierarchical_ci(_seeds_table([0.7, 0.7, 0.7]), "iou", n_boot=500)
    assert alike[2] - alike[1] < 0.02
    assert stats.hierarchical_ci(varied, "iou", n_boot=200, seed=1) == stats.hierarchical_ci(varied, "iou", n_boot=200,
                                                                                               seed=1)


def test_docstring_examples():
    assert doctest.testmod(stats).failed == 0


def _hierarchical_ci_loop(table, value, statistic, n_boot, seed):
    """The resampling loop of `hierarchical_ci`, one resample at a time (seeds, then images)."""
    groups = [g.groupby("image")[value].mean().to_numpy() for _, g in table.groupby("seed", sort=True)]
    rng = np.random.default_rng(seed)
    boots = [statistic([groups[i][rng.integers(0, len(groups[i]), len(groups[i]))].mean()
                        for i in rng.integers(0, len(groups), len(groups))]) for _ in range(n_boot)]
    alpha = (1 - 0.95) / 2
    estimate = float(statistic([g.mean() for g in groups]))
    return estimate, float(np.quantile(boots, alpha)), float(np.quantile(boots, 1 - alpha))


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 300), n_seeds=st.sampled_from([1, 1, 2, 3]), seed=st.integers(0, 2**16),
       statistic=st.sampled_from([np.mean, np.median, lambda x: float(np.max(x))]))
def test_hierarchical_ci_draws_the_same_resamples_as_one_at_a_time(n, n_seeds, seed, statistic):
    # One seed draws every resample in one call: the same numbers, bit for bit, as the loop.
    values = np.random.default_rng(seed).random(n * n_seeds)
    table = pd.DataFrame({"seed": np.repeat(np.arange(n_seeds), n), "image": np.tile(np.arange(n), n_seeds),
                          "iou": values})
    assert stats.hierarchical_ci(table, "iou", statistic=statistic, n_boot=300, seed=seed) == \
        _hierarchical_ci_loop(table, "iou", statistic, 300, seed)
