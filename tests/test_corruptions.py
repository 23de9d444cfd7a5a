import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from fmlib.corruptions import CORRUPTIONS, FAMILIES, corrupt, corrupt_dataset, describe_corruptions, list_corruptions
from fmlib.synthesis import make_dataset, measure_snr

ALL = list_corruptions()
# Intensity-only changes keep structure but shift or scale values: SSIM is their quality measure.
SSIM_MEASURED = {"low_contrast", "uneven_illumination", "brightness"}


@pytest.fixture(scope="module")
def images():
    return np.concatenate([make_dataset(s, 2, 64, seed=3).images for s in ("nuclei", "mitochondria", "er")])


def test_registry_covers_five_families_with_sixteen_or_more():
    assert len(ALL) >= 16
    assert {c.family for c in CORRUPTIONS.values()} == set(FAMILIES)
    required = {"photon_noise", "read_noise", "poisson_gaussian", "hot_pixels", "em_gain_noise", "defocus",
                "gaussian_blur", "motion_blur", "low_contrast", "brightness", "uneven_illumination",
                "background_haze", "photobleaching", "saturation", "undersampling", "bit_depth",
                "jpeg_compression", "stripes"}
    assert required <= set(ALL)
    table = describe_corruptions()
    assert list(table.corruption) == ALL and table.notna().all().all()
    assert list_corruptions("optics") == [n for n in ALL if CORRUPTIONS[n].family == "optics"]


@pytest.mark.parametrize("name", ALL)
def test_severity_zero_is_identity(images, name):
    out = corrupt(images, name, 0, rng=0)
    np.testing.assert_array_equal(out, images)
    assert out is not images


@pytest.mark.parametrize("name", ALL)
def test_quality_decreases_with_severity(images, name):
    quality = []
    for severity in range(1, 6):
        out = corrupt(images, name, severity, rng=1)
        if name in SSIM_MEASURED:
            q = [structural_similarity(a, b, data_range=1.0) for a, b in zip(images, out)]
        else:
            q = [peak_signal_noise_ratio(a, b, data_range=1.0) for a, b in zip(images, out)]
        quality.append(np.mean(q))
    assert all(np.diff(quality) < 0), f"{name}: quality by severity {np.round(quality, 3)}"


@pytest.mark.parametrize("name", ALL)
def test_shape_dtype_range_batch_and_determinism(images, name):
    out = corrupt(images, name, 3, rng=np.random.default_rng(7))
    assert out.shape == images.shape and out.dtype == images.dtype
    assert 0.0 <= out.min() and out.max() <= 1.0
    # A batch equals the stack of single images corrupted with the same generator object.
    rng = np.random.default_rng(7)
    singles = np.stack([corrupt(image, name, 3, rng=rng) for image in images])
    np.testing.assert_array_equal(out, singles)
    np.testing.assert_array_equal(out, corrupt(images, name, 3, rng=np.random.default_rng(7)))
    single = corrupt(images[0].astype(np.float64), name, 3, rng=0)
    assert single.shape == images[0].shape and single.dtype == np.float64


@pytest.mark.parametrize("structure", ["nuclei", "mitochondria", "er"])
@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_photon_noise_reaches_its_labelled_snr(structure, severity):
    snr = CORRUPTIONS["photon_noise"].value(severity)
    first = make_dataset(structure, 2, 128, seed=4)
    second = make_dataset(structure, 2, 128, seed=4, noise_seed=9)  # same scenes, independent noise
    # In electrons, from the raw counts ...
    a = corrupt_dataset(first, "photon_noise", severity, rng=1)
    b = corrupt_dataset(second, "photon_noise", severity, rng=2)
    assert measure_snr(a.electrons(), b.electrons(), first.masks) == pytest.approx(snr, rel=0.10)
    assert a.raw.dtype == np.uint16 and a.metadata[0]["corruption"] == "photon_noise"
    # ... and from the display images alone (reference acquisition).
    fa = corrupt(first.images, "photon_noise", severity, rng=1)
    fb = corrupt(second.images, "photon_noise", severity, rng=2)
    assert measure_snr(fa, fb, first.masks) == pytest.approx(snr, rel=0.10)


def test_physical_corruptions_use_the_dataset_counts():
    ds = make_dataset("nuclei", 2, 64, seed=1, camera="emccd")
    out = corrupt(ds.images, "read_noise", 5, rng=0, dataset=ds)
    ref = corrupt(ds.images, "read_noise", 5, rng=0)
    assert not np.array_equal(out, ref)
    with pytest.raises(ValueError, match="dataset"):
        corrupt(ds.images[:1], "read_noise", 2, dataset=ds)
    with pytest.raises(ValueError, match="physical"):
        corrupt_dataset(ds, "jpeg_compression", 2)


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="fog"), r"name: unknown corruption 'fog'; expected one of photon_noise"),
    (dict(severity=6), "severity"),
    (dict(severity=-1), "severity"),
    (dict(severity=2.5), "severity"),
    (dict(image=np.zeros((2, 2, 8, 8), np.float32)), "image"),
    (dict(image=np.full((8, 8), np.nan, np.float32)), "image"),
    (dict(image=np.full((8, 8), 1.5, np.float32)), "image"),
    (dict(image=np.zeros((8, 8), np.uint8)), "image"),
])
def test_bad_input_is_a_clear_error(kwargs, match):
    args = dict(image=np.zeros((8, 8), np.float32), name="defocus", severity=1) | kwargs
    with pytest.raises(ValueError, match=match):
        corrupt(**args)


def test_quality_table_scores_every_corruption_severity_and_image():
    from fmlib.corruptions import quality_table
    from fmlib.synthesis import make_dataset

    ds = make_dataset("mitochondria", 2, 64, seed=3)
    table = quality_table(ds, ["gaussian_blur", "photon_noise"], seed=0)
    assert len(table) == 2 * 5 * 2 and set(table.structure) == {"mitochondria"}
    blur = table[table.corruption == "gaussian_blur"].groupby("severity").ssim.mean()
    assert blur.is_monotonic_decreasing  # a stronger blur departs further from the clean image
    assert quality_table(ds, ["gaussian_blur"], seed=0).equals(table[table.corruption == "gaussian_blur"])


@pytest.mark.parametrize("structure", ["nuclei", "mitochondria", "er"])
def test_the_input_normalization_cancels_exactly_the_affine_corruptions(structure):
    from fmlib.corruptions import cancelled_corruptions, normalization_change
    from fmlib.synthesis import make_dataset

    images = make_dataset(structure, 3, 64, seed=1).images
    assert cancelled_corruptions(images) == ["low_contrast"]
    table = normalization_change(images, ["low_contrast", "brightness", "gaussian_blur", "hot_pixels"])
    cancelled = table[table.corruption == "low_contrast"]
    assert len(cancelled) == 5 and (cancelled.clipped_fraction == 0).all() and (cancelled.max_change < 1e-3).all()
    # a brightness offset is affine too, but it saturates the brightest pixels: the model sees that
    brightness = table[table.corruption == "brightness"]
    assert brightness.affine.all() and (brightness.clipped_fraction > 0).any() and brightness.max_change.max() > 0.1
    acting = table[table.corruption.isin(["gaussian_blur", "hot_pixels"])]
    assert not acting.affine.any() and (acting.max_change > 0.1).all()


def test_a_model_sees_the_same_image_under_an_affine_corruption():
    import torch

    from fmlib.inference import predict_logits
    from fmlib.models import create_model
    from fmlib.synthesis import make_dataset

    torch.manual_seed(0)
    model = create_model("sim_unet").eval()
    images = make_dataset("nuclei", 2, 64, seed=2).images
    clean = predict_logits(model, images)
    for severity in range(1, 6):
        faded = predict_logits(model, corrupt(images, "low_contrast", severity, rng=0))
        assert torch.allclose(faded, clean, atol=1e-3)
    assert not torch.allclose(predict_logits(model, corrupt(images, "gaussian_blur", 3, rng=0)), clean, atol=1e-3)
