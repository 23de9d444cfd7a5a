"""One tested claim (`Finding`) and how a table of them is judged (`judge`).

A finding carries its estimate, 95 % bootstrap CI, permutation p-value and the smallest p-value its
design could give (``p_min``). The p-values are corrected (Holm) within a *family*: the claims on
absolute scores form the primary family; their twins on the paper's ratio, secondary by this project's
rule, form a family of their own, so that they never dilute the correction of the primary claims
(`family_of`). A finding that no outcome of its design could make significant after its family's
correction is *not testable here* (`attainable_holm_p`), never *inconclusive*. The rules that
build findings from the study's tables live in `fmlib.recommendations`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .metrics import bootstrap_ci, correlation_ci
from .stats import (
    attainable_holm,
    correlation_p,
    holm_verdicts,
    paired_permutation_p,
    permutation_p,
    smallest_attainable_p,
)

ALPHA = 0.05
NAN = float("nan")
FAMILIES = ("primary", "secondary")


@dataclass
class Finding:
    key: str
    claim: str
    metric: str
    statistic: str
    estimate: float
    low: float
    high: float
    n: int
    test: str
    p_value: float
    p_min: float
    recommendation: str
    p_holm: float = NAN
    verdict: str = "not testable here"
    claimed_sign: int = 1  # +1: the claim is that the statistic is above zero; -1: below zero

    @property
    def family(self) -> str:
        """The Holm family of this finding (`family_of`)."""
        return family_of(self.metric)

    def to_dict(self) -> dict:
        return {**asdict(self), "family": self.family}


def family_of(metric: str) -> str:
    """The Holm family of a finding on `metric`: ``"secondary"`` for the paper's ratio (a secondary
    column by this project's rule), ``"primary"`` for everything else (absolute scores).

    Examples
    --------
    >>> family_of("absolute"), family_of("ratio")
    ('primary', 'secondary')
    """
    return "secondary" if metric == "ratio" else "primary"


def _untestable(key, claim, metric, statistic, n, recommendation, test="-") -> Finding:
    return Finding(key, claim, metric, statistic, NAN, NAN, NAN, n, test, NAN, NAN, recommendation)


def _correlation(key, claim, statistic, x, y, recommendation, n_boot, seed, metric="absolute") -> Finding:
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 4 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return _untestable(key, claim, metric, statistic, len(x), recommendation)
    r, lo, hi = correlation_ci(x, y, method="spearman", n_boot=n_boot, seed=seed)
    p = correlation_p(x, y, alternative="two-sided", seed=seed)
    return Finding(key, claim, metric, statistic, r, lo, hi, len(x), "permutation (pairings), two-sided", p,
                   smallest_attainable_p("correlation", len(x)), recommendation)


def _mean_change(key, claim, statistic, diffs, recommendation, n_boot, seed, positive=True,
                 metric="absolute") -> Finding:
    diffs = np.asarray(diffs, float)
    diffs = diffs[np.isfinite(diffs)]
    if len(diffs) < 2:
        return _untestable(key, claim, metric, statistic, len(diffs), recommendation)
    est, lo, hi = bootstrap_ci(diffs, n_boot=n_boot, seed=seed)
    p = paired_permutation_p(diffs, alternative="two-sided", seed=seed)
    return Finding(key, claim, metric, statistic + ("" if positive else " (the claim: below zero)"), est, lo, hi,
                   len(diffs), "sign-flip permutation, two-sided", p, smallest_attainable_p("paired", len(diffs)),
                   recommendation, claimed_sign=1 if positive else -1)


def _group_difference(key, claim, statistic, a, b, recommendation, n_boot, seed, metric="absolute") -> Finding:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 1 or len(b) < 1 or len(a) + len(b) < 3:
        return _untestable(key, claim, metric, statistic, len(a) + len(b), recommendation)
    rng = np.random.default_rng(seed)
    boots = [rng.choice(a, len(a)).mean() - rng.choice(b, len(b)).mean() for _ in range(n_boot)]
    lo, hi = np.quantile(boots, [0.025, 0.975])
    p = permutation_p(a, b, alternative="two-sided")
    return Finding(key, claim, metric, statistic, float(a.mean() - b.mean()), float(lo), float(hi), len(a) + len(b),
                   f"exact permutation ({len(a)} vs {len(b)}), two-sided", p,
                   smallest_attainable_p("groups", len(a), len(b)), recommendation)


def attainable_holm_p(findings: list[Finding]) -> np.ndarray:
    """Per finding, the smallest Holm-adjusted p it could have had (`fmlib.stats.attainable_holm`): its
    own p-value replaced by the smallest its design can give (``p_min``), the rest of its family
    (`family_of`) as observed. Above the level, no outcome of this design could have made the claim
    significant in its family ("not testable here").

    Examples
    --------
    >>> f = [Finding(k, "", "absolute", "", 0.1, 0.0, 0.2, 10, "", p, p_min, "")
    ...      for k, p, p_min in [("a", 0.001, 0.001), ("b", 0.002, 0.001), ("c", 0.3, 0.04)]]
    >>> attainable_holm_p(f).round(3).tolist()
    [0.003, 0.003, 0.04]
    """
    out = np.full(len(findings), np.nan)
    for family in FAMILIES:
        idx = [i for i, f in enumerate(findings) if f.family == family]
        if idx:
            out[idx] = attainable_holm([findings[i].p_value for i in idx], [findings[i].p_min for i in idx])
    return out


def judge(findings: list[Finding], *, alpha: float = ALPHA) -> list[Finding]:
    """Holm-correct the p-values of `findings` within each family (`family_of`: the absolute claims
    together, the ratio twins apart) and give each its verdict (in place, `fmlib.stats.holm_verdicts`).
    A finding whose design could not reach the level after its family's correction, whatever its
    data (`attainable_holm_p`), is "not testable here", never "inconclusive"."""
    for family in FAMILIES:
        members = [f for f in findings if f.family == family]
        if not members:
            continue
        # the CI on the claimed scale: above zero supports the claim, below zero contradicts it
        low = [f.low if f.claimed_sign > 0 else -f.high for f in members]
        high = [f.high if f.claimed_sign > 0 else -f.low for f in members]
        adjusted, verdicts = holm_verdicts([f.p_value for f in members], [f.p_min for f in members], low, high,
                                           alpha=alpha)
        for f, p, verdict in zip(members, adjusted, verdicts):
            f.p_holm = float(p)
            f.verdict = "not testable here" if verdict == "not testable" else verdict
    return findings
