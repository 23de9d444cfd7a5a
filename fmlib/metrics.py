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
