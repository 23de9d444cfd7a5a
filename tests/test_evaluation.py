import numpy as np
import pandas as pd
import pytest
import torch

from fmlib import evaluation
from fmlib.models import create_model
from fmlib.profiles import resolve
from fmlib.realdata import Tiles
from fmlib.synthesis import make_dataset

CFG = resolve("smoke", corruptions=["defocus", "low_contrast"], attacks=["fgsm"], eps_255=[4], n_attack_images=2)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("sim_unet").eval()


@pytest.fixture(scope="module")
def test():
    return make_dataset("nuclei", 3, 64, seed=5)


def test_prediction_scores_name_real_tiles_and_score_every_image():
    masks = np.zeros((2, 32, 32), bool)
    masks[:, 8:16, 8:16] = True
    tiles = Tiles(np.zeros((2, 32, 32), np.float32), masks, ["a/0", "a/1"])
    predicted = masks.copy()
    predicted[1] = False
    table = evaluation.prediction_scores(predicted, tiles)
    assert list(table.tile) == ["a/0", "a/1"] and table.iou.iloc[0] == pytest.approx(1.0) and table.iou.iloc[1] == 0
    assert "tile" not in evaluation.prediction_scores(predicted, make_dataset("nuclei", 2, 32, seed=0))


def test_clean_scores_are_those_of_the_models_predictions(model, test):
    from fmlib.inference import predict

    table = evaluation.clean_scores(model, test)
    expected = evaluation.prediction_scores(predict(model, test.images), test)
    pd.testing.assert_frame_equal(table, expected)
    assert list(table.columns) == ["image", "iou", "dice", "precision", "recall"]


def test_corruption_table_has_every_corruption_severity_and_image(model, test):
    table = evaluation.corruption_table(CFG, model, test)
    assert len(table) == 2 * 5 * len(test.images)
    assert set(table.corruption) == {"defocus", "low_contrast"} and set(table.severity) == {1, 2, 3, 4, 5}
    assert set(table.family) == {"optics", "illumination"}
    assert np.allclose(table.groupby("image").clean_iou.nunique(), 1)  # one clean IoU per image


def test_attack_table_with_no_attacks_runs_only_the_noise_baseline(model, test):
    table = evaluation.attack_table(CFG, model, test, attacks=[], noise_baseline=True)
    assert set(table.attack) == {"noise"} and len(table) == CFG.n_attack_images
    both = evaluation.attack_table(CFG, model, test)
    assert set(both.attack) == {"fgsm", "noise"}


def test_robustness_summary_puts_clean_corrupted_and_attacked_scores_side_by_side(model, test):
    corruption = evaluation.corruption_table(CFG, model, test).assign(model="m", structure="nuclei")
    adversarial = evaluation.attack_table(CFG, model, test).assign(model="m", structure="nuclei")
    summary = evaluation.robustness_summary(corruption, adversarial, attack="fgsm")
    assert len(summary) == 1 and {"clean_iou", "corruption_robustness", "adversarial_robustness"} <= set(summary)


def test_a_model_with_a_bpda_pass_is_attacked_both_ways_and_keeps_the_worse():
    import torch

    from fmlib import evaluation, profiles
    from fmlib.models import create_model
    from fmlib.synthesis import make_dataset

    torch.manual_seed(0)
    net = create_model("segnet", width=0.125).eval()
    cfg = profiles.resolve("smoke", ensemble_eps_255=[8], n_attack_images=2, ensemble_steps=2, attack_steps=2)
    data = make_dataset("nuclei", 2, 64, seed=1)
    table = evaluation.robust_table(cfg, net, data)
    assert len(table) == 2 and (table.iou <= table.clean_iou + 1e-9).all()
    apgd = [f"apgd-{loss}{r}" for loss in ("bce", "jaccard", "segpgd") for r in ("", "-r1")]  # -r1: a restart
    assert set(table.member) <= {"clean", "square", *[m + s for m in ("fgsm", "ifgsm", "pgd", *apgd)
                                                      for s in ("", "+bpda")]}  # Square once: same forward pass
    assert (table.iou <= table.gradient_iou + 1e-9).all() and (table.iou <= table.square_iou.fillna(1) + 1e-9).all()


def test_the_robust_table_keeps_each_apgd_runs_iou_against_its_iterations(model, test):
    from fmlib import evaluation, profiles, strength

    cfg = profiles.resolve("smoke", ensemble_eps_255=[8], n_attack_images=2, ensemble_steps=10, attack_steps=2)
    table = evaluation.robust_table(cfg, model, test).assign(model="m", structure="nuclei")
    curves = strength.iteration_curves(table)
    assert len(curves) and curves.member.str.startswith("apgd").all()
    for _, curve in curves.groupby("member"):  # every kept point, from before the first step to the last
        assert curve.iteration.tolist() == strength.trace_points(10)
    for _, curve in curves.groupby("member"):
        # the mean *best* IoU cannot rise with more iterations
        assert (np.diff(curve.sort_values("iteration").iou.to_numpy()) <= 1e-9).all()
    with pytest.raises(ValueError, match="apgd_trace"):
        strength.iteration_curves(table.drop(columns="apgd_trace"))


def test_the_robust_table_of_a_model_that_fails_every_clean_image_is_its_clean_score():
    import torch

    from fmlib import evaluation, profiles
    from fmlib.synthesis import make_dataset

    blind = torch.nn.Conv2d(1, 1, 1)  # segments nothing: IoU 0 before any attack, so nothing to attack
    with torch.no_grad():
        blind.weight.fill_(0.0)
        blind.bias.fill_(-5.0)
    cfg = profiles.resolve("smoke", ensemble_eps_255=[8], n_attack_images=2, ensemble_steps=2, attack_steps=2)
    table = evaluation.robust_table(cfg, blind, make_dataset("nuclei", 2, 64, seed=1))
    assert (table.iou == 0).all() and (table.member == "clean").all() and table.converged.all()
