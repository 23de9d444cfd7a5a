"""The matched acquisition (issue #40 item 3): simulated at the physics estimated from a user's images,
it must read back as those images do."""

import pytest

from fmlib import acquisition as acq
from fmlib import matching
from fmlib.synthesis import Optics, make_dataset


def _estimates(ds):
    return acq.estimate(ds.raw, n_boot=20).set_index("quantity").estimate


def test_a_matched_set_reads_back_the_user_images_snr_noise_and_blur():
    user = make_dataset("nuclei", 6, 128, snr=8, seed=11, defocus_um=2.0, camera="emccd")
    table = acq.estimate(user.raw, n_boot=20)
    matched = matching.matched_dataset(table, "nuclei", 6, 128, seed=5)
    mine, theirs = _estimates(user), _estimates(matched)
    assert theirs.snr == pytest.approx(mine.snr, rel=0.1)
    assert theirs.noise_slope == pytest.approx(mine.noise_slope, rel=0.1)
    assert theirs.blur_sigma_px == pytest.approx(mine.blur_sigma_px, rel=0.15)  # calibrated through the estimator
    assert theirs.background_ratio == pytest.approx(mine.background_ratio, rel=0.5)
    assert matched.masks.any()  # exact masks come with it


def test_an_in_focus_acquisition_stays_in_focus_and_the_camera_follows_the_noise_model():
    user = make_dataset("nuclei", 4, 128, snr=4, seed=2)
    physics = matching.matched_physics(acq.estimate(user.raw, n_boot=20), "nuclei")
    assert physics["defocus_um"] < 0.3  # within the depth of field: in focus
    assert physics["camera"].gain_adu_per_e == pytest.approx(2.0, rel=0.25)  # the noise slope's tolerance
    assert physics["camera"].offset_adu == pytest.approx(100.0, abs=15)


def test_the_defocus_of_a_gaussian_psf_inverts_the_optics():
    optics = Optics(461.0, 0.75, 1.0)
    for defocus in (0.5, 2.0, 5.0):
        sigma = Optics(461.0, 0.75, 1.0, defocus_um=defocus).psf_sigma_um
        assert matching.defocus_for_sigma(sigma, optics) == pytest.approx(defocus)
    assert matching.defocus_for_sigma(0.01, optics) == 0.0


def test_bad_input_names_the_argument():
    table = acq.estimate(make_dataset("nuclei", 2, 128, seed=0).raw, n_boot=20)
    with pytest.raises(ValueError, match="structure"):
        matching.matched_physics(table, "golgi")
    with pytest.raises(ValueError, match="table: no 'snr'"):
        matching.matched_physics(table[table.quantity != "snr"], "nuclei")
