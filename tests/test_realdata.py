import numpy as np
import pytest

from fmlib import realdata


def test_dsb2018_image_and_manual_mask():
    real = realdata.load_dsb2018()
    assert real.image.shape == real.mask.shape == (512, 512)
    assert real.image.dtype == np.float32 and 0 <= real.image.min() and real.image.max() <= 1
    assert real.labels.max() >= 100 and 0.05 < real.mask.mean() < 0.6
    # Nuclei are bright: the normalization keeps foreground above background.
    assert real.image[real.mask > 0].mean() > real.image[real.mask == 0].mean() + 0.1


def test_bbbc007_pairs_images_with_labels():
    images = realdata.load_bbbc007()
    assert len(images) >= 13
    for item in images:
        assert item.image.shape == item.labels.shape and item.image.ndim == 2
        assert item.mask.any()


def test_tiles_are_multiples_of_32():
    real = realdata.load_dsb2018()
    tiles = realdata.tiles(real.image, 128)
    assert tiles.shape == (16, 128, 128)
    np.testing.assert_array_equal(tiles[1], real.image[:128, 128:256])
    with pytest.raises(ValueError, match="tile"):
        realdata.tiles(real.image, 100)


def test_matched_pixel_size_reproduces_the_real_nucleus_size():
    from fmlib.synthesis import make_dataset

    real = realdata.load_dsb2018()
    pixel = realdata.match_pixel_size(real.labels, "nuclei", n_images=8, size=128, seed=0)
    synthetic = make_dataset("nuclei", 8, 128, seed=1, pixel_size_um=pixel)
    assert realdata.median_diameter_px(synthetic.labels) == pytest.approx(realdata.median_diameter_px(real.labels),
                                                                          rel=0.15)
    with pytest.raises(ValueError, match="structure"):
        realdata.match_pixel_size(real.labels, "er")


def test_rescale_brings_nuclei_to_a_target_diameter():
    real = realdata.load_dsb2018()
    half = realdata.rescale(real, 0.5)
    assert half.image.shape == half.labels.shape == (256, 256) and half.image.dtype == np.float32
    assert set(np.unique(half.labels)) <= set(np.unique(real.labels))  # nearest neighbour: no new labels
    assert realdata.median_diameter_px(half.labels) == pytest.approx(realdata.median_diameter_px(real.labels) / 2,
                                                                     rel=0.1)
    matched = realdata.nuclei_tiles(64, diameter_px=12.0)
    images, labels = matched["dsb2018"].images, matched["dsb2018"].labels
    assert images.shape[1:] == (64, 64) and labels.shape == images.shape
    assert realdata.median_diameter_px(realdata.rescale(real, 12.0 / realdata.median_diameter_px(real.labels))
                                       .labels) == pytest.approx(12.0, rel=0.1)
    with pytest.raises(ValueError, match="factor"):
        realdata.rescale(real, 0.0)
    with pytest.raises(ValueError, match="diameter_px"):
        realdata.nuclei_tiles(64, diameter_px=-3)


def test_a_simulation_like_the_real_image_matches_its_nucleus_size_and_density():
    real = realdata.load_dsb2018()
    synth, matched = realdata.simulate_like(real, 4, 128, snr_range=(1.0, 8.0), seed=0)
    assert len(synth) == 4 and 1.0 <= matched["snr"] <= 8.0
    real_d, synth_d = realdata.median_diameter_px(real.labels), realdata.median_diameter_px(synth.labels)
    assert abs(synth_d / real_d - 1) < 0.25
    low, high = matched["n_nuclei"]
    assert low <= real.labels.max() * 128**2 / real.labels.size <= high


def test_every_real_source_says_who_labelled_it():
    tiles = realdata.nuclei_tiles(128)
    kinds = {source: realdata.labelling(source).kind for source in tiles}
    assert kinds == {"dsb2018": "expert", "bbbc007_train": "automatic", "bbbc007_test": "automatic",
                     "ndev_scratch": "automatic"}
    assert set(realdata.ALL_REAL_TEST_SOURCES) == set(tiles) - {realdata.SELECTION_SOURCE}
    assert "method unknown" in realdata.labelling("ndev_scratch").method
    assert realdata.load_dsb2018().labelling.kind == "expert"
    assert "Otsu" in realdata.labelling("bbbc007_test").method  # the baseline resembles it: agreement, not accuracy
    with pytest.raises(ValueError, match="source"):
        realdata.labelling("imagenet")


def test_tiles_carry_instance_labels_that_match_their_masks():
    for source, tiles in realdata.nuclei_tiles(128).items():
        assert tiles.labels.shape == tiles.masks.shape, source
        assert np.array_equal(tiles.labels > 0, tiles.masks > 0), source


def test_ndev_scratch_assay_frames_with_their_nuclei_labels_and_provenance():
    frames = realdata.load_ndev_scratch()
    assert len(frames) == 10
    for frame in frames:
        assert frame.raw.shape == frame.image.shape == frame.labels.shape == (210, 576)
        assert frame.raw.dtype == np.uint16 and frame.image.dtype == np.float32 and frame.labels.dtype == np.int32
        assert 0 <= frame.image.min() and frame.image.max() <= 1
        assert len(np.unique(frame.labels)) > 40  # dozens of nuclei in every frame
        assert frame.source == "ndev_scratch" and frame.labelling.kind == "automatic"
        # Hoechst nuclei are bright against the scratched dish.
        assert frame.image[frame.mask > 0].mean() > frame.image[frame.mask == 0].mean() + 0.1
    assert frames[0].pixel_size_um == pytest.approx(0.619)
    assert realdata.rescale(frames[0], 0.5).pixel_size_um == pytest.approx(2 * 0.619)
    assert realdata.load_dsb2018().pixel_size_um is None  # not stated by the source
    assert realdata.pixel_size_um("ndev_scratch") == 0.619 and realdata.pixel_size_um("bbbc007_test") is None
    with pytest.raises(ValueError, match="source"):
        realdata.pixel_size_um("imagenet")


def test_ndev_file_states_its_channels_pixel_size_and_licence():
    import tifffile

    from fmlib.paths import data_dir

    with tifffile.TiffFile(data_dir() / realdata.NDEV_FILE) as tif:
        ome = tif.ome_metadata
        assert tif.series[0].axes == "CTYX" and tif.series[0].shape == (4, 10, 210, 576)
    for name in ("H3342", "oblique", "nuclei", "cyto"):
        assert f'Name="{name}"' in ome
    assert f'PhysicalSizeX="{realdata.PIXEL_SIZE_UM["ndev_scratch"]}"' in ome
    folder = data_dir() / "ndev_scratch"
    readme = (folder / "README.md").read_text()
    assert "BSD" in readme and "ndev-sampledata" in readme and "method unknown" in readme
    assert "Redistribution" in (folder / "LICENSE").read_text()
