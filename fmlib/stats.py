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
    if min(len(a), len(b)) == 1:
        return _one_against_many(a, b, statistic, alternative)
    result = stats.permutation_test((a, b), statistic, permutation_type="independent", n_resamples=np.inf,
                                    alternative=alternative, vectorized=True)
    return float(result.pvalue)


def _one_against_many(a, b, statistic, alternative: str) -> float:
    """The exact test when a group has one member (scipy's needs two): every choice of which pooled
    value forms the single group, each equally likely under the null."""
    pooled = np.concatenate([a, b])
    single_is_a = len(a) == 1
    observed = statistic(a, b)
    stats_all = []
    for i in range(len(pooled)):
        one, rest = pooled[i:i + 1], np.delete(pooled, i)
        stats_all.append(statistic(one, rest) if single_is_a else statistic(rest, one))
    stats_all = np.asarray(stats_all)
    eps = 1e-12 * max(1.0, abs(observed))
    greater, less = np.mean(stats_all >= observed - eps), np.mean(stats_all <= observed + eps)
    if alternative == "greater":
        return float(greater)
    if alternative == "less":
        return float(less)
    return float(min(1.0, 2 * min(greater, less)))


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


def attainable_holm(p_values: Sequence[float], p_min: Sequence[float]) -> np.ndarray:
    """Per test, the smallest Holm-adjusted p-value it could have had: its own p-value replaced by the
    smallest its design can give (`p_min`, `smallest_attainable_p`), the rest of the family as
    observed. Above the level, no outcome of that design could be significant in this family. NaN
    p-values stay NaN and do not count as tests.

    Examples
    --------
    >>> attainable_holm([0.001, 0.002, 0.3], [0.001, 0.001, 0.04]).round(3).tolist()
    [0.003, 0.003, 0.04]
    """
    observed = np.asarray(p_values, dtype=float)
    floor = np.asarray(p_min, dtype=float)
    if observed.shape != floor.shape:
        raise ValueError(f"p_min: expected one value per p-value ({observed.shape}), got {floor.shape}")
    best = np.full(observed.shape, np.nan)
    for k in np.flatnonzero(~np.isnan(observed)):
        family = observed.copy()
        family[k] = min(floor[k], observed[k])
        best[k] = holm(family)[k]
    return best


def holm_verdicts(p_values: Sequence[float], p_min: Sequence[float], low: Sequence[float], high: Sequence[float],
                  *, alpha: float = 0.05) -> tuple[np.ndarray, list[str]]:
    """The Holm-adjusted p-values of one family of tests and each test's verdict on its claim (that its
    statistic is above zero): ``"supported"`` where the adjusted p is at most `alpha` and the CI
    [`low`, `high`] lies above zero, ``"contradicted"`` the same below zero, ``"not testable"`` where
    the p-value is NaN or no outcome of the test's design could reach `alpha` after the correction
    (`p_min` above it, or `attainable_holm` above it), ``"inconclusive"`` otherwise.

    Examples
    --------
    >>> holm_verdicts([0.001, 0.3, 0.2], [0.001, 0.001, 0.25], [0.1, -0.1, 0.1], [0.3, 0.2, 0.3])[1]
    ['supported', 'inconclusive', 'not testable']
    """
    alpha = check_real("alpha", alpha, low=0.0, high=1.0)
    adjusted = holm(p_values)
    best = attainable_holm(p_values, p_min)
    verdicts = []
    for p, floor, attainable, lo, hi in zip(adjusted, np.asarray(p_min, float), best, low, high):
        if np.isnan(p) or floor > alpha or not attainable <= alpha:
            verdicts.append("not testable")
        elif p <= alpha and lo > 0:
            verdicts.append("supported")
        elif p <= alpha and hi < 0:
            verdicts.append("contradicted")
        else:
            verdicts.append("inconclusive")
    return adjusted, verdicts


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
    if len(groups) == 1:
        # One seed (the usual case of a single model): drawing the seed consumes no random numbers, so
        # all resamples of the units come from one call, the same numbers as the loop below draws.
        (units,) = groups
        means = units[rng.integers(0, len(units), (n_boot, len(units)))].mean(axis=1)
        # the mean or median of one value is that value: no call per resample
        boots = means if statistic in (np.mean, np.median) else np.array([statistic([m]) for m in means], float)
    else:
        boots = np.empty(n_boot)
        for k in range(n_boot):
            picked = rng.integers(0, len(groups), len(groups))
            boots[k] = statistic([groups[i][rng.integers(0, len(groups[i]), len(groups[i]))].mean() for i in picked])
    alpha = (1 - confidence) / 2
    estimate = float(statistic([g.mean() for g in groups]))
    return estimate, float(np.quantile(boots, alpha)), float(np.quantile(boots, 1 - alpha))


#: Up to how many relabellings a test enumerates them all (above, it draws random ones): every sign
#: pattern of up to 16 paired differences, every pairing of up to 8 correlated pairs.
EXACT_SIGN_FLIPS = 2 ** 16
EXACT_PAIRINGS = math.factorial(8)


def _resamples(n_exact: int, limit: int, n_resamples: int):
    """Every relabelling when there are at most `limit` of them, else `n_resamples` random ones."""
    return np.inf if n_exact <= limit else n_resamples


def paired_permutation_p(differences, *, alternative: str = "greater", n_resamples: int = 9999, seed: int = 0,
                         exact_limit: int = EXACT_SIGN_FLIPS) -> float:
    """p-value of the mean of paired `differences` (regime minus standard, per model and seed) under
    sign flips: exact (all 2^n flips) when there are at most `exact_limit` of them, else
    `n_resamples` random flips drawn from `seed` (`scipy.stats.permutation_test`).

    Examples
    --------
    >>> paired_permutation_p([0.1, 0.2, 0.3])   # all three positive: 1 of the 8 sign patterns
    0.125
    """
    check_choice("alternative", alternative, ALTERNATIVES)
    d = np.asarray(differences, float)
    if len(d) < 1 or not np.isfinite(d).all():
        raise ValueError("differences: expected a non-empty array of finite values")
    result = stats.permutation_test((d,), lambda x, axis=-1: np.mean(x, axis=axis), permutation_type="samples",
                                    n_resamples=_resamples(2 ** len(d), exact_limit, n_resamples),
                                    alternative=alternative, vectorized=True, rng=np.random.default_rng(seed))
    return float(result.pvalue)


def correlation_p(x, y, *, alternative: str = "greater", n_resamples: int = 9999, seed: int = 0,
                  exact_limit: int = EXACT_PAIRINGS) -> float:
    """Permutation p-value of Spearman's correlation of `x` and `y`: exact (all n! pairings) for up
    to `exact_limit` of them (n <= 8), else `n_resamples` random pairings drawn from `seed`."""
    check_choice("alternative", alternative, ALTERNATIVES)
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) != len(y) or len(x) < 3 or not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("x, y: expected two finite arrays of the same length, at least 3")
    rx = stats.rankdata(x)
    rx = (rx - rx.mean()) / np.linalg.norm(rx - rx.mean())

    def rho(yy, axis=-1):  # Spearman's rho = Pearson's r of the ranks, for a whole batch of pairings
        ry = stats.rankdata(yy, axis=axis)
        ry = ry - ry.mean(axis=axis, keepdims=True)
        return (ry * rx).sum(axis=axis) / np.linalg.norm(ry, axis=axis)

    result = stats.permutation_test((y,), rho, permutation_type="pairings",
                                    n_resamples=_resamples(math.factorial(len(x)), exact_limit, n_resamples),
                                    alternative=alternative, vectorized=True, rng=np.random.default_rng(seed))
    return float(result.pvalue)


def smallest_attainable_p(kind: str, *sizes: int, alternative: str = "two-sided", n_resamples: int = 9999) -> float:
    """The smallest p-value a permutation test of this design can give, before any data is seen:
    ``"groups"`` (sizes n_a, n_b: `smallest_p`), ``"paired"`` (n differences: one sign pattern in
    2^n) or ``"correlation"`` (n pairs: one pairing in n!); a random-resampling test cannot go below
    1 / (n_resamples + 1)."""
    check_choice("kind", kind, ("groups", "paired", "correlation"))
    factor = 2 if alternative == "two-sided" else 1
    if kind == "groups":
        return smallest_p(*sizes, alternative=alternative)
    count = 2 ** sizes[0] if kind == "paired" else math.factorial(sizes[0])
    floor = 1 / (n_resamples + 1)
    return max(factor / count, floor if count > (EXACT_SIGN_FLIPS if kind == "paired" else EXACT_PAIRINGS) else 0.0)
