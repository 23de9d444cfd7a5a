"""The L2 threat model: RMS-matched budgets, the L2 ensemble's robust IoU and the inclusion check."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fmlib import evaluation, profiles, threat_models
from fmlib.models import create_model
from fmlib.synthesis import make_dataset
from fmlib.training import TrainConfig, fit

CFG = profiles.resolve("smoke", ensemble_eps_255=[8, 32], n_attack_images=3, ensemble_steps=10, ensemble_max_steps=20,
                       attack_steps=5)


@pytest.fixture(scope="module")
def trained():
    train = make_dataset("nuclei", 8, 64, seed=0)
    torch.manual_seed(0)
    model = fit(create_model("sim_unet"), train, train, TrainConfig(max_steps=30, eval_every=5, batch_size=4, lr=3e-3),
                progress=False).model.cpu().eval()
    return model, make_dataset("nuclei", 3, 64, seed=50)


@settings(max_examples=50, deadline=None)
@given(eps=st.floats(0, 0.5), height=st.integers(1, 12), width=st.integers(1, 12), seed=st.integers(0, 2 ** 16))
def test_the_matched_l2_ball_holds_every_linf_perturbation_of_the_budget(eps, height, width, seed):
    budget = threat_models.l2_budget(eps, (height, width))
    delta = np.random.default_rng(seed).uniform(-eps, eps, (height, width))
    assert np.linalg.norm(delta) <= budget + 1e-9
    corner = np.full((height, width), eps)  # the L-inf ball's corner lies on the L2 sphere: the radius is tight
    assert np.linalg.norm(corner) == pytest.approx(budget)
    assert budget / math.sqrt(height * width) == pytest.approx(eps)  # its RMS per pixel is the L-inf budget


def test_l2_budget_names_a_bad_argument():
    with pytest.raises(ValueError, match="eps"):
        threat_models.l2_budget(-0.1, (8, 8))
    with pytest.raises(ValueError, match="image_shape"):
        threat_models.l2_budget(0.1, (8,))
    with pytest.raises(ValueError, match="image_shape"):
        threat_models.l2_budget(0.1, (1, 0, 8))


def test_the_l2_ensemble_does_no_worse_than_the_linf_worst_case_in_its_ball(trained):
    model, test = trained
    l2 = threat_models.l2_robust_table(CFG, model, test)
    assert len(l2) == 3 * 2 and set(l2.eps_255) == {8.0, 32.0}
    assert np.allclose(l2.eps_l2, [threat_models.l2_budget(e / 255, (64, 64)) for e in l2.eps_255])
    assert (l2.iou <= l2.clean_iou + 1e-9).all()
    members = {f"apgd-{loss}{r}" for loss in ("bce", "jaccard", "segpgd") for r in ("", "-r1")}
    assert set(l2.member) <= {"clean", *members}
    assert l2[l2.eps_255 == 32].iou.mean() <= l2[l2.eps_255 == 8].iou.mean() + 1e-9  # a larger ball does no better
    pd.testing.assert_frame_equal(l2, threat_models.l2_robust_table(CFG, model, test))  # same seed, same bytes
    linf = evaluation.robust_table(CFG, model, test)
    both = threat_models.inclusion_check(linf.assign(model="m"), l2.assign(model="m"), by=("model",))
    assert len(both) == 2 and (both.n_images == 3).all()
    assert (both.verdict == "passes").all(), both  # the L-inf worst case is a point of the L2 ball


def test_the_l2_worst_case_stays_in_the_l2_ball_and_leaves_the_linf_one(trained):
    model, test = trained
    x = torch.from_numpy(test.images[:2, None])
    y = torch.from_numpy(test.masks[:2, None].astype(np.float32))
    eps = threat_models.l2_budget(8 / 255, (64, 64))
    adv, members = evaluation.study_worst_case(CFG, model, x, y, eps, norm="l2")
    worst = members[members.worst].set_index("image").member
    member, traces = [worst.get(k, "clean") for k in range(len(x))], members.attrs["traces"]
    delta = (adv - x).flatten(1)
    assert (delta.norm(dim=1) <= eps + 1e-4).all() and adv.min() >= 0 and adv.max() <= 1
    changed = [k for k, name in enumerate(member) if name != "clean"]
    assert changed and (delta[changed].abs().max(dim=1).values > 8 / 255 + 1e-4).all()  # an L2 step, not a sign step
    assert traces and all(name.startswith("apgd-") for name in traces)


def test_a_model_with_a_bpda_pass_is_attacked_in_l2_both_ways():
    torch.manual_seed(0)
    net = create_model("segnet", width=0.125).eval()
    cfg = profiles.resolve("smoke", ensemble_eps_255=[8], n_attack_images=2, ensemble_steps=2, ensemble_max_steps=2)
    table = threat_models.l2_robust_table(cfg, net, make_dataset("nuclei", 2, 64, seed=1))
    assert len(table) == 2 and (table.iou <= table.clean_iou + 1e-9).all()
    members = {f"apgd-{loss}{r}" for loss in ("bce", "jaccard", "segpgd") for r in ("", "-r1")}
    assert set(table.member) <= {"clean", "square", *members, *(m + "+bpda" for m in members)}


def test_the_inclusion_check_flags_an_l2_attack_that_does_worse_than_the_linf_point():
    linf = pd.DataFrame({"model": ["a", "a", "b", "b"], "eps_255": 8.0, "image": [0, 1, 0, 1],
                         "iou": [0.30, 0.40, 0.30, 0.40]})
    l2 = linf.assign(iou=[0.10, 0.20, 0.50, 0.40], converged=[True, True, True, False])
    out = threat_models.inclusion_check(linf, l2, by=("model",), tol=0.01)
    assert out.verdict.tolist() == ["passes", threat_models.L2_WEAKER]
    assert out.l2_iou.tolist() == pytest.approx([0.15, 0.45]) and out.l2_converged.tolist() == [True, False]
    assert threat_models.inclusion_check(linf, l2, by=("model",), tol=0.2).verdict.tolist() == ["passes", "passes"]
    with pytest.raises(ValueError, match="l2: expected columns"):
        threat_models.inclusion_check(linf, l2.drop(columns="image"), by=("model",))
    with pytest.raises(ValueError, match="converged"):
        threat_models.inclusion_check(linf, l2.drop(columns="converged"), by=("model",))
    with pytest.raises(ValueError, match="no model, budget and image in common"):
        threat_models.inclusion_check(linf, l2.assign(model="c"), by=("model",))
    with pytest.raises(ValueError, match="tol"):
        threat_models.inclusion_check(linf, l2, by=("model",), tol=-1)


def test_the_inclusion_check_carries_the_paired_difference_with_its_ci():
    linf = pd.DataFrame({"model": "a", "eps_255": 8.0, "image": range(6), "iou": [0.3, 0.4, 0.5, 0.3, 0.4, 0.5]})
    l2 = linf.assign(iou=linf.iou - [0.10, 0.12, 0.08, 0.11, 0.09, 0.10], converged=True)
    row = threat_models.inclusion_check(linf, l2, by=("model",), n_boot=500).iloc[0]
    assert row.difference == pytest.approx(row.l2_iou - row.linf_iou) == pytest.approx(-0.1)
    # paired: the spread of the differences, not of the IoUs, sets the interval
    assert -0.12 <= row.difference_low <= row.difference <= row.difference_high <= -0.08
    with pytest.raises(ValueError, match="n_boot"):
        threat_models.inclusion_check(linf, l2, by=("model",), n_boot=0)


def test_budgets_in_units_of_the_images_noise_and_std():
    clean = threat_models.budget_units(make_dataset("nuclei", 3, 64, snr=8.0, seed=0), [4, 8, 16, 32])
    noisy = threat_models.budget_units(make_dataset("nuclei", 3, 64, snr=2.0, seed=0), [4, 8, 16, 32])
    # at SNR 8 the display noise is 0.35 / 8 of the range: 11.2 grey levels
    assert clean.noise_sigma_255.iloc[0] == pytest.approx(255 * 0.35 / 8, rel=0.01)
    assert clean.below_noise.tolist() == [True, True, False, False]
    assert (noisy.eps_over_noise < clean.eps_over_noise).all() and noisy.below_noise.all()
    assert (np.diff(clean.eps_over_std) > 0).all()
    for column in ("noise_sigma_255", "eps_over_noise", "eps_over_std"):
        assert (clean[f"{column}_low"] <= clean[column]).all() and (clean[column] <= clean[f"{column}_high"]).all()
    with pytest.raises(ValueError, match="n_boot"):
        threat_models.budget_units(make_dataset("nuclei", 2, 64, snr=8.0, seed=0), [8], n_boot=0)


def test_the_threat_models_docstring_examples_hold():
    import doctest

    assert doctest.testmod(threat_models).failed == 0
