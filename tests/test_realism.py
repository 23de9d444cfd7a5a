import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.draw import disk, ellipse

from fmlib import realism
from fmlib.models.registry import zscore as model_zscore

SEEDS = st.integers(0, 10_000)


def _discs(n=3, size=64, seed=0, contrast=100.0, background=20.0, noise=5.0):
    """Images of bright discs on a flat background with Gaussian noise, and their labels."""
    rng = np.random.default_rng(seed)
    images, labels = np.zeros((n, size, size)), np.zeros((n, size, size), np.int32)
    for k in range(n):
        for i, (r, c) in enumerate([(16, 16), (16, 46), (46, 30)], start=1):
            centre = (r + rng.integers(-2, 3), c + rng.integers(-2, 3))
            rr, cc = disk(centre, 6 + rng.integers(0, 3), shape=(size, size))
            labels[k, rr, cc] = i
    images = background + contrast * (labels > 0) + rng.normal(0, noise, labels.shape)
    return images, labels


def test_zscore_is_the_models_normalization():
    x = np.random.default_rng(0).gamma(2.0, 3.0, (3, 32, 32))
    expected = model_zscore(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(realism.zscore(x), expected, rtol=1e-10, atol=1e-10)


# derandomize: the same examples every run, so a rare seed cannot turn CI red at random
@settings(max_examples=15, deadline=None, derandomize=True)
@given(SEEDS, st.floats(0.01, 1000.0), st.floats(-100.0, 100.0))
def test_the_power_spectrum_of_white_noise_is_flat_at_one_at_any_scale(seed, scale, offset):
    noise = offset + scale * np.random.default_rng(seed).normal(size=(32, 64, 64))
    spectrum = realism.radial_spectrum(noise)
    assert spectrum.frequency.between(0, 0.5).all() and len(spectrum) == 15  # the lowest ring holds no frequency
    np.testing.assert_allclose(spectrum.power, 1.0, atol=0.25)  # the inner rings hold few frequencies
    # the mean over rings: each inner ring's few frequencies scatter it by a few per cent (seed 3184 reads 0.965);
    # a spectrum off by a normalisation (x2, or x0.5) is far outside
    assert spectrum.power.mean() == pytest.approx(1.0, abs=0.05)


def test_a_smooth_image_has_its_power_at_low_frequencies():
    from scipy.ndimage import gaussian_filter

    smooth = gaussian_filter(np.random.default_rng(0).normal(size=(4, 64, 64)), sigma=(0, 3, 3))
    power = realism.radial_spectrum(smooth).power.to_numpy()
    assert power[0] > 10 and power[-1] < 0.01
    assert realism.spectrum_distance(realism.radial_spectrum(smooth), realism.radial_spectrum(smooth)) == 0.0


@settings(max_examples=10, deadline=None)
@given(SEEDS, st.floats(0.5, 8.0))
def test_the_photon_transfer_slope_of_poisson_images_recovers_the_gain(seed, gain):
    rng = np.random.default_rng(seed)
    electrons = np.broadcast_to(np.linspace(50.0, 400.0, 256)[None, :], (2, 64, 256))
    counts = gain * rng.poisson(electrons)  # shot noise: variance = gain * mean
    curve, fit = realism.noise_curve(counts, normalize=False)
    assert fit["slope"] == pytest.approx(gain, rel=0.1)
    assert curve["mean"].is_monotonic_increasing and curve.n_patches.sum() > 100


def test_the_noise_curve_ignores_edges_and_is_scale_invariant_after_normalization():
    steps = np.where(np.arange(64) < 36, 20.0, 120.0)[None, None, :] * np.ones((4, 64, 1))
    images = steps + np.random.default_rng(0).normal(0, 5.0, steps.shape)
    curve, fit = realism.noise_curve(images, normalize=False)
    # Gaussian noise of sigma 5 at both levels: the variance is 25 at each, the step's patches left out.
    np.testing.assert_allclose(curve.variance, 25.0, rtol=0.2)
    assert abs(fit["slope"]) < 0.05 and fit["intercept"] == pytest.approx(25.0, rel=0.2)
    assert curve["mean"].min() < 25 and curve["mean"].max() > 115
    _, fit_a = realism.noise_curve(images)
    _, fit_b = realism.noise_curve(3.0 * images + 7.0)
    assert fit_a == pytest.approx(fit_b, rel=1e-6, abs=1e-9)


def test_object_table_measures_areas_in_pixels_and_um2_and_eccentricity():
    labels = np.zeros((64, 64), np.int32)
    labels[disk((20, 20), 8)] = 1
    labels[ellipse(44, 40, 4, 12)] = 2
    labels[0:5, 30:40] = 3  # cut by the border: left out
    table = realism.object_table(labels, pixel_size_um=0.5)
    assert table.label.tolist() == [1, 2]
    np.testing.assert_allclose(table.area_um2, table.area_px * 0.25)
    assert table.eccentricity[0] < 0.2 < 0.9 < table.eccentricity[1]
    assert realism.object_table(labels).area_um2.isna().all()


@settings(max_examples=10, deadline=None)
@given(SEEDS, st.floats(0.01, 100.0), st.floats(-10.0, 10.0))
def test_edge_contrast_is_the_step_over_the_background_noise_and_blind_to_affine_changes(seed, scale, offset):
    images, labels = _discs(2, seed=seed, contrast=100.0, noise=5.0)
    contrast = realism.edge_contrast(images, labels)
    assert len(contrast) == 6 and np.all(np.abs(contrast - 20.0) < 3.0)  # 100 / 5
    np.testing.assert_allclose(realism.edge_contrast(scale * images + offset, labels), contrast, rtol=1e-6)


def test_the_report_is_zero_distance_between_a_set_and_itself():
    images, labels = _discs(4, seed=1)
    p = realism.profile(images, labels, pixel_size_um=0.3)
    table = realism.report({"same": p}, p)
    assert set(table.statistic) == {"intensity", "power spectrum", "noise slope", "noise intercept", "area (px)",
                                    "area (µm²)", "eccentricity", "edge contrast"}
    np.testing.assert_allclose(table.distance, 0.0, atol=1e-12)
    assert table.key.tolist() == list(realism.KEYS.values())
    assert (table.direction == "equal").all() and (table.source == "same").all()


@settings(max_examples=10, deadline=None)
@given(SEEDS, st.floats(0.1, 50.0), st.floats(-5.0, 5.0))
def test_the_report_is_blind_to_positive_affine_intensity_changes(seed, scale, offset):
    images, labels = _discs(3, seed=seed)
    a = realism.profile(images, labels)
    b = realism.profile(scale * images + offset, labels)
    table = realism.report({"b": b}, a)
    ks = table.distance_kind == "Kolmogorov-Smirnov"
    np.testing.assert_allclose(table.distance[~ks], 0.0, atol=1e-6)
    # Rounding can swap two equal values of the two samples: at most one object's step of the KS statistic.
    assert (table.distance[ks] <= 1 / len(a.contrast) + 1e-9).all()


def test_the_report_tells_a_noisy_set_from_a_clean_one():
    clean, labels = _discs(4, seed=2, noise=1.0)
    noisy, _ = _discs(4, seed=2, noise=20.0)
    table = realism.report({"noisy": realism.profile(noisy, labels)}, realism.profile(clean, labels)).set_index(
        "statistic")
    assert table.loc["power spectrum", "direction"] == "higher in real"  # more power at high frequencies
    assert table.loc["edge contrast", "direction"] == "lower in real"
    assert table.loc["edge contrast", "distance"] == 1.0  # the KS statistic: no overlap at all
    assert table.loc["noise intercept", "distance"] > 0.05
    assert "area (µm²)" not in table.index  # no pixel size


def test_ks_distance_of_a_sample_with_itself_is_zero_and_without_labels_objects_are_skipped():
    images, labels = _discs(3, seed=4)
    p = realism.profile(images)
    assert p.objects is None and p.contrast is None
    table = realism.report({"x": p}, realism.profile(images, labels))
    assert set(table.statistic) == {"intensity", "power spectrum", "noise slope", "noise intercept"}


def test_curves_name_every_curve_and_source():
    images, labels = _discs(3, seed=5)
    found = realism.curves({"a": realism.profile(images, labels), "b": realism.profile(images)})
    assert set(found[found.source == "a"].curve) == set(realism.CURVES)
    assert set(found[found.source == "b"].curve) == {"intensity histogram", "power spectrum", "noise curve"}
    assert list(found.columns) == ["curve", "source", "x", "y"]
    ecdf = found[(found.source == "a") & (found.curve == "area (px)")]
    assert ecdf.y.iloc[-1] == 1.0 and ecdf.x.is_monotonic_increasing


@pytest.mark.parametrize("call, match", [
    (lambda: realism.zscore(np.zeros((2, 3, 4, 5))), "images"),
    (lambda: realism.zscore(np.full((16, 16), np.nan)), "images"),
    (lambda: realism.zscore(np.zeros((16, 16), bool)), "images"),
    (lambda: realism.zscore(np.zeros((4, 4))), "images"),
    (lambda: realism.radial_spectrum(np.zeros((16, 16)), n_bins=1), "n_bins"),
    (lambda: realism.noise_curve(np.ones((16, 16)), patch=2), "patch"),
    (lambda: realism.noise_curve(np.ones((16, 16)), patch=32), "patch"),
    (lambda: realism.noise_curve(np.ones((16, 16)), flatness=0.0), "flatness"),
    (lambda: realism.noise_curve(_discs(1)[0][:, :16, :16], n_bins=50), "flat"),
    (lambda: realism.object_table(np.zeros((16, 16), float)), "labels"),
    (lambda: realism.object_table(-np.ones((16, 16), int)), "labels"),
    (lambda: realism.object_table(np.zeros((16, 16), int), pixel_size_um=0.0), "pixel_size_um"),
    (lambda: realism.edge_contrast(np.zeros((16, 16)), np.zeros((8, 8), int)), "labels"),
    (lambda: realism.edge_contrast(np.zeros((16, 16)), np.zeros((16, 16), int), ring_px=0), "ring_px"),
    (lambda: realism.report({}, None), "real"),
    (lambda: realism.spectrum_distance(pd.DataFrame({"frequency": [0.1], "power": [1.0]}),
                                       pd.DataFrame({"frequency": [0.2], "power": [1.0]})), "share"),
])
def test_bad_input_raises_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
