"""APGD, the worst case over the attack ensemble, and the checks of an attack's strength."""

import numpy as np
import pandas as pd
import pytest
import torch
from _models import threshold_segmenter

from fmlib import strength
from fmlib.attacks import (
    APGD,
    ENSEMBLE,
    LOSSES,
    SQUARE,
    TRANSFER,
    add_square,
    checkpoints,
    continue_until_converged,
    converged,
    create_attack,
    evaluate_attack,
    members,
    worst_case,
)
from fmlib.inference import predict_scores
from fmlib.models import create_model
from fmlib.synthesis import make_dataset
from fmlib.training import TrainConfig, fit

EPS = 8 / 255


@pytest.fixture(scope="module")
def trained():
    train = make_dataset("nuclei", 8, 64, seed=0)
    test = make_dataset("nuclei", 4, 64, seed=50)
    torch.manual_seed(0)
    config = TrainConfig(max_steps=50, eval_every=5, batch_size=4, lr=3e-3)
    result = fit(create_model("sim_unet"), train, train, config, progress=False)
    x = torch.from_numpy(test.images[:, None])
    y = torch.from_numpy(test.masks[:, None].astype(np.float32))
    return result.model.cpu(), x, y


def _iou(model, x, y):
    return predict_scores(model, x, y)["iou"]


def test_checkpoints_follow_the_apgd_schedule():
    marks = checkpoints(100)
    assert marks[0] == 22 and marks == sorted(set(marks)) and marks[-1] <= 100
    gaps = np.diff([0, *marks])
    assert (gaps[1:] <= gaps[:-1]).all()  # checkpoints come closer together
    assert checkpoints(5)[-1] <= 5


@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize("norm, eps", [("linf", EPS), ("l2", 1.0)])
def test_apgd_stays_in_the_budget_and_is_deterministic(trained, loss, norm, eps):
    model, x, y = trained
    attack = APGD(model, eps, steps=10, loss=loss, norm=norm, random_start=True, seed=3)
    adv = attack(x, y)
    delta = (adv - x).flatten(1)
    bound = delta.norm(dim=1) if norm == "l2" else delta.abs().max(dim=1).values
    assert (bound <= eps + 1e-5).all() and adv.min() >= 0 and adv.max() <= 1
    assert torch.equal(adv, APGD(model, eps, steps=10, loss=loss, norm=norm, random_start=True, seed=3)(x, y))
    trace = attack.iou_trace
    assert len(trace) >= 2 and all(b <= a + 1e-12 for a, b in zip(trace, trace[1:]))


def test_apgd_is_at_least_as_strong_as_pgd(trained):
    model, x, y = trained
    pgd = _iou(model, create_attack("pgd", model, EPS, steps=10)(x, y), y).mean()
    apgd = _iou(model, APGD(model, EPS, steps=30, loss="bce")(x, y), y).mean()
    assert apgd <= pgd + 0.02


def test_apgd_runs_on_from_a_start_and_never_ends_worse_than_it(trained):
    model, x, y = trained
    first = APGD(model, EPS, steps=3, loss="bce")
    start = first(x, y)
    more = APGD(model, EPS, steps=10, loss="bce")
    adv = more.perturb(x, y, start=start)
    assert (_iou(model, adv, y) <= _iou(model, start, y) + 1e-9).all()
    assert more.iou_trace[0] == pytest.approx(first.iou_trace[-1])  # it starts where the first run ended
    assert (adv - x).abs().max() <= EPS + 1e-6
    far = (x + 0.5).clamp(0, 1)  # a start outside the budget is projected onto it
    assert ((more.perturb(x, y, start=far) - x).abs().max() <= EPS + 1e-6)
    with pytest.raises(ValueError, match="start"):
        more.perturb(x, y, start=start[:1])
    with pytest.raises(ValueError, match="start"):
        more.perturb(x, y, start=torch.full_like(x, float("nan")))


def test_an_apgd_run_that_has_not_converged_goes_on_until_it_does_or_reaches_the_cap(trained):
    model, x, y = trained
    attacker = APGD(model, EPS, steps=2, loss="jaccard")
    adv = attacker(x, y)
    trace = list(attacker.iou_trace)
    assert not converged(trace)  # two steps are not enough on this model
    adv_more, longer = continue_until_converged(attacker, x, y, adv, trace, 40)
    steps = len(longer) - 1
    assert longer[:len(trace)] == trace and 2 < steps <= 40
    assert converged(longer) or steps == 40 or longer[-1] == 0
    assert all(b <= a + 1e-12 for a, b in zip(longer, longer[1:]))  # the best IoU never rises
    assert (_iou(model, adv_more, y) <= _iou(model, adv, y) + 1e-9).all()
    # a converged run, or a cap already reached, is left as it is
    flat = [0.5, 0.4, 0.4, 0.4, 0.4]
    same, kept = continue_until_converged(attacker, x, y, adv, flat, 40)
    assert kept == flat and torch.equal(same, adv)
    same, kept = continue_until_converged(attacker, x, y, adv, trace, 2)
    assert kept == trace and torch.equal(same, adv)


def test_the_ensemble_runs_apgd_on_up_to_max_steps_and_is_no_weaker_for_it(trained):
    model, x, y = trained
    adv, table = worst_case(model, x, y, EPS, steps=2, losses=("jaccard",))
    adv_long, table_long = worst_case(model, x, y, EPS, steps=2, losses=("jaccard",), max_steps=24)
    short, long = table.attrs["traces"]["apgd-jaccard"], table_long.attrs["traces"]["apgd-jaccard"]
    assert len(short) == 3 and not converged(short) and 3 < len(long) <= 25
    assert (_iou(model, adv_long, y) <= _iou(model, adv, y) + 1e-9).all()
    with pytest.raises(ValueError, match="max_steps"):
        worst_case(model, x, y, EPS, steps=4, max_steps=2)  # the cap must allow the first run


def test_the_ensemble_is_the_per_image_worst_case_of_its_members(trained):
    model, x, y = trained
    adv, table = worst_case(model, x, y, EPS, steps=10, restarts=2, pgd_steps=10)
    worst = _iou(model, adv, y)
    per_member = table.pivot_table(index="image", columns="member", values="iou", aggfunc="min")
    assert {"fgsm", "ifgsm", "pgd", "apgd-bce", "apgd-jaccard", "apgd-segpgd", "apgd-bce-r1"} <= set(table.member)
    for image, row in per_member.iterrows():
        assert worst[image] <= row.min() + 1e-9  # no member does better than the ensemble
    alone = {name: _iou(model, create_attack(name, model, EPS)(x, y), y) for name in ("fgsm", "ifgsm", "pgd")}
    assert alone["pgd"].mean() < alone["fgsm"].mean()  # the premise: a model on which PGD beats one FGSM step
    for iou in alone.values():  # nor does any of the paper's attacks run alone
        assert (worst <= iou + 1e-9).all()
    assert table.groupby("image").worst.sum().le(1).all()  # one winner per image at most


def test_random_restarts_of_the_best_loss_only_run_last_on_the_loss_that_won_most(trained):
    model, x, y = trained
    adv, table = worst_case(model, x, y, EPS, steps=5, restarts=3, pgd_steps=5, restart_losses="best")
    clean_start = [m for m in table.member.unique() if m.startswith("apgd-") and "-r" not in m]
    restarts = [m for m in table.member.unique() if "-r" in m]
    assert len(clean_start) == len(LOSSES)  # every loss once from the clean image
    assert len(restarts) == 2  # restarts 1 and 2, of one loss
    loss = restarts[0].removeprefix("apgd-").rsplit("-r", 1)[0]
    assert restarts == [f"apgd-{loss}-r1", f"apgd-{loss}-r2"] and f"apgd-{loss}" in clean_start
    assert list(table.member.unique())[-2:] == restarts  # run after every clean-start run
    per_member = table.groupby("image").iou.min().reindex(range(len(x)))
    assert (_iou(model, adv, y) <= per_member.fillna(1.0).to_numpy() + 1e-9).all()  # still the worst case
    with pytest.raises(ValueError, match="restart_losses"):
        worst_case(model, x, y, EPS, steps=2, restart_losses="worst")


def test_the_best_loss_is_the_one_with_most_worst_cases():
    from fmlib.attacks.ensemble import _best_loss
    assert _best_loss(["apgd-jaccard", "apgd-bce", "apgd-jaccard", "fgsm"], ("bce", "jaccard", "segpgd")) == "jaccard"
    assert _best_loss(["apgd-segpgd", "apgd-bce"], ("bce", "jaccard", "segpgd")) == "bce"  # a tie: the earlier
    assert _best_loss(["clean", "pgd"], ("bce", "jaccard", "segpgd")) == "bce"  # no APGD win at all


def test_a_fully_fooled_image_is_not_attacked_further():
    # A pixel threshold at 0.3: one FGSM step of 0.9 darkens every foreground pixel below it (IoU 0).
    threshold = threshold_segmenter(5.0, level=0.3)
    test = make_dataset("nuclei", 3, 64, seed=5)
    x = torch.from_numpy(test.images[:, None])
    y = torch.from_numpy(test.masks[:, None].astype(np.float32))
    assert (_iou(threshold, x, y) > 0.5).all()
    adv, table = worst_case(threshold, x, y, 0.9, steps=5, square_queries=50)
    assert set(table.member) == {"fgsm"} and (table.iou == 0).all() and table.worst.all()  # Square not run either
    assert (_iou(threshold, adv, y) == 0).all()


def test_a_model_that_fails_every_clean_image_leaves_nothing_to_attack():
    # A model that segments nothing has IoU 0 before any attack: no member runs, the images come back
    # unchanged, and the (empty) table still selects its worst rows.
    blind = torch.nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        blind.weight.fill_(0.0)
        blind.bias.fill_(-5.0)
    test = make_dataset("nuclei", 2, 64, seed=5)
    x = torch.from_numpy(test.images[:, None])
    y = torch.from_numpy(test.masks[:, None].astype(np.float32))
    adv, table = worst_case(blind, x, y, EPS, steps=2)
    assert torch.equal(adv, x) and table.empty and table.worst.dtype == bool
    assert table[table.worst].columns.tolist() == ["image", "member", "iou", "worst"]


def test_evaluate_attack_reports_the_ensemble_and_transfers(trained):
    model, x, y = trained
    images, masks = x[:, 0].numpy(), y[:, 0].numpy()
    table = evaluate_attack(model, images, masks, ENSEMBLE, [2 / 255, EPS], steps=5, restarts=1)
    pgd = evaluate_attack(model, images, masks, "pgd", [2 / 255, EPS], steps=10)
    assert set(table.attack) == {ENSEMBLE} and (table.iou.to_numpy() <= pgd.iou.to_numpy() + 1e-9).all()
    other = create_model("unet3", width=0.25)
    transfer = evaluate_attack(model, images, masks, TRANSFER, [EPS], surrogate=other)
    assert set(transfer.attack) == {TRANSFER} and len(transfer) == len(images)
    with pytest.raises(ValueError, match="surrogate"):
        evaluate_attack(model, images, masks, TRANSFER, [EPS])
    with pytest.raises(ValueError, match="attack"):
        evaluate_attack(model, images, masks, "autoattack", [EPS])


class Quantized(torch.nn.Module):
    """A model whose input is rounded to 8 bits: the rounding has a zero gradient, so gradient attacks
    see nothing, while the same network without it is as vulnerable as ever (gradient masking)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(torch.round(x * 255) / 255)


def test_masked_gradients_are_flagged_when_a_transfer_beats_the_white_box_attack(trained):
    model, x, y = trained
    masked = Quantized(model).eval()
    images, masks = x[:, 0].numpy(), y[:, 0].numpy()
    eps = [4 / 255, 16 / 255]
    with pytest.warns(RuntimeWarning, match="gradient"):
        white = evaluate_attack(masked, images, masks, ENSEMBLE, eps, steps=5)
    tables = [white, evaluate_attack(masked, images, masks, TRANSFER, eps, surrogate=model, steps=10),
              evaluate_attack(masked, images, masks, "fgsm", eps), evaluate_attack(masked, images, masks, "noise", eps)]
    verdict = strength.diagnose(pd.concat(tables).assign(model="quantized"), white_box=ENSEMBLE, iterative=())
    assert verdict.verdict.iloc[0] == strength.MASKING and not verdict.beats_transfer.iloc[0]
    # the plain network passes the same checks
    plain = [evaluate_attack(model, images, masks, name, eps, **kw) for name, kw in
             ((ENSEMBLE, {"steps": 10}), ("fgsm", {}), ("pgd", {"steps": 10}), ("noise", {}))]
    checks = strength.diagnose(pd.concat(plain).assign(model="plain"), white_box=ENSEMBLE, transfer=None,
                               iterative=("pgd",))
    row = checks.iloc[0]
    assert row.verdict == strength.PASSES and row.beats_single_step and row.beats_noise and row.monotone_in_eps
    assert row.beats_transfer is None  # not run: never reported as passed


def test_square_runs_last_from_the_clean_image_on_the_images_not_yet_fooled(trained):
    model, x, y = trained
    assert members(EPS, steps=5)[-1][0] != SQUARE
    assert members(EPS, steps=5, square_queries=30)[-1] == (SQUARE, {"queries": 30, "norm": "linf", "seed": 0})
    assert members(1.0, norm="l2", square_queries=30)[-1][1]["norm"] == "l2"  # the L2 ensemble gets an L2 Square
    adv, table = worst_case(model, x, y, 16 / 255, steps=3, pgd_steps=3, square_queries=30)
    gradient = table[table.member != SQUARE].groupby("image").iou.min()
    square = table[table.member == SQUARE]
    assert table.member.iloc[-len(square):].eq(SQUARE).all()  # after every gradient member
    assert sorted(square.image) == sorted(gradient[gradient > 0].index)  # only where not yet fooled
    assert (_iou(model, adv, y) <= table.groupby("image").iou.min().to_numpy() + 1e-9).all()  # the worst case holds it
    assert table.groupby("image").worst.sum().le(1).all()
    assert (square.worst == (square.iou.to_numpy() < gradient.loc[square.image].to_numpy())).all()
    assert (adv - x).abs().max() <= 16 / 255 + 1e-6
    # add_square with no queries leaves the worst case as it is
    same, kept = add_square(model, x, y, EPS, adv, table, queries=0)
    assert torch.equal(same, adv) and kept is table
    with pytest.raises(ValueError, match="square_queries"):
        worst_case(model, x, y, EPS, steps=2, square_queries=-1)
