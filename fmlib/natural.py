"""The paper's first claim, "models with good robustness on natural images may perform poorly on FM
images", set against published natural-image robustness.

The published numbers (`load_published`: ``data/natural_images/published_robustness.csv``, with its
provenance in the README beside it) are SemSegBench's (Agnihotri et al. 2025) for the four
architectures this study shares with it: U-Net, PSPNet, DeepLabV3+ and SegFormer. They are
mIoU on Cityscapes at corruption severity 3, and under PGD, SegPGD and CosPGD at 8/255.

- `natural_scores`: one published variant per architecture (`VARIANTS`: the smallest one with every
  metric, the nearest to this study's narrow models), with its clean and corrupted mIoU, the
  noise corruptions apart, and the retention (corrupted over clean).
- `fm_scores`: the same scores from this study's corruption table, at the same severity, on one
  structure and regime, with the noise family apart.
- `rank_agreement`: Spearman's ρ between the two sides for each score, with its exact permutation
  p-value. Four architectures give 24 orderings, so no two-sided p can fall below 2/24 = 0.083: the
  claim is *not testable here*, and the comparison is reported as a description.

Attacks at 8/255 leave every clean-trained natural-image model near 0 % mIoU, so they do not rank and
are not compared.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from .findings import Finding
from .paths import find_root
from .stats import correlation_p

#: Where the published table lives, relative to the repository root.
PUBLISHED = Path("data") / "natural_images" / "published_robustness.csv"
#: The published variant compared per dataset and architecture: the smallest with every metric.
VARIANTS: dict[str, dict[str, str]] = {
    "cityscapes": {
        "unet": "UNet-S5-D16 + FCN head (mmseg); train crop 512x1024",
        "pspnet": "ResNet-18-D8 (ResNet-V1c); train crop 512x1024",
        "deeplabv3plus": "ResNet-50-D8 (ResNet-V1c); train crop 512x1024",
        "segformer": "MiT-B0; train crop 1024x1024",
    },
}
#: The scores compared, on each side: clean, all corruptions, the noise corruptions, and retention.
SCORES = ("clean", "corrupted", "corrupted_noise", "corrupted_other", "retention", "retention_noise")
_METRICS = {"clean_miou": "clean", "corrupted_miou": "corrupted", "corrupted_miou_noise": "corrupted_noise",
            "corrupted_miou_other": "corrupted_other"}


def load_published(root: str | Path | None = None) -> pd.DataFrame:
    """The published natural-image table (`PUBLISHED`), one row per source, dataset, architecture,
    variant and metric, values in percent mIoU."""
    path = (Path(root) if root is not None else find_root()) / PUBLISHED
    if not path.exists():
        raise FileNotFoundError(f"root: no published natural-image table at {path}")
    return pd.read_csv(path)


def _with_retention(table: pd.DataFrame) -> pd.DataFrame:
    return table.assign(retention=table.corrupted / table.clean, retention_noise=table.corrupted_noise / table.clean)


def natural_scores(published: pd.DataFrame, dataset: str = "cityscapes",
                   variants: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Per architecture, the published scores of its chosen variant on `dataset` as fractions (not
    percent): ``clean``, ``corrupted``, ``corrupted_noise``, ``corrupted_other``, ``retention``
    (corrupted / clean), ``retention_noise``, and ``variant`` and ``pretraining``.

    Examples
    --------
    >>> pub = pd.DataFrame({"dataset": "cityscapes", "architecture": "unet", "variant": "v", "pretraining": "none",
    ...                     "metric": ["clean_miou", "corrupted_miou", "corrupted_miou_noise", "corrupted_miou_other"],
    ...                     "value": [80.0, 40.0, 10.0, 50.0]})
    >>> natural_scores(pub, variants={"unet": "v"})[["model", "clean", "retention"]].values.tolist()
    [['unet', 0.8, 0.5]]
    """
    if variants is None:
        if dataset not in VARIANTS:
            raise ValueError(f"dataset: no variants chosen for {dataset!r}; expected one of {sorted(VARIANTS)} "
                             f"or pass variants")
        variants = VARIANTS[dataset]
    rows = []
    for model, variant in variants.items():
        part = published[(published.dataset == dataset) & (published.architecture == model)
                         & (published.variant == variant) & published.metric.isin(list(_METRICS))]
        values = part.set_index("metric").value
        missing = sorted(set(_METRICS) - set(values.index))
        if missing:
            raise ValueError(f"published: {model} ({variant}) on {dataset} lacks {missing}")
        rows.append({"model": model, "variant": variant, "pretraining": part.pretraining.iloc[0],
                     **{name: float(values[m]) / 100.0 for m, name in _METRICS.items()}})
    return _with_retention(pd.DataFrame(rows))


def fm_scores(corruption: pd.DataFrame, *, structure: str = "nuclei", regime: str = "standard",
              severity: int = 3, noise_family: str = "noise") -> pd.DataFrame:
    """Per model, this study's scores in the shape of `natural_scores`, from the per-image corruption
    table (``model``, ``structure``, ``regime``, ``seed``, ``image``, ``corruption``, ``family``,
    ``severity``, ``iou``, ``clean_iou``): mean over seeds and images on `structure` under `regime`,
    at `severity` (SemSegBench's published severity is 3). A corruption that changes no image's IoU
    at all (one the models' input normalisation cancels exactly) is left out, as in the study's rankings."""
    part = corruption[(corruption.structure == structure) & (corruption.regime == regime)
                      & (corruption.severity == severity)]
    if part.empty:
        raise ValueError(f"corruption: no rows for {structure}, {regime}, severity {severity}")
    acting = part.groupby("corruption").apply(lambda g: bool((g.iou != g.clean_iou).any()), include_groups=False)
    part = part[part.corruption.isin(acting[acting].index)]
    noise = part.family == noise_family
    out = pd.DataFrame({
        "clean": part.drop_duplicates(["model", "seed", "image"]).groupby("model").clean_iou.mean(),
        "corrupted": part.groupby("model").iou.mean(),
        "corrupted_noise": part[noise].groupby("model").iou.mean(),
        "corrupted_other": part[~noise].groupby("model").iou.mean()}).reset_index()
    return _with_retention(out)


def exact_spearman(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Spearman's ρ of `x` and `y` and its exact two-sided permutation p-value (every pairing of the
    ranks: n! of them, so n is at most 8).

    Examples
    --------
    >>> rho, p = exact_spearman([1, 2, 3, 4], [10, 20, 30, 40])
    >>> round(rho, 3), round(p, 3)
    (1.0, 0.083)
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) != len(y) or not 3 <= len(x) <= 8:
        raise ValueError(f"x, y: expected two sequences of the same length, 3 to 8, got {len(x)} and {len(y)}")
    # the project's permutation test, exact over all n! pairings up to n = 8 (`fmlib.stats.correlation_p`)
    return float(stats.spearmanr(x, y).statistic), correlation_p(x, y, alternative="two-sided")


def rank_agreement(natural: pd.DataFrame, fm: pd.DataFrame, scores: Sequence[str] = SCORES) -> pd.DataFrame:
    """Per score, Spearman's ρ across the architectures both sides have, with its exact p and the
    smallest p the design allows (``p_min``: 2 / n!); NaN where fewer than three are shared."""
    both = natural.merge(fm, on="model", suffixes=("_natural", "_fm"))
    rows = []
    for score in scores:
        # fewer than three shared architectures (a profile with other models) have no ranking to compare
        rho, p = (exact_spearman(both[f"{score}_natural"], both[f"{score}_fm"]) if len(both) >= 3
                  else (float("nan"), float("nan")))
        rows.append({"score": score, "n_models": len(both), "rho": rho, "p_value": p,
                     "p_min": 2 / math.factorial(len(both)) if len(both) >= 3 else float("nan"),
                     "models": ", ".join(both.model)})
    return pd.DataFrame(rows)


def finding(agreement: pd.DataFrame, *, score: str = "corrupted", dataset: str = "Cityscapes",
            structure: str = "nuclei") -> Finding:
    """The paper's natural-image claim as a `Finding` on the agreement of one score: ``"corrupted"``
    (the absolute claim) or ``"retention"`` (its twin on the paper's ratio, in the secondary family).
    The claim is that the natural-image ranking does not carry over (ρ below zero). With four
    architectures no outcome can reach p 0.05, so the verdict is "not testable here" whatever ρ is
    (`fmlib.findings.judge`)."""
    if score not in ("corrupted", "retention"):
        raise ValueError(f"score: expected 'corrupted' or 'retention', got {score!r}")
    row = agreement.set_index("score").loc[score]
    what = ("corrupted mIoU on {d} (published) vs corrupted IoU on {s}" if score == "corrupted" else
            "corrupted/clean mIoU on {d} (published) vs corrupted/clean IoU on {s}").format(d=dataset, s=structure)
    n = int(row.n_models)
    return Finding("natural_vs_fm" + ("" if score == "corrupted" else "_ratio"),
                   "Models robust on natural images may perform poorly on FM images.",
                   "absolute" if score == "corrupted" else "ratio",
                   f"Spearman ρ across {n} shared architectures: {what} (the claim: below zero)",
                   float(row.rho), float("nan"), float("nan"), n,
                   f"exact permutation ({math.factorial(n)} orderings), two-sided", float(row.p_value),
                   float(row.p_min),
                   "Do not take a robustness ranking from natural images for FM images: measure on FM images.",
                   claimed_sign=-1)
