"""Metrics: image quality of corrupted images (and, later, segmentation scores).

Image quality is measured against the clean image, per image:

- PSNR and SSIM (scikit-image, data range 1);
- SNR against the clean image: the mean foreground signal above the background of the clean image,
  divided by the rms difference between corrupted and clean image over all pixels. Unlike the
  simulator's SNR (photon noise alone) it counts every change the corruption made as noise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def image_quality(clean: np.ndarray, corrupted: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """PSNR (dB), SSIM and SNR of one corrupted image against its clean version and mask."""
    clean = np.asarray(clean, dtype=np.float64)
    corrupted = np.asarray(corrupted, dtype=np.float64)
    mask = np.asarray(mask).astype(bool)
    if clean.ndim != 2 or clean.shape != corrupted.shape or clean.shape != mask.shape:
        raise ValueError(f"corrupted, mask: expected the 2D shape of clean {clean.shape}, "
                         f"got {corrupted.shape} and {mask.shape}")
    if not mask.any() or mask.all():
        raise ValueError("mask: needs both foreground and background pixels")
    error = corrupted - clean
    rms = float(np.sqrt(np.mean(error**2)))
    signal = clean[mask].mean() - clean[~mask].mean()
    return {
        "psnr_db": float(peak_signal_noise_ratio(clean, corrupted, data_range=1.0)) if rms > 0 else float("inf"),
        "ssim": float(structural_similarity(clean, corrupted, data_range=1.0)),
        "snr": float(signal / rms) if rms > 0 else float("inf"),
    }


# ----------------------------------------------------------------------------------------------
# Segmentation scores
# ----------------------------------------------------------------------------------------------

SMOOTH = 1e-5  # the paper's code adds it to the union, so an empty prediction of an empty mask scores 0


def segmentation_scores(pred: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image IoU, Dice, precision and recall of binary predictions.

    Parameters
    ----------
    pred, target : ndarray of bool, shape (N, H, W) (or (H, W) for one image)
        Predicted and true foreground.

    Returns
    -------
    dict of float64 arrays of shape (N,): ``iou`` = |P and T| / (|P or T| + 1e-5) (the paper's
    formula), ``dice`` = 2|P and T| / (|P| + |T| + 1e-5), ``precision``, ``recall``.
    """
    pred = np.asarray(pred).astype(bool)
    target = np.asarray(target).astype(bool)
    if pred.shape != target.shape or pred.ndim not in (2, 3):
        raise ValueError(f"target: expected the shape of pred {pred.shape} (2D or 3D), got {target.shape}")
    if pred.ndim == 2:
        pred, target = pred[None], target[None]
    axes = (1, 2)
    inter = (pred & target).sum(axes).astype(np.float64)
    p, t = pred.sum(axes).astype(np.float64), target.sum(axes).astype(np.float64)
    return {"iou": inter / (p + t - inter + SMOOTH), "dice": 2 * inter / (p + t + SMOOTH),
            "precision": inter / (p + SMOOTH), "recall": inter / (t + SMOOTH)}


# ----------------------------------------------------------------------------------------------
# Robustness scores (the paper's)
# ----------------------------------------------------------------------------------------------

def robustness_ratio(degraded_iou, clean_iou):
    """The paper's per-image robustness ``IoU(degraded) / IoU(clean)``, elementwise; a clean IoU
    below 1e-5 counts as 1e-5, so a model that fails on the clean image does not divide by zero.
    Returns the type it is given (a pandas Series stays a Series).

    Examples
    --------
    >>> robustness_ratio(np.array([0.4, 0.0]), np.array([0.8, 0.0])).tolist()
    [0.5, 0.0]
    """
    return degraded_iou / np.maximum(clean_iou, SMOOTH)


def ratio_of_means(degraded_iou, clean_iou, axis=None):
    """The paper's ratio (degraded / clean IoU) as the ratio of the two mean IoUs over `axis`: what
    the study reports. The mean of per-image ratios (`relative_robustness`, as the paper's code
    computes it) is unbounded where a clean IoU is near zero, so one such image can outweigh a whole
    test set; the ratio of means stays within the range of the scores. A mean clean IoU below 1e-5
    counts as 1e-5, as in `robustness_ratio`.

    Examples
    --------
    >>> round(float(ratio_of_means([0.05, 0.8], [0.001, 0.9])), 3)  # the mean per-image ratio: 25.4
    0.943
    """
    degraded_iou = np.asarray(degraded_iou, dtype=np.float64)
    clean_iou = np.asarray(clean_iou, dtype=np.float64)
    return degraded_iou.mean(axis=axis) / np.maximum(clean_iou.mean(axis=axis), SMOOTH)


def relative_robustness(degraded_iou, clean_iou) -> float:
    """The paper's robustness: per-image ``IoU(degraded) / IoU(clean)``, averaged over images."""
    degraded_iou = np.asarray(degraded_iou, dtype=np.float64)
    clean_iou = np.asarray(clean_iou, dtype=np.float64)
    if degraded_iou.shape != clean_iou.shape or degraded_iou.ndim != 1 or not len(degraded_iou):
        raise ValueError("clean_iou: expected a 1D array of the shape of degraded_iou")
    return float(np.mean(robustness_ratio(degraded_iou, clean_iou)))


def adversarial_score(table, by: list[str]) -> pd.DataFrame:
    """The paper's adversarial robustness score: its ratio of attacked to clean IoU at each budget
    (`ratio_of_means` over the images), averaged over the budgets.

    `table` is tidy, one row per image and budget, with columns ``eps``, ``iou`` and ``clean_iou``
    (as `fmlib.attacks.evaluate_attack` returns) plus the grouping columns `by`.
    Returns one row per group with ``score`` and ``mean_iou``.
    """
    per_eps = (table.groupby([*by, "eps"], sort=False).agg(iou=("iou", "mean"), clean=("clean_iou", "mean"))
               .reset_index())
    per_eps["ratio"] = robustness_ratio(per_eps.iou, per_eps.clean)  # the ratio of the two means
    return per_eps.groupby(by, sort=False).agg(score=("ratio", "mean"), mean_iou=("iou", "mean")).reset_index()


def corruption_errors(table, reference: str, *, model_col: str = "model", by: tuple[str, ...] = ("corruption",),
                      value: str = "iou", clean_col: str = "clean_iou") -> pd.DataFrame:
    """ImageNet-C corruption errors on ``1 - IoU``, relative to a fixed reference model (Kamann & Rother).

    For model f and corruption c, summing over severities s (means over images first):

    - ``CE = sum_s (1 - IoU_fsc) / sum_s (1 - IoU_ref,sc)``;
    - ``rCE = sum_s (IoU_f,clean - IoU_fsc) / sum_s (IoU_ref,clean - IoU_ref,sc)``, the degradation
      relative to the model's own clean accuracy.

    `table` has one row per image, model, corruption and severity, with `value` and `clean_col`.
    Returns one row per model and group of `by` with ``ce`` and ``rce`` (the reference scores 1).
    """
    keys = [model_col, *by]
    mean = table.groupby([*keys, "severity"], sort=False)[[value, clean_col]].mean().reset_index()
    sums = mean.assign(err=1 - mean[value], drop=mean[clean_col] - mean[value]).groupby(keys, sort=False)[
        ["err", "drop"]].sum().reset_index()
    ref = sums[sums[model_col] == reference].drop(columns=model_col)
    if ref.empty:
        raise ValueError(f"reference: model {reference!r} is not in the table")
    merged = sums.merge(ref, on=list(by), suffixes=("", "_ref"))
    merged["ce"] = merged.err / merged.err_ref.where(merged.err_ref > 0)
    merged["rce"] = merged["drop"] / merged.drop_ref.where(merged.drop_ref.abs() > 1e-12)
    return merged[[*keys, "ce", "rce"]]


def bootstrap_ci(values, statistic=np.mean, *, n_boot: int = 2000, confidence: float = 0.95,
                 seed: int = 0) -> tuple[float, float, float]:
    """A statistic of `values` and its percentile bootstrap confidence interval: (estimate, low, high)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or len(values) == 0:
        raise ValueError("values: expected a non-empty 1D array")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n_boot, len(values)))
    boots = np.array([statistic(values[i]) for i in idx])
    alpha = (1 - confidence) / 2
    return float(statistic(values)), float(np.quantile(boots, alpha)), float(np.quantile(boots, 1 - alpha))


def bootstrap_scores(table, value: str, by: list[str], *, unit: str = "image", n_boot: int = 2000,
                     confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Mean of `value` per group of `by`, with a bootstrap CI over the resampling `unit` (images;
    pass a column combining image and seed where there are several seeds)."""
    rows = []
    for key, group in table.groupby(by, sort=False):
        per_unit = group.groupby(unit)[value].mean().to_numpy()
        est, lo, hi = bootstrap_ci(per_unit, n_boot=n_boot, confidence=confidence, seed=seed)
        rows.append({**dict(zip(by, key if isinstance(key, tuple) else (key,))), "mean": est, "ci_low": lo,
                     "ci_high": hi, "n": len(per_unit)})
    return pd.DataFrame(rows)


def bootstrap_ranks(table, value: str, *, model_col: str = "model", unit: str = "image", higher_is_better: bool = True,
                    over: str | None = None, n_boot: int = 2000, confidence: float = 0.95,
                    seed: int = 0) -> pd.DataFrame:
    """Rank of each model by the mean of `value`, with a bootstrap CI: the units (images) are resampled
    jointly for all models, so the ranks of one resample are consistent. Rank 1 is the best. With
    `over` (a column such as ``clean_iou``), the score is the ratio of the means of `value` and `over`
    (`ratio_of_means`: the paper's ratio), and ``mean`` holds that ratio."""
    wide = table.pivot_table(index=unit, columns=model_col, values=value, aggfunc="mean").dropna()
    if wide.empty:
        raise ValueError(f"table: no {unit} has a {value} for every model")
    data = wide.to_numpy()
    base = (table.pivot_table(index=unit, columns=model_col, values=over, aggfunc="mean")
            .reindex(index=wide.index, columns=wide.columns).to_numpy() if over is not None else None)
    sign = -1 if higher_is_better else 1

    def score(rows):
        return data[rows].mean(axis=0) if base is None else ratio_of_means(data[rows], base[rows], axis=0)

    def ranks(rows):
        order = np.argsort(np.argsort(sign * score(rows), kind="stable"), kind="stable")
        return order + 1

    rng = np.random.default_rng(seed)
    every = np.arange(len(data))
    boots = np.array([ranks(rng.integers(0, len(data), len(data))) for _ in range(n_boot)])
    alpha = (1 - confidence) / 2
    return pd.DataFrame({model_col: wide.columns, "mean": score(every), "rank": ranks(every),
                         "rank_ci_low": np.quantile(boots, alpha, axis=0),
                         "rank_ci_high": np.quantile(boots, 1 - alpha, axis=0)}
                        ).sort_values("rank").reset_index(drop=True)


def correlation_ci(x, y, *, method: str = "spearman", n_boot: int = 2000, confidence: float = 0.95,
                   seed: int = 0) -> tuple[float, float, float]:
    """Spearman or Pearson correlation of paired values (e.g. one pair per model), with a bootstrap CI
    over the pairs: (r, low, high). Resamples with fewer than two distinct values are skipped."""
    if method not in ("spearman", "pearson"):
        raise ValueError(f"method: expected 'spearman' or 'pearson', got {method!r}")
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 3:
        raise ValueError("y: expected two 1D arrays of the same length, at least 3")
    corr = (lambda a, b: stats.spearmanr(a, b)[0]) if method == "spearman" else (lambda a, b: stats.pearsonr(a, b)[0])
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        i = rng.integers(0, len(x), len(x))
        if np.ptp(x[i]) > 0 and np.ptp(y[i]) > 0:
            boots.append(corr(x[i], y[i]))
    alpha = (1 - confidence) / 2
    return float(corr(x, y)), float(np.quantile(boots, alpha)), float(np.quantile(boots, 1 - alpha))
