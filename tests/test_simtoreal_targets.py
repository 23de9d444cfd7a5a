import doctest

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis.extra.numpy import arrays
from skimage.measure import label

from fmlib import simtoreal
from fmlib.models import create_model
from fmlib.realdata import Tiles
from fmlib.simtoreal import targets


def test_doctests():
    result = doctest.testmod(targets, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def _tiles(masks: np.ndarray) -> Tiles:
    labels = np.stack([label(m) for m in masks]).astype(np.int32)
    images = np.where(masks, 0.8, 0.15).astype(np.float32)
    return Tiles(images, masks.astype(bool), [f"t/{k}" for k in range(len(masks))], labels)


@settings(max_examples=40, deadline=None)
@given(truth=arrays(bool, (3, 12, 12)), predicted=arrays(bool, (3, 12, 12)))
def test_the_cells_partition_each_tile_and_their_counts_add_up_to_the_pixel_iou(truth, predicted):
    tiles = _tiles(truth)
    cells = simtoreal.nucleus_cells(tiles.labels)
    held = tiles.labels.reshape(len(truth), -1).any(axis=1)
    assert (cells[held] > 0).all() and (cells[~held] == 0).all()  # every pixel of a tile with nuclei is a nucleus's
    assert (cells[tiles.labels > 0] == tiles.labels[tiles.labels > 0]).all()  # each nucleus keeps its pixels
    counts = simtoreal.cell_counts(predicted, tiles)
    # one cell per nucleus, and one for each tile without any, whose false positives count too
    assert len(counts) == sum(max(len(np.unique(t[t > 0])), 1) for t in tiles.labels)
    assert counts.intersection.sum() == (predicted & truth).sum()
    assert counts.union.sum() == (predicted | truth).sum()


def test_cell_counts_reject_what_they_cannot_score():
    masks = np.zeros((1, 8, 8), bool)
    masks[0, 2:4, 2:4] = True
    tiles = _tiles(masks)
    with pytest.raises(ValueError, match="predicted: expected shape"):
        simtoreal.cell_counts(masks[:, :4], tiles)
    with pytest.raises(ValueError, match="predicted: expected a boolean"):
        simtoreal.cell_counts(masks.astype(np.uint8), tiles)
    with pytest.raises(ValueError, match="instance labels"):
        simtoreal.cell_counts(masks, tiles._replace(labels=None))
    with pytest.raises(ValueError, match="labels: expected integer"):
        simtoreal.nucleus_cells(masks.astype(float))


def test_pixel_counts_hold_every_model_seed_and_the_baseline():
    masks = np.zeros((2, 64, 64), bool)
    masks[:, 10:22, 10:22] = masks[:, 40:52, 30:44] = True
    tiles = _tiles(masks)
    torch.manual_seed(0)
    model = create_model("sim_unet").eval()
    counts = simtoreal.pixel_counts([("sim_unet", 0, model), ("sim_unet", 1, model)], tiles)
    assert set(map(tuple, counts[["method", "seed"]].drop_duplicates().to_numpy())) == {
        ("sim_unet", 0), ("sim_unet", 1), (simtoreal.BASELINE, -1)}
    otsu = counts[counts.method == simtoreal.BASELINE]
    assert otsu.intersection.sum() / otsu.union.sum() > 0.95  # bright squares on a dark background
    with pytest.raises(ValueError, match="at least one model"):
        simtoreal.pixel_counts([], tiles, baseline=False)
    # A predictor stands in for the plain prediction (a size normalizer, say): here the reference itself.
    perfect = simtoreal.pixel_counts([("oracle", 0, model)], tiles, baseline=False,
                                     predictor=lambda _, t: t.masks.astype(bool))
    assert (perfect.intersection == perfect.union).all() and perfect.union.sum() == masks.sum()


def _counts(ious: dict, n_cells: int = 40, jitter: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """Counts with union 100 per cell and an intersection that gives each (method, seed) its IoU,
    varied by `jitter` from cell to cell."""
    rng = np.random.default_rng(seed)
    rows = []
    for (method, run), iou in ious.items():
        inter = np.clip(np.round(100 * (iou + rng.normal(0, jitter, n_cells))), 0, 100)
        rows += [{"method": method, "seed": run, "tile": "t/0", "cell": c + 1, "intersection": int(i), "union": 100}
                 for c, i in enumerate(inter)]
    return pd.DataFrame(rows)


BASE = {(simtoreal.BASELINE, -1): 0.70}


def test_the_median_architecture_and_the_best_are_judged_on_their_cis():
    ious = {**BASE, ("a", 0): 0.74, ("a", 1): 0.76, ("b", 0): 0.81, ("b", 1): 0.83, ("c", 0): 0.60, ("c", 1): 0.62}
    table = simtoreal.sim_to_real_targets(_counts(ious), models=["a", "b", "c"], best="b", bar_iou=0.80,
                                          n_boot=200).set_index("target")
    median, best = table.loc[simtoreal.TARGETS[0]], table.loc[simtoreal.TARGETS[1]]
    assert median.estimate == pytest.approx(0.75) and median.reference == pytest.approx(0.70)
    assert median.verdict == "met" and median.margin_ci_low > 0  # every seed of the median model beats Otsu
    assert best.estimate == pytest.approx(0.82) and best.reference == 0.80
    # both of b's seeds clear the bar, so every resample of them does
    assert best.margin_ci_low == pytest.approx(0.01) and best.verdict == "met"
    assert (table.n_nuclei == 40).all() and (table.n_seeds == 2).all() and (table.n_models == 3).all()


def test_the_bootstrap_pairs_the_cells_of_every_method():
    # Cells that vary a lot, the same for every method: the model is the baseline plus 0.05 on every cell.
    rng = np.random.default_rng(1)
    base = rng.integers(20, 80, 60)
    rows = [{"method": method, "seed": run, "tile": "t/0", "cell": c + 1, "intersection": int(i + shift),
             "union": 100} for method, run, shift in ((simtoreal.BASELINE, -1, 0), ("a", 0, 5))
            for c, i in enumerate(base)]
    table = simtoreal.sim_to_real_targets(pd.DataFrame(rows), models=["a"], best="a", bar_iou=0.5,
                                          n_boot=300).set_index("target").loc[simtoreal.TARGETS[0]]
    # Unpaired, the two CIs (about +-0.09 wide) would overlap; paired, the margin is 0.05 in every resample.
    assert table.ci_high - table.ci_low > 0.05
    assert table.margin_ci_low == pytest.approx(0.05) and table.margin_ci_high == pytest.approx(0.05)
    assert table.verdict == "met"


def test_targets_missed_or_unresolved_say_so():
    below = {**BASE, ("a", 0): 0.60, ("b", 0): 0.65, ("c", 0): 0.78}
    table = simtoreal.sim_to_real_targets(_counts(below), models=["a", "b", "c"], best="c", bar_iou=0.80,
                                          n_boot=200).set_index("target")
    assert table.loc[simtoreal.TARGETS[0], "verdict"] == "not met"
    assert table.loc[simtoreal.TARGETS[1], "verdict"] == "not met"
    # Noisy cells: the best sits on the bar, and its CI spans it.
    close = {**BASE, ("a", 0): 0.72, ("b", 0): 0.69, ("c", 0): 0.80}
    noisy = simtoreal.sim_to_real_targets(_counts(close, jitter=0.2), models=["a", "b", "c"], best="c",
                                          bar_iou=0.80, n_boot=300).set_index("target")
    assert noisy.loc[simtoreal.TARGETS[1], "verdict"].startswith("inconclusive")
    assert noisy.loc[simtoreal.TARGETS[1], "ci_low"] < 0.80 < noisy.loc[simtoreal.TARGETS[1], "ci_high"]


def test_the_targets_are_reproducible_and_check_their_inputs():
    ious = {**BASE, ("a", 0): 0.72, ("b", 0): 0.75}
    counts = _counts(ious, jitter=0.1)
    first = simtoreal.sim_to_real_targets(counts, models=["a", "b"], best="b", bar_iou=0.8, n_boot=100, seed=3)
    pd.testing.assert_frame_equal(first, simtoreal.sim_to_real_targets(counts, models=["a", "b"], best="b",
                                                                       bar_iou=0.8, n_boot=100, seed=3))
    with pytest.raises(ValueError, match="best: expected one of"):
        simtoreal.sim_to_real_targets(counts, models=["a", "b"], best="z", bar_iou=0.8)
    with pytest.raises(ValueError, match=r"counts: no rows for \['c'\]"):
        simtoreal.sim_to_real_targets(counts, models=["a", "b", "c"], best="b", bar_iou=0.8)
    with pytest.raises(ValueError, match="bar_iou"):
        simtoreal.sim_to_real_targets(counts, models=["a", "b"], best="b", bar_iou=80)
    with pytest.raises(ValueError, match="every nucleus cell"):
        simtoreal.sim_to_real_targets(counts.drop(index=0), models=["a", "b"], best="b", bar_iou=0.8)
