"""Noise corruptions: fewer photons, camera read noise, Poisson-Gaussian, impulse and EMCCD noise."""

from __future__ import annotations

import math

import numpy as np

from ..synthesis import CAMERAS, DISPLAY_BLACK, DISPLAY_SIGNAL, signal_for_snr
from .acquisition import _each, _thin
from .registry import register_corruption


@register_corruption("photon_noise", "noise", "SNR", "S / noise over the foreground", (6.0, 4.0, 3.0, 2.0, 1.0),
                     "Fewer photons: the paper's SNR ladder below the clean SNR 8, by photon thinning.", physical=True)
def _photon_noise(x, snr, rngs, acq):
    target = np.array([signal_for_snr(snr, b, acq.camera) for b in acq.background_ratio])
    electrons = _thin(acq.electrons(x), target / acq.signal_e, acq.camera, rngs)
    return electrons, target  # display set for the new budget, as in make_dataset


@register_corruption("read_noise", "noise", "read noise", "e- rms", (4.0, 8.0, 16.0, 32.0, 64.0),
                     "Gaussian camera read noise of the given total rms, in electrons.", physical=True)
def _read_noise(x, sigma_e, rngs, acq):
    extra = math.sqrt(max(sigma_e**2 - acq.camera.read_noise_e**2, 0.0))
    electrons = acq.electrons(x)
    noisy = electrons + np.stack([rng.normal(0.0, extra, size=x.shape[1:]) for rng in rngs])
    return noisy, acq.signal_e


@register_corruption("poisson_gaussian", "noise", "(a, sigma)", "grey level (image in [0, 1])",
                     ((0.0025, 0.01), (0.005, 0.02), (0.01, 0.03), (0.02, 0.05), (0.04, 0.08)),
                     "Mixed Poisson-Gaussian noise a * Poisson(x / a) + N(0, sigma^2), as in the paper's updated "
                     "release.")
def _poisson_gaussian(x, params, rngs, acq):
    a, sigma = params

    def one(image, rng):
        return a * rng.poisson(np.maximum(image, 0) / a) + rng.normal(0.0, sigma, size=image.shape)

    return _each(x, rngs, one)


@register_corruption("hot_pixels", "noise", "fraction of pixels", "", (0.002, 0.005, 0.01, 0.02, 0.05),
                     "Impulse noise: hot (white) and dead (black) pixels, half each.")
def _hot_pixels(x, fraction, rngs, acq):
    out = x.copy()
    for image, rng in zip(out, rngs):
        u = rng.random(image.shape)
        image[u < fraction / 2] = 0.0
        image[u > 1 - fraction / 2] = 1.0
    return out


@register_corruption("em_gain_noise", "noise", "photo-electrons per foreground pixel", "e-",
                     (50.0, 25.0, 12.0, 6.0, 3.0),
                     "EMCCD acquisition at a low photon budget: shot noise doubled by the electron-multiplying "
                     "register.")
def _em_gain_noise(x, electrons_fg, rngs, acq):
    camera = CAMERAS["emccd"]
    relative = np.maximum((x - DISPLAY_BLACK) / DISPLAY_SIGNAL, 0.0)

    def one(image, rng):
        counts = rng.poisson(image * electrons_fg)
        multiplied = rng.gamma(np.maximum(counts, 1e-12), 1.0) * (counts > 0)
        return multiplied + rng.normal(0.0, camera.read_noise_e, size=image.shape)

    return acq.display(_each(relative, rngs, one), np.full(len(x), electrons_fg))
