"""Illumination corruptions: contrast, brightness, uneven excitation, haze, photobleaching, saturation."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..synthesis import DISPLAY_BLACK
from .acquisition import _each, _thin
from .registry import register_corruption


@register_corruption("low_contrast", "illumination", "contrast factor", "", (0.75, 0.5, 0.35, 0.25, 0.15),
                     "Contrast reduced around the image mean.")
def _low_contrast(x, factor, rngs, acq):
    mean = x.mean(axis=(1, 2), keepdims=True)
    return mean + (x - mean) * factor


@register_corruption("brightness", "illumination", "offset", "grey level (image in [0, 1])",
                     (0.05, 0.1, 0.2, 0.3, 0.4),
                     "A constant offset (camera bias or dark-level change).")
def _brightness(x, offset, rngs, acq):
    return x + offset


@register_corruption("uneven_illumination", "illumination", "intensity lost at the far corner", "",
                     (0.1, 0.2, 0.35, 0.5, 0.7),
                     "Vignetting / flat-field error: a radial fall-off of the excitation around a random centre.")
def _uneven_illumination(x, falloff, rngs, acq):
    h, w = x.shape[1:]
    yy, xx = np.mgrid[:h, :w]

    def one(image, rng):
        cy, cx = (0.5 + rng.uniform(-0.2, 0.2, 2)) * (h, w)
        r2 = (yy - cy) ** 2 + (xx - cx) ** 2
        profile = 1 - falloff * r2 / r2.max()
        return DISPLAY_BLACK + (image - DISPLAY_BLACK) * profile  # the camera offset is not illuminated

    return _each(x, rngs, one)


@register_corruption("background_haze", "illumination", "haze", "fraction of the foreground signal",
                     (0.05, 0.1, 0.2, 0.3, 0.45),
                     "Out-of-focus light and autofluorescence: smooth extra background, with its shot noise.",
                     physical=True)
def _background_haze(x, level, rngs, acq):
    electrons = acq.electrons(x)
    h, w = x.shape[1:]
    out = np.empty_like(electrons)
    for i, rng in enumerate(rngs):
        # A smooth random field on the scale of an eighth of the image: cubic interpolation of a
        # coarse random grid (a Gaussian filter that wide would cost more than the rest together).
        coarse = rng.standard_normal((9, 9))
        field = ndimage.zoom(coarse, (h / 9, w / 9), order=3, mode="grid-mirror", grid_mode=True)
        field = np.maximum(1 + 0.5 * (field - field.mean()) / (field.std() + 1e-12), 0)
        haze = level * acq.signal_e[i] * field
        lam = acq.camera.excess_noise_factor_sq * haze
        out[i] = electrons[i] + haze + (rng.poisson(lam) - lam)
    return out, acq.signal_e


@register_corruption("photobleaching", "illumination", "fluorescence left", "fraction", (0.8, 0.6, 0.45, 0.3, 0.2),
                     "Photobleaching: fewer emitted photons, so a darker and relatively noisier image.",
                     physical=True)
def _photobleaching(x, left, rngs, acq):
    # Only the fluorophores bleach; to first order the background bleaches alike.
    electrons = _thin(acq.electrons(x), np.full(len(x), left), acq.camera, rngs)
    return electrons, acq.signal_e  # display unchanged: the image gets darker


@register_corruption("saturation", "illumination", "full well", "fraction of the brightest signal",
                     (0.9, 0.75, 0.6, 0.45, 0.3),
                     "Clipping at the full-well capacity (or a too-high gain): the brightest signal saturates at a "
                     "fraction of its level (99.9th percentile above the camera offset).")
def _saturation(x, level, rngs, acq):
    top = np.percentile(x, 99.9, axis=(1, 2), keepdims=True)
    return np.minimum(x, DISPLAY_BLACK + level * np.maximum(top - DISPLAY_BLACK, 0))
