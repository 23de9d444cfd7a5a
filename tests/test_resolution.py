import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from fmlib import models
from fmlib.resolution import attainable_iou, attainable_table, output_stride, upsampling_matrix


@settings(max_examples=25, deadline=None)
@given(stride=st.sampled_from([1, 2, 4, 8]), coarse=st.integers(1, 6), align=st.booleans(), seed=st.integers(0, 99))
def test_separable_upsampling_matrices_reproduce_torch_bilinear_upsampling(stride, coarse, align, seed):
    z = torch.randn(1, 1, coarse, coarse + 1, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    size = (coarse * stride, (coarse + 1) * stride)
    expected = F.interpolate(z, size=size, mode="bilinear", align_corners=align)[0, 0]
    up_h, up_w = (upsampling_matrix(n, stride, align_corners=align) for n in size)
    torch.testing.assert_close(up_h @ z[0, 0] @ up_w.T, expected)


class _Coarse(torch.nn.Module):
    """Logits computed at 1/stride and upsampled bilinearly, optionally refined at full resolution."""

    def __init__(self, stride: int, align_corners: bool, refine: bool = False):
        super().__init__()
        self.down = torch.nn.Conv2d(1, 1, stride, stride=stride)
        self.up = torch.nn.Upsample(scale_factor=stride, mode="bilinear", align_corners=align_corners)
        self.refine = torch.nn.Conv2d(1, 1, 3, padding=1) if refine else torch.nn.Identity()

    def forward(self, x):
        return self.refine(self.up(torch.tanh(self.down(x))))


@pytest.mark.parametrize("stride", [2, 4, 8, 16])
@pytest.mark.parametrize("align", [False, True])
def test_output_stride_finds_the_stride_of_a_bilinear_head(stride, align):
    torch.manual_seed(0)
    assert output_stride(_Coarse(stride, align), size=64) == stride
    # a layer after the upsampling can draw finer than the coarse grid: stride 1
    assert output_stride(_Coarse(stride, align, refine=True), size=64) == 1


def test_output_stride_of_the_registered_models_matches_their_architecture():
    torch.manual_seed(0)
    expected = {"unet": 1, "fcn": 1, "deeplabv3plus": 4, "pspnet": 8, "icnet": 8, "segformer": 4}
    found = {name: output_stride(models.create_model(name, width=0.125), size=64) for name in expected}
    assert found == expected


def test_output_stride_rejects_what_it_cannot_measure():
    with pytest.raises(ValueError, match="size"):
        output_stride(_Coarse(8, False), size=60)
    with pytest.raises(ValueError, match="strides"):
        output_stride(_Coarse(8, False), size=64, strides=(1, 8))
    constant = torch.nn.Conv2d(1, 1, 1)
    torch.nn.init.zeros_(constant.weight)
    with pytest.raises(ValueError, match="constant"):
        output_stride(constant, size=64)


def _stripes(period: int, size: int = 32) -> np.ndarray:
    masks = np.zeros((2, size, size), bool)
    masks[0, :, ::period] = True   # vertical 1-pixel lines
    masks[1, ::period, :] = True   # horizontal ones
    return masks


def test_full_resolution_attains_every_mask():
    assert attainable_iou(_stripes(4), 1).tolist() == pytest.approx([1.0, 1.0], abs=1e-6)


@pytest.mark.parametrize("align", [False, True])
def test_a_mask_drawn_by_a_coarse_map_is_attained_at_that_stride(align):
    z = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    masks = (F.interpolate(z, size=(32, 32), mode="bilinear", align_corners=align) > 0)[:, 0].numpy()
    assert attainable_iou(masks, 8, align_corners=align).min() > 0.99


def test_thin_lines_are_lost_at_a_coarse_stride_and_the_iou_search_never_does_worse_than_bce():
    masks = _stripes(4)
    bce = attainable_iou(masks, 8, objective="bce")
    iou = attainable_iou(masks, 8, objective="iou", steps=200)
    assert bce.max() < 0.5 and attainable_iou(masks, 2).min() > 0.9
    assert (iou >= bce).all()  # the search starts from the BCE map and keeps its best
    assert attainable_iou(masks, 8, objective="bce+dice").shape == (2,)


def test_attainable_iou_is_deterministic():
    masks = _stripes(3)
    first = attainable_iou(masks, 4, objective="iou", steps=50)
    assert first.tobytes() == attainable_iou(masks, 4, objective="iou", steps=50).tobytes()


def test_the_table_shares_one_bce_fit_and_gives_what_each_objective_gives_alone():
    masks = _stripes(3, size=24)
    table = attainable_table({"lines": masks}, strides=(8,), objectives=("bce+dice", "iou", "bce"), iou_steps=30)
    for objective, steps in (("bce+dice", None), ("iou", 30), ("bce", None)):
        alone = attainable_iou(masks, 8, objective=objective, steps=steps)
        assert table[table.objective == objective].iou.to_numpy().tobytes() == alone.tobytes(), objective
    with pytest.raises(ValueError, match="iou_steps"):
        attainable_table({"lines": masks}, iou_steps=0)


def test_attainable_iou_rejects_bad_input():
    with pytest.raises(ValueError, match="masks: expected binary"):
        attainable_iou(np.full((8, 8), 0.5), 2)
    with pytest.raises(ValueError, match="masks"):
        attainable_iou(np.zeros((2, 2, 8, 8), bool), 2)
    with pytest.raises(ValueError, match="output_stride"):
        attainable_iou(np.zeros((12, 12), bool), 8)
    with pytest.raises(ValueError, match="objective.*'iou'"):
        attainable_iou(np.zeros((8, 8), bool), 2, objective="dice")
    with pytest.raises(ValueError, match="masks: expected finite"):
        attainable_iou(np.full((8, 8), np.nan), 2)


def test_output_stride_leaves_the_model_in_its_mode():
    net = _Coarse(4, False).train()
    assert output_stride(net, size=32) == 4 and net.training


def test_attainable_table_and_the_comparison_with_trained_models():
    import pandas as pd

    from fmlib.resolution import against_attainable, attainable_limits

    lines = np.zeros((2, 32, 32), bool)
    lines[:, :, ::4] = True
    table = attainable_table({"lines": lines}, strides=(1, 8), objectives=("bce", "iou", "bce"))
    assert len(table) == 2 * 2 * 2 and set(table.objective) == {"bce", "iou"}  # duplicates run once
    limits = attainable_limits(table, "bce")
    at = limits.set_index("output_stride")
    column = "fitted with the training loss (bce)"
    assert at.loc[1, column] == pytest.approx(1.0) and at.loc[8, column] < 0.5
    clean = pd.DataFrame({"model": ["fine", "coarse"], "structure": "lines", "iou": [0.9, 0.2]})
    against = against_attainable(clean, {"fine": 1, "coarse": 8}, limits, "bce").set_index("model")
    assert against.loc["fine", "share of attainable"] == pytest.approx(0.9, rel=1e-6)
    assert against.loc["coarse", "share of attainable"] == pytest.approx(0.2 / at.loc[8, column])
