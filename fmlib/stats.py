"""Statistics for small studies: exact permutation tests, Holm's correction, and CIs that resample
training seeds, then images.

A benchmark of ten models has groups of two or three (transformers against CNNs), a handful of
training seeds, and tens of test images per seed. Three rules follow:

- a group comparison with few members uses an exact permutation test (every relabelling is
  enumerated, `permutation_p`); with 2 against 8 models the smallest attainable one-sided p-value is
  1/45, so some claims cannot reach significance at all: `testable` says so before any data is seen;
- a table of findings corrects its p-values for multiplicity (`holm`);
- a confidence interval resamples the units in the order they vary: training seeds first, then the
  test images of each resampled seed (`hierarchical_ci`), so the variance between training runs is
  part of the interval, not hidden in a pool of images.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ._checks import check_choice, check_int, check_real

ALTERNATIVES = ("greater", "less", "two-sided")


def permutation_p(a, b, *, alternative: str = "greater", statistic: Callable | None = None) -> float:
    """Exact p-value of the difference of means of `a` and `b` (default statistic) under every
    relabelling of the pooled values (`scipy.stats.permutation_test`, all permutations enumerated).

    ``alternative="greater"`` tests that `a` exceeds `b`.

    Examples
    --------
    >>> permutation_p([3.0, 4.0], [0.0, 1.0, 2.0])   # the best split of 10: p = 1/10
    0.1
    """
    check_choice("alternative", alternative, ALTERNATIVES)
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 1 or len(b) < 1 or not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("a, b: expected two non-empty groups of finite values")
    statistic = statistic or (lambda x, y, axis=-1: np.mean(x, axis=axis) - np.mean(y, axis=axis))
    result = stats.permutation_test((a, b), statistic, permutation_type="independent", n_resamples=np.inf,
                                    alternative=alternative, vectorized=True)
    return float(result.pvalue)


def smallest_p(n_a: int, n_b: int, *, alternative: str = "greater") -> float:
    """The smallest p-value an exact permutation test of groups of `n_a` and `n_b` can give:
    one relabelling in C(n_a + n_b, n_a) (twice that for a two-sided test)."""
    check_int("n_a", n_a, low=1)
    check_int("n_b", n_b, low=1)
    check_choice("alternative", alternative, ALTERNATIVES)
    return (2 if alternative == "two-sided" else 1) / math.comb(n_a + n_b, n_a)


def testable(n_a: int, n_b: int, *, alpha: float = 0.05, alternative: str = "greater") -> bool:
    """Whether an exact permutation test of these group sizes can reach significance at `alpha`."""
    check_real("alpha", alpha, low=0.0, high=1.0, low_inclusive=False)
    return smallest_p(n_a, n_b, alternative=alternative) <= alpha


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error), in the order given; NaN stays NaN and
    does not count as a test.

    Examples
    --------
    >>> holm([0.01, 0.04, 0.03]).round(3).tolist()
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    if not len(valid):
        return out
    if ((p[valid] < 0) | (p[valid] > 1)).any():
        raise ValueError("p_values: expected values in [0, 1]")
    order = valid[np.argsort(p[valid], kind="stable")]
    m = len(order)
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adjusted, 1.0)
    return out


def hierarchical_ci(table: pd.DataFrame, value: str, *, seed_col: str = "seed", unit: str = "image",
                    statistic: Callable = np.mean, n_boot: int = 2000, confidence: float = 0.95,
                    seed: int = 0) -> tuple[float, float, float]:
    """Estimate and bootstrap CI of `value` that resamples training seeds (`seed_col`), then the
    units (`unit`, test images) within each resampled seed: (estimate, low, high).

    The estimate is `statistic` over the per-seed means of the per-unit means; with one seed the
    interval is the image bootstrap of that seed alone.
    """
    check_int("n_boot", n_boot, low=1)
    check_real("confidence", confidence, low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)
    groups = [g.groupby(unit)[value].mean().to_numpy() for _, g in table.groupby(seed_col, sort=True)]
    if not groups or any(len(g) == 0 for g in groups):
        raise ValueError(f"table: expected rows with {seed_col!r}, {unit!r} and {value!r}")
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot)
    for k in range(n_boot):
        picked = rng.integers(0, len(groups), len(groups))
        boots[k] = statistic([groups[i][rng.integers(0, len(groups[i]), len(groups[i]))].mean() for i in picked])
    alpha = (1 - confidence) / 2
    estimate = float(statistic([g.mean() for g in groups]))
    return estimate, float(np.quantile(boots, alpha)), float(np.quantile(boots, 1 - alpha))
