import numpy as np
import pytest

from fmlib.metrics import image_quality


def test_image_quality_of_known_noise():
    rng = np.random.default_rng(0)
    clean = np.full((64, 64), 0.1)
    mask = np.zeros((64, 64), bool)
    mask[16:48, 16:48] = True
    clean[mask] = 0.5
    noisy = clean + rng.normal(0, 0.04, clean.shape)
    q = image_quality(clean, noisy, mask)
    assert q["snr"] == pytest.approx(0.4 / 0.04, rel=0.05)
    assert q["psnr_db"] == pytest.approx(20 * np.log10(1 / 0.04), abs=0.3)
    assert q["ssim"] < 1.0
    identical = image_quality(clean, clean, mask)
    assert identical["ssim"] == pytest.approx(1.0) and identical["snr"] == float("inf")


def test_image_quality_rejects_bad_shapes():
    with pytest.raises(ValueError, match="mask"):
        image_quality(np.zeros((8, 8)), np.zeros((8, 8)), np.zeros((4, 4)))
    with pytest.raises(ValueError, match="mask"):
        image_quality(np.zeros((8, 8)), np.zeros((8, 8)), np.zeros((8, 8)))
