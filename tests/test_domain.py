import numpy as np
import pytest

from fmlib.domain import PhysicsRanges, randomized_dataset
from fmlib.realdata import normalize
from fmlib.synthesis import make_dataset


def test_each_image_is_the_simulator_at_its_recorded_physics():
    ds = randomized_dataset("nuclei", 3, 64, seed=2)
    again = randomized_dataset("nuclei", 3, 64, seed=2)
    assert ds.images.tobytes() == again.images.tobytes() and ds.masks.tobytes() == again.masks.tobytes()
    for i, meta in enumerate(ds.metadata):
        single = make_dataset("nuclei", 1, 64, seed=meta["seed"], **meta["physics"])
        np.testing.assert_array_equal(single.raw[0], ds.raw[i])
        np.testing.assert_array_equal(single.labels[0], ds.labels[i])
        # Displayed like a real image: percentiles of the raw counts to fixed levels.
        np.testing.assert_array_equal(normalize(single.raw[0])[0], ds.images[i])
    assert randomized_dataset("nuclei", 3, 64, seed=3).images.tobytes() != ds.images.tobytes()


def test_physics_stay_in_their_ranges_and_vary():
    ranges = PhysicsRanges(snr=(3.0, 6.0), defocus_um=(0.5, 1.0), pixel_size_scale=(1.0, 1.2))
    ds = randomized_dataset("mitochondria", 6, 64, seed=0, ranges=ranges)
    physics = [m["physics"] for m in ds.metadata]
    assert all(3.0 <= p["snr"] <= 6.0 and 0.5 <= p["defocus_um"] <= 1.0 for p in physics)
    from fmlib.synthesis import STRUCTURES
    default_px = STRUCTURES["mitochondria"].pixel_size_um
    assert all(1.0 <= p["pixel_size_um"] / default_px <= 1.2 for p in physics)
    assert len({round(p["snr"], 6) for p in physics}) == 6
    # The measured SNR follows the drawn one: the photon budget is solved per image.
    assert all(abs(m["snr_expected"] / m["physics"]["snr"] - 1) < 0.02 for m in ds.metadata)
    assert ds.params["randomized"]["snr"] == [3.0, 6.0] and "snr" not in ds.params


def test_log_uniform_draws_are_centred_on_the_geometric_mean():
    rng = np.random.default_rng(0)
    draws = [PhysicsRanges(snr=(1.0, 100.0)).draw(rng, 0.5)["snr"] for _ in range(2000)]
    assert 8.0 < np.median(draws) < 12.5  # geometric mean 10; a uniform draw's median would be ~50


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="snr"):
        PhysicsRanges(snr=(8.0, 2.0))
    with pytest.raises(ValueError, match="background_ratio"):
        PhysicsRanges(background_ratio=(0.0, 1.0))  # log-uniform needs a positive minimum
    with pytest.raises(ValueError, match="structure.*golgi"):
        randomized_dataset("golgi", 2, 64)
    with pytest.raises(ValueError, match="n"):
        randomized_dataset("nuclei", 0, 64)
    with pytest.raises(TypeError, match="ranges"):
        randomized_dataset("nuclei", 1, 64, ranges={"snr": (2, 4)})


def test_scaled_ranges_shrink_towards_the_study_acquisition():
    from fmlib.domain import REFERENCE
    from fmlib.synthesis import PHYSICS_DEFAULTS

    # The reference is the acquisition the study trains at.
    assert {k: REFERENCE[k] for k in ("background_ratio", "autofluorescence_ratio", "defocus_um")} == {
        k: PHYSICS_DEFAULTS[k] for k in ("background_ratio", "autofluorescence_ratio", "defocus_um")}
    full = PhysicsRanges()
    assert full.scaled(1.0) == full
    point = full.scaled(0.0)
    assert all(low == high == pytest.approx(REFERENCE[name]) for name, (low, high) in vars(point).items())
    half = full.scaled(0.5)
    assert half.snr == pytest.approx((REFERENCE["snr"] * (full.snr[0] / REFERENCE["snr"]) ** 0.5,
                                      REFERENCE["snr"] * (full.snr[1] / REFERENCE["snr"]) ** 0.5))
    assert half.defocus_um == pytest.approx((0.0, full.defocus_um[1] / 2))
    ds = randomized_dataset("nuclei", 2, 64, seed=0, ranges=point)
    assert all(m["physics"]["snr"] == pytest.approx(REFERENCE["snr"]) for m in ds.metadata)
    with pytest.raises(ValueError, match="strength"):
        full.scaled(1.5)


def test_a_bright_background_does_not_clip_the_display():
    ranges = PhysicsRanges(background_ratio=(2.0, 2.0))
    ds = randomized_dataset("nuclei", 2, 64, seed=0, ranges=ranges)
    fixed = make_dataset("nuclei", 1, 64, seed=ds.metadata[0]["seed"], **ds.metadata[0]["physics"])
    assert (fixed.images == 1.0).mean() > 0.05  # the simulator's fixed display range saturates
    assert all(m["clipped_fraction"] < 0.01 for m in ds.metadata)
