import doctest

import numpy as np
import pytest
import torch
from skimage.transform import rescale

from fmlib import realdata, sizing
from fmlib.sizing import diameters, prediction
from fmlib.synthesis import STRUCTURES, make_dataset


class Threshold(torch.nn.Module):
    """A model whose foreground is where the image exceeds one half: its answer does not depend on
    the object size, so resampling in and out must give the threshold of the image back."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, x):
        return self.scale * (x - 0.5)


class SideRecorder(Threshold):
    """A `Threshold` that records the sides it was given and fails on sides not a multiple of 32."""

    def __init__(self):
        super().__init__()
        self.shapes = []

    def forward(self, x):
        self.shapes.append(tuple(x.shape[-2:]))
        assert all(side % sizing.SIDE_MULTIPLE == 0 for side in x.shape[-2:])
        return super().forward(x)


def _discs(radius, centres, shape=(128, 128)):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    image = np.zeros(shape)
    for cy, cx in centres:
        image[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = 1.0
    return image


def test_the_estimate_measures_disc_diameters_and_scales_with_the_image():
    centres = [(30, 30), (30, 90), (90, 40), (95, 95)]
    for radius in (5, 8, 12):
        assert sizing.estimate_diameter_px(_discs(radius, centres)) == pytest.approx(2 * radius, rel=0.06)
    small = _discs(6, centres)
    twice = rescale(small, 2.0, order=1)
    assert sizing.estimate_diameter_px(twice) == pytest.approx(2 * sizing.estimate_diameter_px(small), rel=0.08)


def test_the_estimate_reads_the_exact_synthetic_diameters_at_two_sizes():
    # The simulator's instance labels are exact. Pooled over a stack, the label-free estimate reads
    # their size, and it follows the nuclei when the pixel size halves (nuclei twice as wide), where
    # a watershed's pieces of large textured nuclei would read low.
    pixel = STRUCTURES["nuclei"].pixel_size_um
    for scale in (1.0, 0.5):
        data = make_dataset("nuclei", 6, 160, seed=5, pixel_size_um=pixel * scale)
        exact = realdata.median_diameter_px(data.labels)
        assert sizing.estimate_diameter_px(data.images) == pytest.approx(exact, rel=0.12), scale


def test_the_estimate_refuses_bad_images():
    with pytest.raises(ValueError, match="image"):
        sizing.estimate_diameter_px(np.zeros((2, 2, 32, 32)))
    with pytest.raises(ValueError, match="image"):
        sizing.estimate_diameter_px(np.full((32, 32), np.nan))
    with pytest.raises(ValueError, match="no convex object"):
        sizing.estimate_diameter_px(np.zeros((64, 64)))  # blank: nothing to measure
    with pytest.raises(ValueError, match="no convex object"):
        sizing.estimate_diameter_px(_discs(70, [(64, 64)]))  # cut by the border: its size is the field's
    with pytest.raises(ValueError, match="min_size_px"):
        sizing.estimate_diameter_px(_discs(6, [(40, 40)]), min_size_px=0)


def test_predictions_come_back_on_the_native_grid():
    image = _discs(10, [(40, 40), (100, 70)], shape=(150, 130)) * 0.8 + 0.1
    model = SideRecorder()
    for factor in (0.5, 1.0, 1.7):
        logits = sizing.predict_logits_at_scale(model, image, factor)
        assert logits.shape == image.shape and logits.dtype == np.float32
        agreement = ((logits > 0) == (image > 0.5)).mean()
        assert agreement > 0.98, factor  # only boundary pixels may move
    assert model.shapes[1] == (160, 160)  # factor 1: padded to multiples of 32, no resampling
    with pytest.raises(ValueError, match="factor"):
        sizing.predict_logits_at_scale(model, image, 0.0)


def test_predict_at_diameter_uses_the_ratio_and_refuses_a_failed_estimate():
    image = _discs(12, [(40, 40), (90, 90)]) * 0.8 + 0.1
    mask, factor = sizing.predict_at_diameter(Threshold(), image, target_diameter_px=12.0)
    assert factor == pytest.approx(12.0 / sizing.estimate_diameter_px(image))
    assert mask.shape == image.shape and mask.dtype == bool
    _, given = sizing.predict_at_diameter(Threshold(), image, target_diameter_px=12.0, diameter_px=24.0)
    assert given == 0.5
    with pytest.raises(ValueError, match="diameter_px"):
        sizing.predict_at_diameter(Threshold(), image, target_diameter_px=12.0, diameter_px=120.0)
    with pytest.raises(ValueError, match="target_diameter_px"):
        sizing.predict_at_diameter(Threshold(), image, target_diameter_px=float("nan"))


def test_whole_image_predictions_are_cut_into_the_reference_tiles():
    masks = {"a": np.arange(64 * 96).reshape(64, 96) % 7 == 0, "b/c": np.eye(64, dtype=bool)}
    cut_a, cut_b = realdata.tiles(masks["a"], 32), realdata.tiles(masks["b/c"], 32)
    names = ["a/4", "b/c/3", "a/0"]  # an arbitrary order, as after empty tiles are left out
    reference = realdata.Tiles(np.zeros((3, 32, 32)), np.zeros((3, 32, 32), bool), names)
    out = sizing.tile_predictions(masks, reference, 32)
    assert (out[0] == cut_a[4]).all() and (out[1] == cut_b[3]).all() and (out[2] == cut_a[0]).all()
    with pytest.raises(ValueError, match="masks"):
        sizing.tile_predictions({"a": masks["a"]}, reference, 32)


def test_rescaled_predictions_of_named_images():
    images = {"x": _discs(8, [(30, 30), (90, 90)]) * 0.8 + 0.1, "y": _discs(16, [(40, 40), (90, 90)]) * 0.8 + 0.1}
    estimates = sizing.diameter_estimates(images)
    assert estimates["y"] == pytest.approx(2 * estimates["x"], rel=0.08)
    out = sizing.rescaled_predictions(Threshold(), images, target_diameter_px=16.0)
    assert {k: v.shape for k, v in out.items()} == {"x": (128, 128), "y": (128, 128)}
    assert ((out["y"]) == (images["y"] > 0.5)).mean() > 0.98


def test_the_factor_moves_a_diameter_only_into_the_trained_range():
    low, high = sizing.trained_diameter_range(15.0, (0.8, 1.25))
    assert low == pytest.approx(12.0) and high == pytest.approx(18.75)
    assert sizing.size_factor(30.0, (low, high)) * 30.0 == pytest.approx(high)  # shrunk to the largest seen
    assert sizing.size_factor(6.0, (low, high)) * 6.0 == pytest.approx(low)
    assert sizing.size_factor(15.0, (low, high)) == 1.0  # inside: left alone, no resolution lost
    assert sizing.size_factor(30.0, 15.0) == 0.5
    with pytest.raises(ValueError, match="target_diameter_px"):
        sizing.size_factor(30.0, (20.0, 10.0))
    with pytest.raises(ValueError, match="diameter_px"):
        sizing.size_factor(0.0, 15.0)


def test_the_size_normalizer_predicts_whole_images_and_cuts_the_reference_tiles():
    images = {"big": _discs(16, [(40, 40), (96, 90), (40, 100)], shape=(128, 192)) * 0.8 + 0.1,
              "small": _discs(6, [(30, 30), (90, 90), (30, 100)], shape=(128, 128)) * 0.8 + 0.1}
    names = ["big/0", "big/4", "small/3", "small/1"]  # some tiles left out, as empty ones are
    cut = {k: realdata.tiles(v, 64) for k, v in images.items()}
    stack = np.stack([cut[n.split("/")[0]][int(n.split("/")[1])] for n in names])
    reference = realdata.Tiles(stack, stack > 0.5, names)
    normalizer = sizing.SizeNormalizer.from_images(images, target_diameter_px=(14.0, 20.0), tile=64)
    factors = normalizer.factors()
    assert factors["big"] == pytest.approx(20.0 / normalizer.diameters_px["big"]) and factors["small"] > 1
    assert list(normalizer.table().columns) == ["image", "diameter_px", "factor"]
    predicted = normalizer(Threshold(), reference)
    assert predicted.shape == reference.masks.shape and predicted.dtype == bool
    assert (predicted == reference.masks).mean() > 0.97  # a size-independent model gets its answer back
    with pytest.raises(ValueError, match="reference"):
        normalizer(Threshold(), reference._replace(names=["other/0", *names[1:]]))
    with pytest.raises(ValueError, match="diameter_px"):  # a factor beyond 4: the estimate failed
        sizing.SizeNormalizer.from_images(images, target_diameter_px=200.0, tile=64)


def test_nuclei_are_split_at_the_training_scale_and_labelled_on_the_native_grid(monkeypatch):
    # Two touching discs of radius 20 and one apart: at factor 0.5 they are discs of radius 10 there.
    image = _discs(20, [(36, 30), (36, 68), (96, 96)]) * 0.8 + 0.1
    shapes = []
    original = prediction.split_touching
    monkeypatch.setattr(prediction, "split_touching",
                        lambda mask, **kw: shapes.append(mask.shape) or original(mask, **kw))
    labels = sizing.instances_at_scale(Threshold(), image, 0.5, tile=64)
    assert shapes == [(64, 64)]  # split on the resampled grid, not the native one
    assert labels.shape == image.shape and labels.dtype == np.int32
    assert len(np.unique(labels[labels > 0])) == 3
    assert ((labels > 0) == (image > 0.5)).mean() > 0.97
    normalizer = sizing.SizeNormalizer.from_images({"pair": image}, target_diameter_px=20.0, tile=64)
    reference = realdata.Tiles(realdata.tiles(image, 64)[:2], realdata.tiles(image > 0.5, 64)[:2], ["pair/0", "pair/1"])
    cut = normalizer.instances(Threshold(), reference)
    assert cut.shape == (2, 64, 64) and cut.dtype == np.int32 and cut.max() >= 1


def test_the_border_weighting_counts_large_nuclei_as_often_as_they_occur():
    # Small fields, one disc each at a random place, 60 % of them large: the border cuts the large ones
    # more often, so the plain median of the whole discs is the small diameter; weighted by the inverse
    # chance of staying clear of the border, it is the large one, the median of the population.
    rng = np.random.default_rng(0)
    fields = []
    for k in range(300):
        radius = 12 if k % 5 < 3 else 4
        fields.append(_discs(radius, [tuple(rng.uniform(0, 64, 2))], shape=(64, 64)))
    estimate = sizing.estimate_diameter_px(np.stack(fields))
    assert estimate == pytest.approx(24, rel=0.1)
    whole = [realdata.diameters_px(realdata.otsu_watershed(f)) for f in fields if f.any()]
    assert np.median(np.concatenate(whole)) == pytest.approx(8, rel=0.15)  # what the weighting corrects
    with pytest.raises(ValueError, match="values, weights"):
        sizing.weighted_median(np.array([1.0, 2.0]), np.array([1.0]))
    with pytest.raises(ValueError, match="weights"):
        sizing.weighted_median(np.array([1.0]), np.array([-1.0]))


def test_wide_fields_of_the_training_physics_read_their_exact_nucleus_size():
    from fmlib.checkpoints import DataSpec

    spec = DataSpec("nuclei", n_train=48, n_val=24, size=96, seed=0, randomization=0.5)
    wide = sizing.wide_fields(spec, size=256, n_images=6)
    assert wide.images.shape == (6, 256, 256)
    exact = realdata.median_diameter_px(wide.labels)
    assert sizing.estimate_diameter_px(wide.images) == pytest.approx(exact, rel=0.12)
    # the training tiles' own labels read low: their borders cut the large nuclei
    assert realdata.median_diameter_px(spec.make()[0].labels) < exact


def test_the_normalizer_refuses_tiles_of_another_grid_and_matches_plain_prediction_at_native_size():
    from fmlib.inference import predict
    from fmlib.models import create_model

    image = (_discs(9, [(30, 30), (90, 140), (40, 100)], shape=(128, 192)) * 0.7 + 0.15).astype(np.float32)
    names = [f"img/{k}" for k in range(6)]
    reference = realdata.Tiles(realdata.tiles(image, 64), realdata.tiles(image > 0.5, 64), names)
    normalizer = sizing.SizeNormalizer.from_images({"img": image}, target_diameter_px=18.0, tile=64)
    torch.manual_seed(0)
    model = create_model("sim_unet").eval()
    # at factor 1 the windows are the tiles: the same answer as the model on the tiles
    same = normalizer.at_native_size()(model, reference)
    assert (same == predict(model, reference.images)).mean() > 0.999
    shifted = reference._replace(images=np.roll(reference.images, 3, axis=2))  # same names, other pixels
    with pytest.raises(ValueError, match="reference"):
        normalizer(model, shifted)
    with pytest.raises(ValueError, match="reference"):
        sizing.tile_predictions({"img": image}, reference, 32)  # tiles of another size
    with pytest.raises(ValueError, match="tile"):
        sizing.SizeNormalizer.from_images({"img": image}, target_diameter_px=18.0, tile=48)


def test_docstring_examples():
    results = [doctest.testmod(module) for module in (diameters, prediction)]
    assert sum(r.attempted for r in results) >= 4 and not any(r.failed for r in results)
