"""Metrics: image quality of corrupted images (and, later, segmentation scores).

Image quality is measured against the clean image, per image:

- PSNR and SSIM (scikit-image, data range 1);
- SNR against the clean image: the mean foreground signal above the background of the clean image,
  divided by the rms difference between corrupted and clean image over all pixels. Unlike the
  simulator's SNR (photon noise alone) it counts every change the corruption made as noise.
"""

from __future__ import annotations

import numpy as np
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

def relative_robustness(degraded_iou, clean_iou) -> float:
    """The paper's robustness: per-image ``IoU(degraded) / IoU(clean)``, averaged over images."""
    degraded_iou = np.asarray(degraded_iou, dtype=np.float64)
    clean_iou = np.asarray(clean_iou, dtype=np.float64)
    if degraded_iou.shape != clean_iou.shape or degraded_iou.ndim != 1 or not len(degraded_iou):
        raise ValueError("clean_iou: expected a 1D array of the shape of degraded_iou")
    return float(np.mean(degraded_iou / np.maximum(clean_iou, SMOOTH)))


def adversarial_score(table, by: list[str]) -> "pandas.DataFrame":
    """The paper's adversarial robustness score: the relative robustness averaged over the budgets.

    `table` is tidy, one row per image and budget, with columns ``eps``, ``iou`` and ``clean_iou``
    (as `fmlib.attacks.evaluate_attack` returns) plus the grouping columns `by`.
    Returns one row per group with ``score`` and ``mean_iou``.
    """
    per_eps = (table.assign(ratio=table.iou / np.maximum(table.clean_iou, SMOOTH))
               .groupby([*by, "eps"], sort=False).agg(ratio=("ratio", "mean"), iou=("iou", "mean")).reset_index())
    return per_eps.groupby(by, sort=False).agg(score=("ratio", "mean"), mean_iou=("iou", "mean")).reset_index()
