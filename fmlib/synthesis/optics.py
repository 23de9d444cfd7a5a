"""Optics: the point-spread function (PSF) that blurs the fluorophore density.

The in-focus PSF is the Gaussian approximation of the Airy pattern (Zhang, Zerubia & Olivo-Marin,
Applied Optics 2007): for a widefield microscope the lateral standard deviation is
``sigma = 0.21 * wavelength / NA``; for a confocal microscope with a small pinhole the PSF is the
product of excitation and emission PSFs, ``sigma = 0.21 * wavelength / (NA * sqrt(2))`` when both
wavelengths are taken equal. Defocus adds, in quadrature, the geometric blur of a light cone of
half-angle ``asin(NA / n)`` at distance ``defocus_um`` from focus, approximated by a Gaussian
whose standard deviation is half the radius of the blur disc.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from .._checks import check_choice, check_real

MODALITIES = ("widefield", "confocal")

# Lateral PSF standard deviation in units of wavelength / NA (Zhang et al. 2007, paraxial fits).
_SIGMA_FACTOR = {"widefield": 0.21, "confocal": 0.21 / math.sqrt(2.0)}


@dataclass(frozen=True)
class Optics:
    """Microscope optics that set the PSF.

    Parameters
    ----------
    wavelength_nm : float
        Emission wavelength in nm (300-1000).
    numerical_aperture : float
        Objective numerical aperture, > 0 and < `refractive_index`.
    refractive_index : float
        Refractive index of the immersion medium (1.0 air, 1.33 water, 1.518 oil).
    modality : {"widefield", "confocal"}
        Widefield or confocal (small pinhole) detection.
    defocus_um : float
        Distance of the imaged plane from focus, in µm (0 = in focus).
    """

    wavelength_nm: float = 520.0
    numerical_aperture: float = 1.4
    refractive_index: float = 1.518
    modality: str = "widefield"
    defocus_um: float = 0.0

    def __post_init__(self) -> None:
        check_real("wavelength_nm", self.wavelength_nm, low=300.0, high=1000.0)
        check_real("refractive_index", self.refractive_index, low=1.0, high=2.0)
        check_real("numerical_aperture", self.numerical_aperture, low=0.0, low_inclusive=False,
                   high=self.refractive_index, high_inclusive=False)
        check_choice("modality", self.modality, MODALITIES)
        check_real("defocus_um", self.defocus_um, low=0.0, high=50.0)

    @property
    def psf_sigma_um(self) -> float:
        """Lateral standard deviation of the Gaussian PSF, in µm (in focus plus defocus)."""
        sigma_focus = _SIGMA_FACTOR[self.modality] * self.wavelength_nm * 1e-3 / self.numerical_aperture
        half_angle = math.asin(self.numerical_aperture / self.refractive_index)
        sigma_defocus = 0.5 * self.defocus_um * math.tan(half_angle)
        return math.hypot(sigma_focus, sigma_defocus)

    @property
    def psf_fwhm_um(self) -> float:
        """Full width at half maximum of the Gaussian PSF, in µm."""
        return 2.0 * math.sqrt(2.0 * math.log(2.0)) * self.psf_sigma_um

    def to_dict(self) -> dict:
        return asdict(self)


def gaussian_psf_sigma_px(optics: Optics, pixel_size_um: float) -> float:
    """PSF standard deviation in pixels of size `pixel_size_um`."""
    check_real("pixel_size_um", pixel_size_um, low=0.0, low_inclusive=False)
    return optics.psf_sigma_um / pixel_size_um


def blur(density: np.ndarray, sigma_px: float) -> np.ndarray:
    """Convolve a 2D density with a Gaussian PSF of `sigma_px` pixels.

    The boundary is reflected, so no intensity is lost or invented at the edges of the field.
    """
    check_real("sigma_px", sigma_px, low=0.0)
    if sigma_px == 0:
        return density.astype(np.float32, copy=True)
    return ndimage.gaussian_filter(density.astype(np.float32, copy=False), sigma_px, mode="reflect",
                                   truncate=4.0)


def bin_pixels(array: np.ndarray, factor: int) -> np.ndarray:
    """Average non-overlapping ``factor x factor`` blocks: supersampled grid -> pixel grid.

    Pixel ``(i, j)`` of the result covers supersampled pixels ``factor*i ... factor*i + factor-1``,
    so objects keep their position exactly (no half-pixel shift).
    """
    if factor == 1:
        return array
    h, w = array.shape
    if h % factor or w % factor:
        raise ValueError(f"array: shape {array.shape} is not a multiple of factor {factor}")
    return array.reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))


def psf_image(optics: Optics, pixel_size_um: float, size_px: int = 15) -> np.ndarray:
    """The PSF sampled on a ``size_px x size_px`` pixel grid, normalized to unit sum (for figures)."""
    sigma = gaussian_psf_sigma_px(optics, pixel_size_um)
    r = np.arange(size_px) - (size_px - 1) / 2
    g = np.exp(-0.5 * (r / max(sigma, 1e-6)) ** 2)
    psf = np.outer(g, g)
    return psf / psf.sum()


def depth_of_field_um(optics: Optics) -> float:
    """Wave-optical depth of field ``lambda * n / NA^2``, in µm."""
    return optics.wavelength_nm * 1e-3 * optics.refractive_index / optics.numerical_aperture**2


def pupil_psf(optics: Optics, pixel_size_um: float, size_px: int, *, defocus_um: float = 0.0,
              astigmatism_waves: float = 0.0, spherical_waves: float = 0.0) -> np.ndarray:
    """Scalar pupil-function PSF, sampled on ``size_px x size_px`` pixels and normalized to unit sum.

    The pupil is a disc of radius NA / wavelength in frequency space. Defocus is the exact
    propagation phase ``2 pi z (sqrt((n / lambda)^2 - k^2) - n / lambda)``; astigmatism and
    spherical aberration are the Zernike modes Z(2, 2) and Z(4, 0) with the given rms amplitude
    in waves. The field is computed on a grid fine enough to hold the pupil (Nyquist for the
    cut-off frequency) and integrated over each camera pixel. Unlike the Gaussian approximation,
    this PSF has the rings of a real defocused or aberrated microscope.
    """
    check_real("pixel_size_um", pixel_size_um, low=0.0, low_inclusive=False)
    check_real("defocus_um", defocus_um, low=-100.0, high=100.0)
    check_real("astigmatism_waves", astigmatism_waves, low=-5.0, high=5.0)
    check_real("spherical_waves", spherical_waves, low=-5.0, high=5.0)
    wavelength = optics.wavelength_nm * 1e-3
    cutoff = optics.numerical_aperture / wavelength
    # Sub-pixel sampling so that the pupil fits inside the frequency grid (with a margin).
    sub = max(1, int(math.ceil(2.2 * cutoff * pixel_size_um)))
    n = int(size_px) * sub * 2  # zero padding against wrap-around
    dx = pixel_size_um / sub
    k = np.fft.fftfreq(n, d=dx)
    kx, ky = np.meshgrid(k, k, indexing="xy")
    k2 = kx**2 + ky**2
    inside = k2 <= cutoff**2
    rho = np.sqrt(k2) / cutoff
    theta = np.arctan2(ky, kx)
    kz = np.sqrt(np.maximum((optics.refractive_index / wavelength) ** 2 - k2, 0.0))
    phase = 2 * np.pi * defocus_um * (kz - optics.refractive_index / wavelength)
    phase += 2 * np.pi * astigmatism_waves * math.sqrt(6) * rho**2 * np.cos(2 * theta)
    phase += 2 * np.pi * spherical_waves * math.sqrt(5) * (6 * rho**4 - 6 * rho**2 + 1)
    field = np.fft.fftshift(np.fft.ifft2(np.where(inside, np.exp(1j * phase), 0)))
    intensity = np.abs(field) ** 2
    c = n // 2
    # Put the optical axis (sample c) in the middle of the centre pixel (odd sizes) or on the
    # corner between the four centre pixels (even sizes).
    start = c - (size_px // 2) * sub - (sub // 2 if size_px % 2 else 0)
    crop = intensity[start:start + size_px * sub, start:start + size_px * sub]
    psf = bin_pixels(crop, sub) if sub > 1 else crop
    return (psf / psf.sum()).astype(np.float64)
