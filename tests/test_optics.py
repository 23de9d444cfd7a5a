import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fmlib.synthesis.optics import Optics, bin_pixels, blur, gaussian_psf_sigma_px, psf_image


def test_widefield_sigma_follows_zhang_2007():
    optics = Optics(wavelength_nm=500.0, numerical_aperture=1.0, refractive_index=1.518)
    assert optics.psf_sigma_um == pytest.approx(0.21 * 0.5 / 1.0)
    assert optics.psf_fwhm_um == pytest.approx(2.3548 * 0.105, rel=1e-4)


def test_confocal_is_narrower_and_defocus_widens():
    wide = Optics(modality="widefield")
    assert Optics(modality="confocal").psf_sigma_um == pytest.approx(wide.psf_sigma_um / math.sqrt(2))
    sigmas = [Optics(defocus_um=z).psf_sigma_um for z in (0.0, 0.5, 1.0, 2.0)]
    assert sigmas == sorted(sigmas) and sigmas[-1] > 3 * sigmas[0]


def test_blur_of_a_point_has_the_psf_width():
    sigma = 2.5
    point = np.zeros((65, 65), np.float32)
    point[32, 32] = 1.0
    out = blur(point, sigma)
    y, x = np.mgrid[:65, :65]
    assert out.sum() == pytest.approx(1.0, rel=1e-4)
    assert math.sqrt((out * (x - 32) ** 2).sum()) == pytest.approx(sigma, rel=0.02)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 4), st.integers(1, 6), st.integers(1, 6))
def test_binning_preserves_the_mean_and_positions(factor, h, w):
    rng = np.random.default_rng(h * 7 + w)
    fine = rng.random((h * factor, w * factor))
    coarse = bin_pixels(fine, factor)
    assert coarse.shape == (h, w)
    assert coarse.mean() == pytest.approx(fine.mean())
    assert coarse[0, 0] == pytest.approx(fine[:factor, :factor].mean())


def test_psf_image_is_normalized_and_centred():
    psf = psf_image(Optics(), pixel_size_um=0.05, size_px=21)
    assert psf.sum() == pytest.approx(1.0)
    assert np.unravel_index(psf.argmax(), psf.shape) == (10, 10)


@pytest.mark.parametrize("kwargs, name", [
    (dict(numerical_aperture=1.6, refractive_index=1.518), "numerical_aperture"),
    (dict(numerical_aperture=float("nan")), "numerical_aperture"),
    (dict(wavelength_nm=-5.0), "wavelength_nm"),
    (dict(modality="lightsheet"), "modality"),
    (dict(defocus_um=-1.0), "defocus_um"),
])
def test_bad_optics_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Optics(**kwargs)


def test_pixel_size_must_be_positive():
    with pytest.raises(ValueError, match="pixel_size_um"):
        gaussian_psf_sigma_px(Optics(), 0.0)
