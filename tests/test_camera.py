import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fmlib.synthesis import (
    CAMERAS,
    Camera,
    expose,
    fit_photon_transfer,
    flat_field_pairs,
    get_camera,
    photon_transfer,
    signal_for_snr,
    snr_from_levels,
)


@pytest.mark.parametrize("name", ["scmos", "emccd"])
def test_photon_transfer_recovers_gain_and_read_noise(name):
    camera = CAMERAS[name]
    levels = np.linspace(0.0, 300.0, 10)
    a, b = flat_field_pairs(levels, camera, size_px=256, rng=1)
    mean, var = photon_transfer(a, b, camera.offset_adu)
    fit = fit_photon_transfer(mean, var, excess_noise_factor_sq=camera.excess_noise_factor_sq)
    assert fit["gain_adu_per_e"] == pytest.approx(camera.gain_adu_per_e, rel=0.05)
    assert fit["read_noise_e"] == pytest.approx(camera.read_noise_e, rel=0.10)


def test_emccd_doubles_the_shot_noise_variance():
    a, b = flat_field_pairs(np.array([200.0]), CAMERAS["emccd"], size_px=256, rng=2)
    mean, var = photon_transfer(a, b, CAMERAS["emccd"].offset_adu)
    gain = CAMERAS["emccd"].gain_adu_per_e
    assert var[0] / (gain * mean[0]) == pytest.approx(2.0, rel=0.05)


def test_expose_is_deterministic_and_saturates():
    camera = Camera(bit_depth=12, gain_adu_per_e=4.0)
    field = np.full((32, 32), 5000.0)
    raw = expose(field, camera, rng=0)
    assert raw.dtype == np.uint16 and raw.max() == camera.max_adu == 4095
    flat = np.full((8, 8), 50.0)
    np.testing.assert_array_equal(expose(flat, camera, rng=3), expose(flat, camera, rng=3))


@settings(max_examples=50, deadline=None)
@given(snr=st.floats(0.2, 50.0), background=st.floats(0.0, 5.0), read=st.floats(0.0, 10.0),
       gain=st.floats(0.1, 50.0), em=st.booleans())
def test_signal_for_snr_inverts_the_snr_definition(snr, background, read, gain, em):
    camera = Camera(read_noise_e=read, gain_adu_per_e=gain, em_gain=300.0 if em else None)
    signal = signal_for_snr(snr, background, camera)
    assert signal > 0
    assert snr_from_levels(signal, background * signal, camera) == pytest.approx(snr, rel=1e-9)


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="expected_e"):
        expose(np.full((4, 4), -1.0), CAMERAS["scmos"])
    with pytest.raises(ValueError, match="expected_e"):
        expose(np.full((4, 4), np.nan), CAMERAS["scmos"])
    with pytest.raises(ValueError, match="camera"):
        get_camera("ccd9000")
    with pytest.raises(ValueError, match="quantum_efficiency"):
        Camera(quantum_efficiency=1.5)
    with pytest.raises(ValueError, match="snr"):
        signal_for_snr(0.0, 0.1, CAMERAS["scmos"])


def test_photon_transfer_table_recovers_the_cameras_it_was_given():
    from fmlib.synthesis import get_camera, photon_transfer_table

    curve, fits = photon_transfer_table({"scmos": 400.0, "emccd": 300.0}, 8, size_px=128, rng=0)
    assert list(curve.camera.unique()) == ["scmos", "emccd"] and len(curve) == 16
    for name, fit in fits.set_index("camera").iterrows():
        assert fit["gain set (ADU/e-)"] == get_camera(name).gain_adu_per_e
        assert abs(fit["gain recovered (ADU/e-)"] / fit["gain set (ADU/e-)"] - 1) < 0.05
    again = photon_transfer_table({"scmos": 400.0, "emccd": 300.0}, 8, size_px=128, rng=0)
    assert again[0].equals(curve) and again[1].equals(fits)  # the same seed gives the same table
