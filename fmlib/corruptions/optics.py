"""Optics corruptions (blur): defocus, a wider Gaussian PSF, stage drift and astigmatism.

The PSF blurs go through `_convolve`, an FFT convolution whose kernel spectra are cached, since
the same kernel serves a whole batch or sweep.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import fft as sp_fft
from scipy import ndimage

from ..synthesis import Optics
from ..synthesis.optics import depth_of_field_um, pupil_psf
from .acquisition import _each
from .registry import register_corruption


@functools.lru_cache(maxsize=32)
def _kernel_spectrum(kernel_bytes: bytes, kernel_shape: tuple, fft_shape: tuple) -> np.ndarray:
    kernel = np.frombuffer(kernel_bytes, dtype=np.float64).reshape(kernel_shape).astype(np.float32)
    return sp_fft.rfft2(kernel, fft_shape)


def _convolve(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve each image with `kernel` (FFT), mirroring the borders so no intensity is lost.

    The kernel's spectrum is cached, so a batch, or a sweep over images, pays for it once.
    """
    kh, kw = kernel.shape
    ph, pw = kh // 2, kw // 2
    # Single precision halves the FFT cost; its ~1e-7 relative error is far below a grey level.
    padded = np.pad(x.astype(np.float32), ((0, 0), (ph, ph), (pw, pw)), mode="reflect")
    fft_shape = tuple(sp_fft.next_fast_len(n, real=True) for n in padded.shape[1:])
    kernel = np.ascontiguousarray(kernel, dtype=np.float64)
    spectrum = _kernel_spectrum(kernel.tobytes(), kernel.shape, fft_shape)
    full = sp_fft.irfft2(sp_fft.rfft2(padded, fft_shape, axes=(1, 2)) * spectrum, fft_shape, axes=(1, 2))
    h, w = x.shape[1:]
    return full[:, kh - 1:kh - 1 + h, kw - 1:kw - 1 + w]


@functools.lru_cache(maxsize=64)
def _pupil_kernel(optics: Optics, pixel_size_um: float, defocus_um: float = 0.0, astigmatism_waves: float = 0.0):
    # Half-width: the geometric blur radius plus a few in-focus PSF widths, in pixels.
    half_angle = math.asin(optics.numerical_aperture / optics.refractive_index)
    radius_um = abs(defocus_um) * math.tan(half_angle) + 4 * optics.psf_sigma_um * (1 + 4 * abs(astigmatism_waves))
    half = int(min(max(math.ceil(radius_um / pixel_size_um), 3), 48))
    return pupil_psf(optics, pixel_size_um, 2 * half + 1, defocus_um=defocus_um, astigmatism_waves=astigmatism_waves)


def _line_kernel(length: float, angle: float) -> np.ndarray:
    half = int(math.ceil(length / 2)) + 1
    kernel = np.zeros((2 * half + 1, 2 * half + 1))
    t = np.linspace(-length / 2, length / 2, max(int(length * 8), 2))
    ys, xs = half + t * math.sin(angle), half + t * math.cos(angle)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    wy, wx = ys - y0, xs - x0
    for dy, dx, w in ((0, 0, (1 - wy) * (1 - wx)), (1, 0, wy * (1 - wx)), (0, 1, (1 - wy) * wx), (1, 1, wy * wx)):
        np.add.at(kernel, (y0 + dy, x0 + dx), w)
    return kernel / kernel.sum()


@register_corruption("defocus", "optics", "defocus", "depths of field (lambda n / NA^2)", (0.5, 1.0, 1.5, 2.0, 3.0),
                     "Out-of-focus imaging: convolution with the scalar pupil-function PSF at the given defocus.")
def _defocus(x, dof, rngs, acq):
    z = dof * depth_of_field_um(acq.optics)
    return _convolve(x, _pupil_kernel(acq.optics, acq.pixel_size_um, defocus_um=z))


@register_corruption("gaussian_blur", "optics", "sigma", "pixels", (0.5, 1.0, 1.5, 2.0, 3.0),
                     "Gaussian blur (a wider in-focus PSF).")
def _gaussian_blur(x, sigma, rngs, acq):
    return ndimage.gaussian_filter(x, (0, sigma, sigma), mode="reflect", truncate=3.0)


@register_corruption("motion_blur", "optics", "drift during the exposure", "pixels", (2.0, 4.0, 6.0, 9.0, 12.0),
                     "Stage drift during the exposure: a straight blur of the given length in a random direction.")
def _motion_blur(x, length, rngs, acq):
    return _each(x, rngs, lambda image, rng: _convolve(image[None], _line_kernel(length, rng.uniform(0, np.pi)))[0])


@register_corruption("astigmatism", "optics", "astigmatism Z(2,2)", "waves rms", (0.1, 0.2, 0.3, 0.45, 0.6),
                     "Astigmatic PSF from a Zernike Z(2,2) pupil aberration (e.g. a tilted cover glass).")
def _astigmatism(x, waves, rngs, acq):
    return _convolve(x, _pupil_kernel(acq.optics, acq.pixel_size_um, astigmatism_waves=waves))
