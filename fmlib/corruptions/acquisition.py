"""The acquisition behind an image, and the machinery every family shares.

`_Acquisition` converts between display-mapped images and photo-electrons: from a synthesis
`Dataset` (`_from_dataset`: its raw counts, camera and photon budget), or for a plain float image
from the reference acquisition (`_reference`, the ``REFERENCE_*`` constants). `_thin` removes
photons with the statistics of a fresh acquisition; `_each` applies a per-image function with its
own generator.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..synthesis import (
    CAMERAS,
    DISPLAY_BLACK,
    DISPLAY_SIGNAL,
    Camera,
    Optics,
    signal_for_snr,
)

#: The acquisition assumed for a plain float image (see the `fmlib.corruptions` docstring).
REFERENCE_SNR = 8.0
REFERENCE_BACKGROUND_RATIO = 0.15
REFERENCE_CAMERA = CAMERAS["scmos"]
REFERENCE_OPTICS = Optics(wavelength_nm=520.0, numerical_aperture=1.4, refractive_index=1.518)
REFERENCE_PIXEL_UM = 0.1


@dataclass
class _Acquisition:
    camera: Camera
    signal_e: np.ndarray            # (N,) mean foreground signal, electrons
    background_ratio: np.ndarray    # (N,) background / signal
    optics: Optics
    pixel_size_um: float
    electrons_in: np.ndarray | None = None  # (N, H, W) measured electrons, when counts are known

    def electrons(self, x: np.ndarray) -> np.ndarray:
        if self.electrons_in is not None:
            return self.electrons_in.astype(np.float64)
        return (x - DISPLAY_BLACK) / DISPLAY_SIGNAL * self.signal_e[:, None, None]

    @staticmethod
    def display(electrons: np.ndarray, signal_e: np.ndarray) -> np.ndarray:
        return DISPLAY_BLACK + DISPLAY_SIGNAL * electrons / np.asarray(signal_e, float)[:, None, None]


def _reference(n: int) -> _Acquisition:
    s = signal_for_snr(REFERENCE_SNR, REFERENCE_BACKGROUND_RATIO, REFERENCE_CAMERA)
    return _Acquisition(REFERENCE_CAMERA, np.full(n, s), np.full(n, REFERENCE_BACKGROUND_RATIO), REFERENCE_OPTICS,
                        REFERENCE_PIXEL_UM)


def _from_dataset(dataset, shape: tuple) -> _Acquisition:
    if tuple(dataset.images.shape) != tuple(shape):
        raise ValueError(f"dataset: its images have shape {dataset.images.shape}, but image has shape {shape}; "
                         "pass dataset.images (or a matching slice of the dataset)")
    signal_e = np.array([m["signal_e"] for m in dataset.metadata], float)
    background = np.array([m["background_e"] for m in dataset.metadata], float) / signal_e
    o = dataset.params["optics"]
    return _Acquisition(dataset.camera, signal_e, background, Optics(**o), dataset.pixel_size_um,
                        electrons_in=dataset.electrons())


def _thin(electrons: np.ndarray, fraction: np.ndarray, camera: Camera, rngs) -> np.ndarray:
    """Keep `fraction` of the photons: the mean and variance of a fresh acquisition with fewer photons.

    Scaling by f leaves shot variance f^2 F^2 E and read variance f^2 sigma^2; adding a centred
    Poisson term of variance F^2 f (1 - f) E and read noise of variance (1 - f^2) sigma^2 restores
    F^2 f E + sigma^2, the camera's noise at the reduced budget.
    """
    out = np.empty_like(electrons)
    for i, rng in enumerate(rngs):
        f = float(fraction[i])
        if not 0 < f <= 1:
            raise ValueError(f"severity: needs {1 / f:.2f} times the photons the image has; corruptions can only "
                             "remove photons (is the input already noisier than the requested level?)")
        lam = camera.excess_noise_factor_sq * f * (1 - f) * np.maximum(electrons[i], 0)
        shot = rng.poisson(lam) - lam
        read = rng.normal(0.0, camera.read_noise_e * math.sqrt(max(1 - f * f, 0.0)), size=lam.shape)
        out[i] = f * electrons[i] + shot + read
    return out


def _each(x: np.ndarray, rngs, fn: Callable) -> np.ndarray:
    """Apply fn(image, rng) to each image of a batch."""
    return np.stack([fn(image, rng) for image, rng in zip(x, rngs)])
