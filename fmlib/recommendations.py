"""Recommendations as rules evaluated on the study's results tables.

Each rule states a claim (several are claims of the paper's abstract), computes the statistic that
tests it with a 95 % bootstrap confidence interval, and returns a verdict: *supported* (the interval
lies on the claimed side of zero), *contradicted* (it lies on the other side), *inconclusive* (it
contains zero), or *not testable* (too few models or no such models at this profile). The book's
recommendations page quotes these verdicts; it never states a finding the tables do not support.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .metrics import bootstrap_ci, correlation_ci
from .realdata import REAL_TEST_SOURCES


@dataclass
class Finding:
    key: str
    claim: str
    statistic: str
    estimate: float
    low: float
    high: float
    n: int
    verdict: str
    recommendation: str

    def to_dict(self) -> dict:
        return asdict(self)


def _verdict(low: float, high: float, positive: bool = True) -> str:
    if np.isnan(low) or np.isnan(high):
        return "not testable"
    if (low > 0) if positive else (high < 0):
        return "supported"
    if (high < 0) if positive else (low > 0):
        return "contradicted"
    return "inconclusive"


def _correlation(key, claim, statistic, x, y, recommendation, n_boot, seed) -> Finding:
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 4 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return Finding(key, claim, statistic, float("nan"), float("nan"), float("nan"), len(x),
                       "not testable", recommendation)
    r, lo, hi = correlation_ci(x, y, method="spearman", n_boot=n_boot, seed=seed)
    return Finding(key, claim, statistic, r, lo, hi, len(x), _verdict(lo, hi), recommendation)


def _mean_change(key, claim, statistic, diffs, recommendation, n_boot, seed, positive=True) -> Finding:
    diffs = np.asarray(diffs, float)
    diffs = diffs[np.isfinite(diffs)]
    if len(diffs) < 2:
        return Finding(key, claim, statistic, float("nan"), float("nan"), float("nan"), len(diffs),
                       "not testable", recommendation)
    est, lo, hi = bootstrap_ci(diffs, n_boot=n_boot, seed=seed)
    return Finding(key, claim, statistic, est, lo, hi, len(diffs), _verdict(lo, hi, positive), recommendation)


def _group_difference(key, claim, statistic, a, b, recommendation, n_boot, seed) -> Finding:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 1 or len(b) < 1 or len(a) + len(b) < 3:
        return Finding(key, claim, statistic, float("nan"), float("nan"), float("nan"), len(a) + len(b),
                       "not testable", recommendation)
    rng = np.random.default_rng(seed)
    boots = [rng.choice(a, len(a)).mean() - rng.choice(b, len(b)).mean() for _ in range(n_boot)]
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return Finding(key, claim, statistic, float(a.mean() - b.mean()), float(lo), float(hi), len(a) + len(b),
                   _verdict(lo, hi), recommendation)


def _against_standard(table, regime: str):
    """Per row of `table` (one column per training regime), `regime` minus standard training; empty
    where either regime was not run."""
    if regime not in table or "standard" not in table:
        return []
    return (table[regime] - table["standard"]).to_numpy()


#: The real test images of the real-image notebook, and the real images that choose among models there.
SELECTION_SOURCE = "bbbc007_train"


def evaluate_rules(models_summary, defenses, *, real_scores=None, randomized_scores=None, clean_scores=None,
             n_boot: int = 2000, seed: int = 0) -> list[Finding]:
    """Evaluate every rule.

    Parameters
    ----------
    models_summary : DataFrame, one row per model (standard training, averaged over structures)
        Columns ``model``, ``family``, ``parameters``, ``clean_iou``, ``corruption_robustness``,
        ``adversarial_robustness``.
    defenses : DataFrame, one row per structure, model and regime (`fmlib.grid.robustness_summary`).
    real_scores : DataFrame, optional
        Per-tile IoU of the synthetic-trained models on real images (``07_real_scores.csv``: columns
        ``method``, ``regime``, ``source``, ``tile``, ``iou``). Adds the rules on real images.
    randomized_scores : DataFrame, optional
        Per-tile IoU of one architecture against the domain-randomization strength
        (``07_real_scores_randomized.csv``: ``strength``, ``source``, ``tile``, ``iou``; strength 0 is
        the single acquisition). Adds the domain-randomization rule.
    clean_scores : DataFrame, optional
        Clean test IoU per model and structure under standard training, with each model's output
        stride (columns ``model``, ``structure``, ``iou``, ``output_stride``). Adds the output-stride rule.
    """
    s = models_summary
    findings = [
        _correlation("corruption_vs_adversarial",
                     "Models robust to corruptions are also robust to adversarial attacks.",
                     "Spearman correlation across models", s.corruption_robustness, s.adversarial_robustness,
                     "Where attacks are a concern, measure adversarial robustness directly if this is not supported; "
                     "otherwise corruption robustness is a cheap proxy.", n_boot, seed),
        _correlation("clean_vs_corruption",
                     "Models that are more accurate on clean images are more robust to corruptions.",
                     "Spearman correlation across models", s.clean_iou, s.corruption_robustness,
                     "Do not choose a model by clean accuracy alone unless this is supported: benchmark it on "
                     "degraded images.", n_boot, seed),
        _correlation("size_vs_corruption", "Larger models (more parameters) are more robust to corruptions.",
                     "Spearman correlation across models", np.log(s.parameters), s.corruption_robustness,
                     "Unless supported, a larger model is no substitute for robustness testing.", n_boot, seed),
        _group_difference("transformer_vs_cnn", "Transformers are more robust to corruptions than CNNs.",
                          "difference of mean corruption robustness (transformers - CNNs)",
                          s[s.family == "transformer"].corruption_robustness,
                          s[s.family == "cnn"].corruption_robustness,
                          "Prefer a transformer for degraded images only if this is supported.", n_boot, seed),
    ]
    pivot = defenses.pivot_table(index=["structure", "model"], columns="regime",
                                 values=["clean_iou", "corruption_robustness", "adversarial_robustness"])

    def change(metric, regime):
        return _against_standard(pivot[metric], regime) if metric in pivot else []

    findings += [
        _mean_change("noise_augmentation", "Noise augmentation improves robustness to corruptions.",
                     "mean change of corruption robustness against standard training",
                     change("corruption_robustness", "noise"),
                     "Train with noise augmentation when test images may be noisier than training images.",
                     n_boot, seed),
        _mean_change("adversarial_training", "Adversarial training improves adversarial robustness.",
                     "mean change of adversarial robustness against standard training",
                     change("adversarial_robustness", "adversarial"),
                     "Use adversarial training when inputs may be manipulated.", n_boot, seed),
        _mean_change("adversarial_training_cost", "Adversarial training costs clean accuracy.",
                     "mean change of clean IoU against standard training", change("clean_iou", "adversarial"),
                     "Budget for a drop in clean accuracy when training adversarially.", n_boot, seed, positive=False),
    ]
    if real_scores is not None:
        findings += _real_image_rules(real_scores, n_boot, seed)
    if randomized_scores is not None:
        findings.append(_randomization_rule(randomized_scores, n_boot, seed))
    if clean_scores is not None:
        findings.append(_output_stride_rule(clean_scores, n_boot, seed))
    return findings


def _output_stride_rule(clean_scores, n_boot: int, seed: int, thin: str = "er", compact: str = "nuclei") -> Finding:
    """Does a coarse output cost more on thin structures? Per model, the clean IoU on the compact
    structure minus that on the thin one (so that a model's overall accuracy cancels), against its
    output stride (`fmlib.resolution.output_stride`)."""
    iou = clean_scores.pivot_table(index="model", columns="structure", values="iou")
    stride = clean_scores.groupby("model").output_stride.first()
    # without both structures there is no gap to correlate: "not testable"
    gap = (iou[compact] - iou[thin]).dropna() if {thin, compact} <= set(iou.columns) else iou.index[:0].to_series()
    return _correlation("output_stride_thin", f"A coarser output (larger output stride) costs more accuracy on thin "
                        f"structures ({thin}) than on compact ones ({compact}).",
                        f"Spearman correlation across models of output stride with clean IoU on {compact} minus on "
                        f"{thin}",
                        stride.reindex(gap.index), gap,
                        "For thin or tubular structures, choose a model whose logits are at full or half resolution, "
                        "or give a coarse model a decoder down to stride 4 or finer.", n_boot, seed)


def _real_image_rules(real_scores, n_boot: int, seed: int) -> list[Finding]:
    """Do the defenses, trained on synthetic images only, help on real images? Per model, the mean
    real IoU is the mean over the real test sources (so one large source does not dominate)."""
    real = real_scores[real_scores.source.isin(REAL_TEST_SOURCES)]
    per_model = real.groupby(["method", "regime", "source"]).iou.mean().groupby(["method", "regime"]).mean().unstack()

    def change(regime):
        return _against_standard(per_model, regime)

    statistic = "mean change of real-image IoU against standard training, across models"
    return [
        _mean_change("noise_augmentation_real", "Noise augmentation of synthetic training images improves "
                     "segmentation of real images.", statistic, change("noise"),
                     "Add noise augmentation when a model trained on simulations will meet real images.", n_boot, seed),
        _mean_change("adversarial_training_real", "Adversarial training on synthetic images improves segmentation "
                     "of real images.", statistic, change("adversarial"),
                     "Train adversarially when a model trained on simulations will meet real images.", n_boot, seed),
    ]


def _randomization_rule(randomized_scores, n_boot: int, seed: int) -> Finding:
    """Domain randomization at the strength that does best on the selection images, against the
    single acquisition (strength 0), tile by tile on the real test images."""
    key, claim = "domain_randomization_real", ("Training on simulated acquisitions with randomized physics improves "
                                               "segmentation of real images.")
    statistic = "mean change of IoU per real test tile (best randomized strength - single acquisition)"
    recommendation = ("Randomize the simulator's acquisition physics when training on synthetic images for real "
                      "ones.")
    scores = randomized_scores
    selection = scores[(scores.source == SELECTION_SOURCE) & (scores.strength > 0)]
    if selection.empty or not (scores.strength == 0).any():
        return _mean_change(key, claim, statistic, [], recommendation, n_boot, seed)
    chosen = selection.groupby("strength").iou.mean().idxmax()
    paired = scores[scores.source.isin(REAL_TEST_SOURCES)].pivot_table(index=["source", "tile"], columns="strength",
                                                                      values="iou")
    return _mean_change(key, claim, statistic, (paired[chosen] - paired[0.0]).to_numpy(), recommendation, n_boot, seed)
