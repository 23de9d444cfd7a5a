"""Sampling (digital) corruptions: pixel binning, bit depth and JPEG compression."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from .registry import register_corruption


@register_corruption("undersampling", "sampling", "binning factor", "pixels", (2, 3, 4, 5, 6),
                     "Pixelation: k x k binning (or a k-times larger camera pixel), shown at the original size.")
def _undersampling(x, k, rngs, acq):
    n, h, w = x.shape
    hp, wp = -(-h // k) * k, -(-w // k) * k
    padded = np.pad(x, ((0, 0), (0, hp - h), (0, wp - w)), mode="edge")
    binned = padded.reshape(n, hp // k, k, wp // k, k).mean(axis=(2, 4))
    blocks = np.broadcast_to(binned[:, :, None, :, None], (n, hp // k, k, wp // k, k))
    return blocks.reshape(n, hp, wp)[:, :h, :w]


@register_corruption("bit_depth", "sampling", "bits", "bits", (6, 5, 4, 3, 2),
                     "Quantization of the display image to fewer bits.")
def _bit_depth(x, bits, rngs, acq):
    levels = 2**bits - 1
    return np.round(np.clip(x, 0, 1) * levels) / levels


@register_corruption("jpeg_compression", "sampling", "JPEG quality", "", (80, 60, 40, 20, 10),
                     "Lossy JPEG compression of the 8-bit display image.")
def _jpeg(x, quality, rngs, acq):
    grey = np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)
    out = np.empty(x.shape, np.uint8)
    for i, image in enumerate(grey):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=quality)
        out[i] = np.asarray(Image.open(buffer))
    return out / 255.0
