"""Recommendations as rules evaluated on the study's results tables.

Each rule states a claim (several are claims of the paper's abstract) and computes the statistic
that tests it, on absolute scores first (corrupted IoU, robust IoU under the attack ensemble, clean
IoU); where the paper measured with its ratio (corrupted / clean IoU) the same claim is also tested
on the ratio, as a second row (``metric`` = ``"ratio"``). Each row carries a 95 % bootstrap CI and a
permutation p-value (exact where the design allows: `fmlib.stats`), and the p-values of the whole
table are corrected together (Holm). The verdict:

- *supported*: the Holm-adjusted p is at most 0.05 and the CI lies on the claimed side of zero;
- *contradicted*: the same on the other side;
- *inconclusive*: neither;
- *not testable here*: no outcome of this design could reach p <= 0.05 once the table is corrected
  (too few models, or no such models at this profile: `attainable_holm_p`); the claim is neither
  supported nor refuted by this study.

The book's recommendations page quotes these verdicts; it never states a finding the tables do not
support.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .findings import (
    ALPHA,
    NAN,
    Finding,
    _correlation,
    _group_difference,
    _mean_change,
    attainable_holm_p,
    judge,
)
from .rankings import seed_averaged_changes
from .realdata import REAL_TEST_SOURCES
from .strength import PASSES, attack_check

__all__ = ["ALPHA", "NAN", "SCORECARD", "Finding", "attainable_holm_p", "evaluate_rules", "judge",
           "randomization_pairs", "scorecard"]


def _against_standard(table, regime: str):
    """Per row of `table` (one column per training regime), `regime` minus standard training; empty
    where either regime was not run."""
    if regime not in table or "standard" not in table:
        return []
    return (table[regime] - table["standard"]).to_numpy()


#: The verdict of a finding on adversarial training whose defended models failed the attack checks.
UNCHECKED_DEFENSE = "not established: the attack checks fail on defended models"


def evaluate_rules(models_summary, defenses, *, real_scores=None, single_scores=None, clean_scores=None,
                   defense_checks=None, extra: Sequence[Finding] = (), n_boot: int = 2000,
                   seed: int = 0) -> list[Finding]:
    """Evaluate every rule, then correct and judge them together (`judge`).

    Parameters
    ----------
    models_summary : DataFrame, one row per model (standard training, averaged over structures)
        Columns ``model``, ``family``, ``parameters``, ``clean_iou``, ``corrupted_iou`` (mean over the
        corruptions that act and their severities), ``robust_iou`` (under the attack ensemble, mean
        over budgets), and the paper's ratios ``corruption_ratio`` and ``robust_ratio``.
    defenses : DataFrame, one row per structure, model, regime and training seed
        The same columns for every training regime (``regime``, ``seed``): the defense rules pair each
        defended model with the standard one of the same architecture, structure and seed.
    real_scores : DataFrame, optional
        Per-tile IoU of the synthetic-trained models on real images (``07_real_scores.csv``: columns
        ``method``, ``regime``, ``source``, ``tile``, ``iou``). Adds the rules on real images.
    single_scores : DataFrame, optional
        Per-tile IoU on real images of every architecture trained on one simulated acquisition, the
        paper's protocol (``07_real_scores_single.csv``: the ``standard`` models competent under both
        regimes; ``method``, ``source``, ``tile``, ``iou``). With `real_scores` (whose ``randomized``
        rows are the other side), adds the domain-randomization rule (per architecture).
    clean_scores : DataFrame, optional
        Clean test IoU per model and structure under standard training, with each model's output
        stride (columns ``model``, ``structure``, ``iou``, ``output_stride``). Adds the output-stride rule.
    defense_checks : DataFrame, optional
        The attack ensemble's strength checks on the defended models (`fmlib.strength.ensemble_checks`
        by model, structure and regime: ``regime``, ``verdict``, ``apgd_converged``). Where any
        adversarially trained model is suspected of gradient masking, or APGD had not converged on it,
        its robust IoU is only an upper bound, so a gain of robust IoU from adversarial training is
        not called supported: `UNCHECKED_DEFENSE`.
    extra : sequence of Finding, optional
        Findings built elsewhere (the natural-image comparison, `fmlib.natural.finding`), judged in
        their families with the rest.
    """
    s = models_summary
    findings = []
    for metric, corr, adv in (("absolute", "corrupted_iou", "robust_iou"), ("ratio", "corruption_ratio",
                                                                           "robust_ratio")):
        tag = "" if metric == "absolute" else "_ratio"
        what = "corrupted IoU" if metric == "absolute" else "corrupted/clean IoU ratio"
        findings += [
            _correlation(f"corruption_vs_adversarial{tag}",
                         "Models robust to corruptions are also robust to adversarial attacks.",
                         f"Spearman correlation across models, {what} vs " +
                         ("robust IoU (attack ensemble)" if metric == "absolute" else "attacked/clean IoU ratio"),
                         s[corr], s[adv], "Where attacks are a concern, measure adversarial robustness directly if "
                         "this is not supported; otherwise corruption robustness is a cheap proxy.", n_boot, seed,
                         metric),
            _correlation(f"clean_vs_corruption{tag}",
                         "Models that are more accurate on clean images are more robust to corruptions.",
                         f"Spearman correlation across models, clean IoU vs {what}", s.clean_iou, s[corr],
                         "Do not choose a model by clean accuracy alone unless this is supported: benchmark it on "
                         "degraded images.", n_boot, seed, metric),
            _correlation(f"size_vs_corruption{tag}", "Larger models (more parameters) are more robust to corruptions.",
                         f"Spearman correlation across models, log parameters vs {what}", np.log(s.parameters),
                         s[corr], "Unless supported, a larger model is no substitute for robustness testing.", n_boot,
                         seed, metric),
            _group_difference(f"transformer_vs_cnn{tag}", "Transformers are more robust to corruptions than CNNs.",
                              f"difference of mean {what} (transformers - CNNs)", s[s.family == "transformer"][corr],
                              s[s.family == "cnn"][corr],
                              "Prefer a transformer for degraded images only if this is supported.", n_boot, seed,
                              metric),
        ]
    keys = [k for k in ("structure", "model", "seed") if k in defenses]
    pivot = defenses.pivot_table(index=keys, columns="regime", values=[c for c in (
        "clean_iou", "corrupted_iou", "robust_iou", "corruption_ratio", "robust_ratio") if c in defenses])

    def change(metric, regime):  # per architecture, the seeds averaged (`seed_averaged_changes`)
        return seed_averaged_changes(pivot[metric], regime)[0] if metric in pivot else []

    paired = "against standard training, per architecture and structure (mean over its training seeds)"
    findings += [
        _mean_change("noise_augmentation", "Noise augmentation improves robustness to corruptions.",
                     f"mean change of corrupted IoU {paired}", change("corrupted_iou", "noise"),
                     "Train with noise augmentation when test images may be noisier than training images.",
                     n_boot, seed),
        _mean_change("noise_augmentation_ratio", "Noise augmentation improves robustness to corruptions.",
                     f"mean change of the corrupted/clean IoU ratio {paired}", change("corruption_ratio", "noise"),
                     "Train with noise augmentation when test images may be noisier than training images.",
                     n_boot, seed, metric="ratio"),
        _mean_change("adversarial_training", "Adversarial training improves adversarial robustness.",
                     f"mean change of robust IoU (attack ensemble) {paired}", change("robust_iou", "adversarial"),
                     "Use adversarial training when inputs may be manipulated.", n_boot, seed),
        _mean_change("adversarial_training_ratio", "Adversarial training improves adversarial robustness.",
                     f"mean change of the attacked/clean IoU ratio {paired}", change("robust_ratio", "adversarial"),
                     "Use adversarial training when inputs may be manipulated.", n_boot, seed, metric="ratio"),
        _mean_change("adversarial_training_cost", "Adversarial training costs clean accuracy.",
                     f"mean change of clean IoU {paired}", change("clean_iou", "adversarial"),
                     "Budget for a drop in clean accuracy when training adversarially.", n_boot, seed, positive=False),
    ]
    if real_scores is not None:
        findings += _real_image_rules(real_scores, n_boot, seed)
    if real_scores is not None and single_scores is not None:
        findings.append(_randomization_rule(real_scores, single_scores, n_boot, seed))
    if clean_scores is not None:
        findings.append(_output_stride_rule(clean_scores, n_boot, seed))
    findings = judge([*findings, *extra])
    if defense_checks is not None and _defense_unchecked(defense_checks, "adversarial"):
        for f in findings:
            if f.key in ("adversarial_training", "adversarial_training_ratio") and f.verdict == "supported":
                f.verdict = UNCHECKED_DEFENSE
    return findings


def _defense_unchecked(checks: pd.DataFrame, regime: str) -> bool:
    """Whether any `regime` model fails the attack checks (`fmlib.strength.attack_check`: masking
    suspected, or APGD not converged)."""
    rows = checks[checks.regime == regime]
    return bool(len(rows)) and bool((attack_check(rows).attack_check != PASSES).any())


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


def _randomization_rule(real_scores, single_scores, n_boot: int, seed: int) -> Finding:
    """Training on the study's randomized acquisitions against the paper's single acquisition, per
    architecture: the mean real-image IoU (the mean over the real test sources, so that one large
    source does not dominate) of the grid's ``randomized`` model minus that of its ``standard`` model
    of the same architecture (same configuration and seed). The unit is the architecture, as for the
    defenses: tiles of one pair of trained models say nothing about the training procedure."""
    key, claim = "domain_randomization_real", ("Training on simulated acquisitions with randomized physics improves "
                                               "segmentation of real images.")
    statistic = ("mean change of real-image IoU per architecture (the study's randomized acquisitions - a single "
                 "acquisition)")
    recommendation = ("Randomize the simulator's acquisition physics when training on synthetic images for real "
                      "ones.")

    pairs = randomization_pairs(real_scores, single_scores)
    return _mean_change(key, claim, statistic, pairs.change.to_numpy(), recommendation, n_boot, seed)


def randomization_pairs(real_scores: pd.DataFrame, single_scores: pd.DataFrame | None = None,
                        sources=REAL_TEST_SOURCES) -> pd.DataFrame:
    """Per architecture (the index), its mean real-image IoU trained on the study's randomized
    acquisitions (``randomized``: the ``randomized`` rows of `real_scores`) and on one acquisition,
    the paper's protocol (``single``: `single_scores`, by default the ``standard`` rows of
    `real_scores`), and ``randomized - single`` (``change``). Each is the mean over `sources` of the
    mean over that source's tiles, over the sources that both sides scored for that architecture; an
    architecture missing on either side (not trained, or kept out by the competence gate) is left out.

    Examples
    --------
    >>> tiles = pd.DataFrame({"method": ["a", "a", "b"], "source": ["dsb2018", "bbbc007_test", "dsb2018"],
    ...                       "tile": [0, 0, 0], "regime": "randomized", "iou": [0.8, 0.6, 0.7]})
    >>> randomization_pairs(tiles, tiles.assign(iou=[0.5, 0.5, 0.6]).iloc[[0, 2]]).round(2).to_dict("index")
    {'a': {'randomized': 0.8, 'single': 0.5, 'change': 0.3}, 'b': {'randomized': 0.7, 'single': 0.6, 'change': 0.1}}
    """
    def per_source(table):
        return table[table.source.isin(list(sources))].groupby(["method", "source"]).iou.mean()

    single = real_scores[real_scores.regime == "standard"] if single_scores is None else single_scores
    # only the (architecture, source) cells that both sides scored, so each pair averages the same sources
    both = pd.DataFrame({"randomized": per_source(real_scores[real_scores.regime == "randomized"]),
                         "single": per_source(single)}).dropna()
    pairs = both.groupby(level="method").mean()
    pairs.index.name = "model"
    return pairs.assign(change=pairs.randomized - pairs.single)


#: The paper's claims (its abstract, `shared/paper.md`) and the findings that test them here; a claim
#: whose finding is missing (the natural-image one, without `extra` findings) is "not tested here".
SCORECARD = (
    ("New connections between corruption robustness and adversarial robustness.", "corruption_vs_adversarial"),
    ("Models more accurate on clean images are more robust (the paper's recommendations on model choice).",
     "clean_vs_corruption"),
    ("Larger models are more robust (the paper's recommendations on model design).", "size_vs_corruption"),
    ("Vision transformers differ from CNNs in robustness (ten models 'such as DeepLab and Vision Transformer').",
     "transformer_vs_cnn"),
    ("Noise augmentation improves robustness to corruptions.", "noise_augmentation"),
    ("Adversarial training improves adversarial robustness.", "adversarial_training"),
    ("Models robust on natural images may perform poorly on FM images.", "natural_vs_fm"),
)


def scorecard(findings: list[Finding]) -> pd.DataFrame:
    """One row per claim of the paper (`SCORECARD`): our absolute measurement and the paper's ratio
    version beside it, each with its CI, Holm-adjusted p and verdict; "not tested here" where no
    finding tests the claim."""
    by_key = {f.key: f for f in findings}
    rows = []
    for claim, key in SCORECARD:
        row = {"paper's claim": claim, "paper's metric": "corrupted/clean IoU ratio (attacked/clean for attacks)"}
        for version, suffix in (("absolute", ""), ("ratio", "_ratio")):
            f = by_key.get(f"{key}{suffix}") if key else None
            row[f"{version}: statistic"] = f.statistic if f else "-"
            row[f"{version}: estimate"] = f.estimate if f else NAN
            row[f"{version}: CI"] = f"[{f.low:.3f}, {f.high:.3f}]" if f and not np.isnan(f.low) else "-"
            row[f"{version}: p (Holm)"] = f.p_holm if f else NAN
            row[f"{version}: verdict"] = f.verdict if f else "not tested here"
        rows.append(row)
    return pd.DataFrame(rows)
