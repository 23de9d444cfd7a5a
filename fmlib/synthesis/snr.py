"""SNR measurements on images: from two exposures of a scene (`measure_snr`), or from one image
and its mask (`estimate_snr`), for synthetic and real images alike."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage


def measure_snr(image_a: np.ndarray, image_b: np.ndarray, mask: np.ndarray, *, background_margin_px: int = 3) -> float:
    """Measure the SNR of two exposures of the same scene, in any linear unit (electrons, ADU - offset).

    Signal: mean over the mask of the first image, minus the mean of the background (pixels farther
    than `background_margin_px` from the mask). Noise: ``sqrt(var(a - b) / 2)`` over the mask,
    which is the noise at the foreground signal level without the scene's own texture.
    """
    a = np.asarray(image_a, dtype=np.float64)
    b = np.asarray(image_b, dtype=np.float64)
    mask = np.asarray(mask).astype(bool)
    if a.shape != b.shape or a.shape != mask.shape:
        raise ValueError(f"image_b, mask: expected the shape of image_a {a.shape}, got {b.shape} and {mask.shape}")
    far = ~ndimage.binary_dilation(mask, iterations=background_margin_px, axes=(-2, -1))
    if not mask.any() or not far.any():
        raise ValueError("mask: need both foreground pixels and background pixels far from it")
    signal = a[mask].mean() - a[far].mean()
    noise = math.sqrt((a - b)[mask].var() / 2.0)
    return float(signal / noise)


def estimate_snr(image: np.ndarray, mask: np.ndarray, *, background_margin_px: int = 3) -> float:
    """Estimate the SNR of a single image (real or synthetic) from its mask.

    Signal: mean of the foreground (eroded by one pixel, away from edges) minus the mean of the
    background farther than `background_margin_px` from the mask. Noise: the standard deviation of
    differences between horizontally adjacent foreground pixels, divided by sqrt(2); fine texture
    counts as noise, so this is a conservative (low) estimate. Use `measure_snr` when two exposures
    of the scene exist.
    """
    image = np.asarray(image, dtype=np.float64)
    mask = np.asarray(mask).astype(bool)
    if image.shape != mask.shape or image.ndim != 2:
        raise ValueError(f"mask: expected the 2D shape of image {image.shape}, got {mask.shape}")
    core = ndimage.binary_erosion(mask)
    far = ~ndimage.binary_dilation(mask, iterations=background_margin_px)
    pairs = core[:, 1:] & core[:, :-1]
    if not pairs.any() or not far.any():
        raise ValueError("mask: need foreground pixels and background pixels far from it")
    signal = image[core].mean() - image[far].mean()
    noise = np.diff(image, axis=1)[pairs].std() / math.sqrt(2.0)
    return float(signal / noise)
