import json

import numpy as np
import pytest
import tifffile
from scipy import ndimage
from skimage.measure import regionprops_table
from skimage.morphology import skeletonize
from skimage.registration import phase_cross_correlation

from fmlib.synthesis import STRUCTURES, iter_images, list_structures, load_tiff, make_dataset, measure_snr, save_tiff

ALL = list_structures()


def test_registry_has_the_three_structures():
    assert ALL == ["nuclei", "mitochondria", "er"]
    assert STRUCTURES["nuclei"].has_instances and not STRUCTURES["er"].has_instances


@pytest.mark.parametrize("structure", ALL)
def test_same_seed_same_bytes_other_seed_other_image(structure):
    a = make_dataset(structure, 2, 64, snr=4.0, seed=5)
    b = make_dataset(structure, 2, 64, snr=4.0, seed=5)
    c = make_dataset(structure, 2, 64, snr=4.0, seed=6)
    assert a.raw.tobytes() == b.raw.tobytes() and a.masks.tobytes() == b.masks.tobytes()
    assert a.images.tobytes() == b.images.tobytes()
    assert not np.array_equal(a.raw, c.raw) and not np.array_equal(a.masks, c.masks)


@pytest.mark.parametrize("structure", ALL)
def test_outputs_have_the_documented_types(structure):
    ds = make_dataset(structure, 2, (64, 96), seed=0)
    assert ds.images.shape == ds.raw.shape == ds.masks.shape == (2, 64, 96)
    assert ds.images.dtype == np.float32 and ds.raw.dtype == np.uint16 and ds.masks.dtype == np.uint8
    assert 0.0 <= ds.images.min() and ds.images.max() <= 1.0
    assert set(np.unique(ds.masks)) <= {0, 1}
    assert (ds.labels is not None) == STRUCTURES[structure].has_instances
    if ds.labels is not None:
        np.testing.assert_array_equal(ds.labels > 0, ds.masks > 0)
    json.dumps(ds.params)  # every parameter is recorded, and serializable


@pytest.mark.parametrize("structure", ALL)
@pytest.mark.parametrize("snr", [1.0, 2.0, 4.0, 8.0])
def test_measured_snr_matches_the_request(structure, snr):
    a = make_dataset(structure, 3, 128, snr=snr, seed=11)
    b = make_dataset(structure, 3, 128, snr=snr, seed=11, noise_seed=12)
    np.testing.assert_array_equal(a.masks, b.masks)  # same scenes, new noise
    assert measure_snr(a.electrons(), b.electrons(), a.masks) == pytest.approx(snr, rel=0.05)


def test_scene_does_not_depend_on_snr_and_fewer_photons_mean_more_noise():
    hi = make_dataset("mitochondria", 2, 64, snr=8.0, seed=3)
    lo = make_dataset("mitochondria", 2, 64, snr=1.0, seed=3)
    np.testing.assert_array_equal(hi.masks, lo.masks)
    assert lo.metadata[0]["signal_e"] < hi.metadata[0]["signal_e"] / 10
    # Same display level for the signal, much more spread at low SNR.
    assert np.std(lo.images[lo.masks > 0]) > 2 * np.std(hi.images[hi.masks > 0])


@pytest.mark.parametrize("structure", ALL)
def test_foreground_is_bright_and_aligned_with_the_mask(structure):
    ds = make_dataset(structure, 2, 128, snr=20.0, seed=2)
    for image, mask in zip(ds.images, ds.masks):
        inside, outside = image[mask > 0].mean(), image[mask == 0].mean()
        assert inside > outside + 0.2
        shift, _, _ = phase_cross_correlation(mask.astype(float), image.astype(float), upsample_factor=10,
                                              normalization=None)
        assert np.abs(shift).max() <= 0.3, shift


def test_iter_images_equals_make_dataset():
    ds = make_dataset("er", 4, 64, snr=2.0, seed=9)
    stream = list(iter_images("er", 64, snr=2.0, seed=9, start=2, stop=4))
    for offset, sample in enumerate(stream):
        np.testing.assert_array_equal(sample["raw"], ds.raw[2 + offset])
        np.testing.assert_array_equal(sample["mask"], ds.masks[2 + offset])


def test_nuclei_counts_and_sizes():
    ds = make_dataset("nuclei", 6, 128, seed=4)
    px = ds.pixel_size_um
    lo, hi = STRUCTURES["nuclei"].params["diameter_um"]
    for meta, labels in zip(ds.metadata, ds.labels):
        assert 5 <= meta["n_objects"] <= 40
        drawn = [o["diameter_um"] for o in meta["objects"]]
        assert min(drawn) >= 0.7 * lo and max(drawn) <= hi
        props = regionprops_table(labels, properties=["equivalent_diameter_area", "bbox"])
        inner = (props["bbox-0"] > 0) & (props["bbox-1"] > 0) & (props["bbox-2"] < 128) & (props["bbox-3"] < 128)
        measured = props["equivalent_diameter_area"][inner] * px
        assert measured.size and measured.min() >= 0.6 * 0.7 * lo and measured.max() <= 1.2 * hi
    kinds = {o["kind"] for m in ds.metadata for o in m["objects"]}
    assert kinds == {"interphase", "mitotic"}


def _skeleton_widths_um(mask: np.ndarray, pixel_size_um: float) -> np.ndarray:
    distance = ndimage.distance_transform_edt(mask)
    return 2 * distance[skeletonize(mask > 0)] * pixel_size_um


def test_mitochondria_widths_lengths_branches_puncta():
    ds = make_dataset("mitochondria", 6, 128, seed=6)
    objects = [o for m in ds.metadata for o in m["objects"]]
    tubules = [o for o in objects if o["kind"] == "tubule"]
    assert all(0.3 <= o["width_um"] <= 0.7 and 1.0 <= o["length_um"] <= 10.0 for o in tubules)
    assert any(o["branched"] for o in tubules) and any(o["kind"] == "punctum" for o in objects)
    widths = np.concatenate([_skeleton_widths_um(m, ds.pixel_size_um) for m in ds.masks])
    # The skeleton's distance to the edge is quantized to pixels (0.1 µm): allow one pixel either side.
    assert 0.3 - 0.1 <= np.median(widths) <= 0.7 + 0.1


def test_er_is_a_network_of_thin_tubules_with_three_way_junctions():
    ds = make_dataset("er", 3, 128, seed=7)
    widths = np.concatenate([_skeleton_widths_um(m, ds.pixel_size_um) for m in ds.masks])
    assert 0.2 - 0.1 <= np.median(widths) <= 0.35 + 0.1
    skeleton = skeletonize(ds.masks[0] > 0)
    neighbours = ndimage.convolve(skeleton.astype(int), np.ones((3, 3), int), mode="constant") - 1
    assert (skeleton & (neighbours == 3)).sum() >= 10          # three-way junctions
    assert ndimage.label(ds.masks[0])[1] <= 10                 # mostly one connected network
    assert 0.15 <= ds.masks.mean() <= 0.6


def test_tiff_round_trip(tmp_path):
    ds = make_dataset("nuclei", 2, 64, snr=4.0, seed=1)
    save_tiff(ds, tmp_path)
    back = load_tiff(tmp_path)
    np.testing.assert_array_equal(back.raw, ds.raw)
    np.testing.assert_array_equal(back.masks, ds.masks)
    np.testing.assert_array_equal(back.labels, ds.labels)
    np.testing.assert_array_equal(back.images, ds.images)
    assert back.params == json.loads(json.dumps(ds.params))
    with tifffile.TiffFile(tmp_path / "images" / "0000.tif") as tif:
        page = tif.pages[0]
        x_res = page.tags["XResolution"].value
        assert page.tags["ResolutionUnit"].value == 3  # centimetre
        assert 1e4 / (x_res[0] / x_res[1]) == pytest.approx(ds.pixel_size_um)
        assert page.dtype == np.uint16


@pytest.mark.parametrize("kwargs, name", [
    (dict(snr=0.0), "snr"),
    (dict(snr=-2.0), "snr"),
    (dict(size=16), "size"),
    (dict(structure="golgi"), "structure"),
    (dict(pixel_size_um=float("nan")), "pixel_size_um"),
    (dict(numerical_aperture=float("nan")), "numerical_aperture"),
    (dict(background_ratio=-1.0), "background_ratio"),
    (dict(n=0), "n"),
    (dict(colour="red"), "colour"),
    (dict(camera="webcam"), "camera"),
])
def test_bad_input_names_the_argument(kwargs, name):
    args = dict(structure="nuclei", n=1, size=64, snr=8.0) | kwargs
    with pytest.raises(ValueError, match=rf"\b{name}\b") as info:
        make_dataset(**args)
    assert "expected" in str(info.value)


def test_pupil_psf_is_centred_and_defocus_spreads_it():
    from fmlib.synthesis import Optics, pupil_psf

    optics = Optics(wavelength_nm=520.0, numerical_aperture=1.4, refractive_index=1.518)
    focus = pupil_psf(optics, 0.1, 31)
    blurred = pupil_psf(optics, 0.1, 31, defocus_um=0.8)
    assert focus.sum() == pytest.approx(1.0) and np.unravel_index(focus.argmax(), focus.shape) == (15, 15)
    # In focus the peak matches the Airy pattern's Gaussian approximation; defocus lowers it a lot.
    assert focus.max() > 3 * blurred.max()
    y, x = np.mgrid[:31, :31] - 15
    assert abs((focus * x).sum()) < 1e-6 and abs((blurred * y).sum()) < 1e-6
