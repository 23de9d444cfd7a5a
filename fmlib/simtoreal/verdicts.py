"""The chapter's two verdicts: does the chosen synthetic-trained model clear the sim-to-real bar,
and do models rank alike on synthetic and real images?"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from .._checks import check_int, check_real
from ..metrics import correlation_ci
from ..realdata import REAL_TEST_SOURCES, SELECTION_SOURCE
from ..stats import correlation_p
from .scores import BASELINE, check_selection_source

#: The verdicts of `rank_agreement` and what each means for the paper's claim.
RANK_MEANINGS = {
    "supported": "models that do better on synthetic nuclei also do better on real ones, so a synthetic "
                 "benchmark can rank models for real images",
    "contradicted": "models that do better on synthetic nuclei do worse on real ones, so a ranking on synthetic "
                    "images does not carry over: choose a model for real images on annotated real images",
    "inconclusive": "these data cannot tell whether a ranking on synthetic images carries over to real ones; "
                    "more annotated real images would",
    "not testable": "there are too few models at this profile to test it (no ranking of that many models could "
                    "be significant once the agreements of the table are corrected together)",
}


def bar_verdict(model_iou: float, baseline_iou: float, *, bar_iou: float) -> str:
    """Whether a model's IoU clears the sim-to-real bar: it must beat the baseline and reach `bar_iou`.

    Examples
    --------
    >>> bar_verdict(0.8, 0.6, bar_iou=0.75)
    'met'
    >>> bar_verdict(0.7, 0.6, bar_iou=0.75)
    'not met: it beats Otsu but stays below the IoU bar'
    >>> bar_verdict(0.8, 0.85, bar_iou=0.75)
    'not met'
    """
    bar_iou = check_real("bar_iou", bar_iou, low=0.0, high=1.0)
    if model_iou > baseline_iou:
        return "met" if model_iou >= bar_iou else "not met: it beats Otsu but stays below the IoU bar"
    return "not met"


def bar_candidates(scores: pd.DataFrame, randomized_scores: pd.DataFrame, *, regimes: Iterable[str],
                   strength: float) -> pd.DataFrame:
    """Mean IoU of every candidate for the bar, one row per candidate and one column per source.

    The candidates are the models of `scores` (a `pool_scores` table) trained in one of `regimes`,
    named ``"<method> (<regime>)"``, and the randomized model of `randomized_scores` (a
    `candidate_scores` table) at `strength`, named ``"<method> (randomized, strength <strength>)"``.
    """
    trained = scores[scores.regime.isin(list(regimes))]
    randomized = randomized_scores[randomized_scores.strength == strength]
    pool = pd.concat([trained.assign(candidate=trained.method + " (" + trained.regime + ")"),
                      randomized.assign(candidate=randomized.method + f" (randomized, strength {strength:g})")])
    if pool.empty:
        raise ValueError("scores, randomized_scores: no candidate in regimes or at strength")
    return pool.groupby(["candidate", "source"]).iou.mean().unstack()


@dataclass(frozen=True)
class SimToRealBar:
    """The outcome of `sim_to_real_bar`.

    Attributes
    ----------
    candidates : pandas.DataFrame
        Mean IoU per candidate (rows) and source (columns), `bar_candidates`.
    model : str
        The candidate chosen on the selection source; ``model_iou`` its mean IoU on the target.
    baseline_iou : float
        The Otsu + watershed baseline's mean IoU on the target.
    bar_iou : float
    verdict : str
        `bar_verdict` of the chosen model.
    best_any_model, best_any_iou : str, float
        The candidate that does best on the target itself, an optimistic choice, and its IoU.
    """

    candidates: pd.DataFrame
    model: str
    model_iou: float
    baseline_iou: float
    bar_iou: float
    verdict: str
    best_any_model: str
    best_any_iou: float


def sim_to_real_bar(scores: pd.DataFrame, randomized_scores: pd.DataFrame, *, regimes: Iterable[str],
                    strength: float, bar_iou: float, source: str = SELECTION_SOURCE,
                    target: str = "dsb2018") -> SimToRealBar:
    """The sim-to-real bar: does the best synthetic-trained model, chosen on `source`, beat the
    baseline on `target` and reach `bar_iou` there?

    Parameters
    ----------
    scores : pandas.DataFrame
        A `pool_scores` table, with the baseline's rows on `target`.
    randomized_scores : pandas.DataFrame
        A `candidate_scores` table; its model at `strength` joins the candidates (`bar_candidates`).
    regimes : iterable of str
        The training regimes whose models are candidates.
    strength : float
        The chosen randomization strength (`best_strength`).
    bar_iou : float
        The IoU the chosen model must reach on `target`.
    source : str
        Where the candidate is chosen (never a test source).
    target : str
        The test source the bar is measured on.
    """
    check_selection_source(source)
    candidates = bar_candidates(scores, randomized_scores, regimes=regimes, strength=strength)
    for column in (source, target):
        if column not in candidates.columns:
            raise ValueError(f"scores: no candidate is scored on source {column!r}")
    baseline = scores[(scores.source == target) & (scores.method == BASELINE)]
    if baseline.empty:
        raise ValueError(f"scores: no {BASELINE} rows on {target!r}")
    pick = candidates[source].idxmax()
    pick_iou = float(candidates.loc[pick, target])
    baseline_iou = float(baseline.iou.mean())
    return SimToRealBar(candidates, pick, pick_iou, baseline_iou, float(bar_iou),
                        bar_verdict(pick_iou, baseline_iou, bar_iou=bar_iou),
                        candidates[target].idxmax(), float(candidates[target].max()))


def ranking_table(synthetic_scores: pd.DataFrame, scores: pd.DataFrame, *, models: Iterable[str],
                  sources: Iterable[str] = REAL_TEST_SOURCES, structure: str = "nuclei",
                  regime: str = "standard", seed: int | None = None) -> pd.DataFrame:
    """Mean clean IoU per model on synthetic and on real test images, side by side: the input of
    the clean-IoU agreement (`rank_agreement`), which is not the paper's claim about robustness
    (`fmlib.simtoreal.robustness_pairs`).

    Parameters
    ----------
    synthetic_scores : pandas.DataFrame
        Per-image synthetic test scores with ``structure``, ``regime``, ``model`` and ``iou``
        (the training chapter's ``03_training_test_scores.csv``).
    scores : pandas.DataFrame
        A `pool_scores` table; its rows of `models` in `regime` on `sources` give the real score.
    models : iterable of str
        The architectures to rank (the baseline and the references are left out).
    seed : int, optional
        Keep only the synthetic rows of this training seed (the study seed: the models `scores`
        scores); all seeds if None.

    Returns
    -------
    pandas.DataFrame
        ``synthetic`` and ``real`` mean IoU, indexed by model; models missing from either table
        are dropped.
    """
    rows = synthetic_scores[(synthetic_scores.structure == structure) & (synthetic_scores.regime == regime)]
    if seed is not None:
        seed = check_int("seed", seed)
        if "seed" not in rows.columns:
            raise ValueError(f"synthetic_scores: no 'seed' column to keep seed {seed}; has {list(rows.columns)}")
        rows = rows[rows.seed == seed]
    synthetic = rows.groupby("model").iou.mean()
    real = (scores[(scores.regime == regime) & scores.method.isin(list(models)) & scores.source.isin(list(sources))]
            .groupby("method").iou.mean())
    return pd.DataFrame({"synthetic": synthetic, "real": real}).dropna()


@dataclass(frozen=True)
class RankAgreement:
    """Spearman correlation of two rankings with its bootstrap CI, and the verdict on the claim
    that rankings on synthetic images carry over to real ones (a key of `RANK_MEANINGS`); ``p`` is
    the two-sided permutation p-value of the correlation (`fmlib.stats.correlation_p`), NaN when
    not testable."""

    r: float
    low: float
    high: float
    verdict: str
    n: int
    p: float = math.nan

    @property
    def meaning(self) -> str:
        """What the verdict means for the claim, in words (`RANK_MEANINGS`)."""
        return RANK_MEANINGS[self.verdict]


def rank_agreement(paired: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0) -> RankAgreement:
    """Do the models rank alike on synthetic and on real images?

    The Spearman correlation of ``paired.synthetic`` and ``paired.real`` (a `ranking_table`), with a
    bootstrap CI over models (`fmlib.metrics.correlation_ci`) and a two-sided permutation p-value
    (`fmlib.stats.correlation_p`, exact up to eight models). The claim is ``"supported"`` when the
    CI lies above zero, ``"contradicted"`` below it, else ``"inconclusive"``; ``"not testable"``
    (correlation and p NaN) with fewer than three models or when either column is constant.

    Examples
    --------
    >>> rank_agreement(pd.DataFrame({"synthetic": [0.8, 0.7], "real": [0.5, 0.4]})).verdict
    'not testable'
    """
    check_int("n_boot", n_boot, low=1)
    if len(paired) >= 3 and paired.synthetic.nunique() > 1 and paired.real.nunique() > 1:
        r, low, high = correlation_ci(paired.synthetic, paired.real, method="spearman", n_boot=n_boot, seed=seed)
        p = correlation_p(paired.synthetic, paired.real, alternative="two-sided", seed=seed)
        verdict = "supported" if low > 0 else ("contradicted" if high < 0 else "inconclusive")
    else:
        r = low = high = p = math.nan
        verdict = "not testable"
    return RankAgreement(float(r), float(low), float(high), verdict, len(paired), float(p))
