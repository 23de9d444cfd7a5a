"""The Square Attack: budget, seeding, early exit, arguments, and the point of it: a model whose gradient
is useless by construction, where every gradient member of the ensemble fails and Square does not."""

import doctest
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from torch.nn import functional as F

from fmlib import evaluation, profiles, strength
from fmlib.attacks import (
    APGD,
    LOSSES,
    SQUARE,
    SQUARE_LOSSES,
    Square,
    convergence,
    create_attack,
    evaluate_attack,
    p_schedule,
    square,
    worst_case,
)
from fmlib.attacks.square import pyramid, square_side
from fmlib.inference import predict_scores
from fmlib.synthesis import make_dataset

EPS = 16 / 255


class Masked(torch.nn.Module):
    """A 5x5 mean filter and a threshold at 0.3, behind an 8-bit quantizer: `torch.round` has a zero
    gradient, so every gradient attack sees nothing, and the mean filter averages random noise away,
    while a perturbation of one sign over a patch (Square's) moves the filtered value by the budget."""

    def forward(self, x):
        q = torch.round(x * 255) / 255
        return 40 * (F.avg_pool2d(q, 5, stride=1, padding=2, count_include_pad=False) - 0.3)


@pytest.fixture(scope="module")
def nuclei():
    data = make_dataset("nuclei", 4, 32, seed=1)
    return torch.from_numpy(data.images[:, None]), torch.from_numpy(data.masks[:, None].astype(np.float32))


def _iou(model, x, y):
    return predict_scores(model, x, y)["iou"]


def test_the_square_sizes_follow_the_published_schedule():
    assert p_schedule(0.8, 0, 10000) == 0.8 and p_schedule(0.8, 11, 10000) == 0.4
    assert p_schedule(0.8, 9000, 10000) == 0.8 / 512  # halved nine times by the end
    assert [p_schedule(0.8, q, 100) for q in (0, 1, 3, 99)] == [0.8, 0.2, 0.1, 0.8 / 512]  # rescaled to 100 queries
    ps = [p_schedule(0.05, q, 500) for q in range(500)]
    assert all(b <= a for a, b in zip(ps, ps[1:]))
    assert square_side(0.8, 32, 32, "linf") == 29 and square_side(1e-6, 32, 32, "linf") == 1
    assert square_side(1e-6, 32, 32, "l2") == 3 and square_side(0.25, 32, 32, "l2") % 2 == 1
    assert square_side(1.0, 32, 48, "linf") == 32  # never beyond the shorter side
    for side in (1, 3, 6, 7):
        pattern = pyramid(side)
        assert pattern.shape == (side, side) and torch.isclose(pattern.norm(), torch.tensor(1.0))
    with pytest.raises(ValueError, match="p_init"):
        p_schedule(0.0, 0, 10)


@pytest.mark.parametrize("norm, eps", [("linf", EPS), ("l2", 1.5)])
def test_square_stays_in_the_budget_and_is_seeded(nuclei, norm, eps):
    x, y = nuclei
    net = torch.nn.Conv2d(1, 1, 3, padding=1)
    torch.nn.init.constant_(net.weight, 1.0)
    torch.nn.init.constant_(net.bias, -3.0)
    attack = Square(net, eps, queries=40, norm=norm, seed=3)
    adv = attack(x, y)
    delta = (adv - x).flatten(1)
    bound = delta.norm(dim=1) if norm == "l2" else delta.abs().max(dim=1).values
    assert (bound <= eps + 1e-5).all() and adv.min() >= 0 and adv.max() <= 1 and (adv != x).any()
    if norm == "linf":  # every pixel on a vertex of the budget, unless clipped to [0, 1]
        free = ((x > eps) & (x < 1 - eps)).flatten(1)
        assert torch.allclose(delta.abs()[free], torch.full_like(delta[free], eps), atol=1e-6)
    assert torch.equal(adv, Square(net, eps, queries=40, norm=norm, seed=3)(x, y))  # same seed, same bytes
    assert not torch.equal(adv, Square(net, eps, queries=40, norm=norm, seed=4)(x, y))
    assert attack.queries_used.tolist() == [40] * len(x)  # nothing fooled: the whole budget, no more
    trace = attack.iou_trace
    assert len(trace) == 40 and all(b <= a + 1e-12 for a, b in zip(trace, trace[1:]))
    assert (_iou(net, adv, y) <= _iou(net, Square(net, eps, queries=1, norm=norm, seed=3)(x, y), y) + 1e-9).all()


class Band(torch.nn.Module):
    """Foreground where the intensity lies in (0.3, 0.7)."""

    def forward(self, x):
        return 10 * (0.2 - (x - 0.5).abs())


def test_square_stops_querying_an_image_once_it_is_fully_fooled():
    # A block at 0.5 leaves the band whichever way it moves by 0.25: the first point fools it. A block
    # at 0.4 leaves it only moved down: Square must find that, then stops.
    x = torch.zeros(2, 1, 32, 32)
    x[0, :, 8:16, 8:16], x[1, :, 8:16, 8:16] = 0.5, 0.4
    y = (x > 0).float()
    attack = Square(Band(), 0.25, queries=300, seed=0)
    adv = attack(x, y)
    assert (_iou(Band(), adv, y) == 0).all() and (_iou(Band(), x, y) > 0.99).all()
    used = attack.queries_used.tolist()
    assert used[0] == 1 and 1 < used[1] < 300 and len(attack.iou_trace) == used[1]


def test_square_rejects_bad_arguments(nuclei):
    x, y = nuclei
    net = torch.nn.Conv2d(1, 1, 1)
    for kwargs, name in (({"queries": 0}, "queries"), ({"p_init": 1.5}, "p_init"), ({"kappa": -1.0}, "kappa"),
                         ({"loss": "ce"}, "loss"), ({"norm": "l1"}, "norm"), ({"seed": -1}, "seed")):
        with pytest.raises(ValueError, match=name):
            Square(net, EPS, **kwargs)
    with pytest.raises(ValueError, match="eps"):
        Square(net, -EPS)
    with pytest.raises(ValueError, match="images"):
        Square(net, EPS)(x[:, 0], y[:, 0])
    assert torch.equal(Square(net, 0.0)(x, y), x)
    assert set(SQUARE_LOSSES) - {"margin"} <= set(LOSSES)


def test_square_beats_every_gradient_attack_on_a_model_whose_gradient_is_useless(nuclei):
    x, y = nuclei
    model = Masked()
    clean = _iou(model, x, y)
    assert clean.min() > 0.8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the zero gradient is the point here
        attacks = {name: create_attack(name, model, EPS) for name in ("fgsm", "ifgsm")}
        attacks.update(pgd=create_attack("pgd", model, EPS, steps=10),
                       **{f"apgd-{loss}": APGD(model, EPS, steps=10, loss=loss) for loss in LOSSES})
        gradient = {name: _iou(model, attack(x, y), y) for name, attack in attacks.items()}
        for name, iou in gradient.items():  # no gradient attack lowers the IoU (PGD's random start: noise only)
            assert (iou >= clean - 0.01).all(), name
        for loss in SQUARE_LOSSES:
            found = _iou(model, Square(model, EPS, queries=100, loss=loss)(x, y), y)
            assert found.mean() < clean.mean() - 0.05, loss
            assert (found < np.min(list(gradient.values()), axis=0)).all(), loss
        assert _iou(model, Square(model, 2.0, norm="l2", queries=100)(x, y), y).mean() < clean.mean() - 0.02
        # in the ensemble: Square runs last, and the worst case holds what it found
        adv, table = worst_case(model, x, y, EPS, steps=5, square_queries=100)
    assert table.member.iloc[-1] == SQUARE and set(table[table.worst].member) == {SQUARE}
    assert (_iou(model, adv, y) <= table.groupby("image").iou.min().to_numpy() + 1e-9).all()
    assert (_iou(model, adv, y) < clean - 0.02).all()


def test_the_strength_check_flags_a_model_that_square_wins_and_names_the_images(nuclei):
    x, y = nuclei
    model = Masked()
    data = make_dataset("nuclei", 3, 32, seed=1)
    cfg = profiles.resolve("smoke", ensemble_eps_255=[16], n_attack_images=3, ensemble_steps=3, ensemble_max_steps=3,
                           attack_steps=2, square_queries=60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        robust = evaluation.robust_table(cfg, model, data).assign(model="masked", structure="nuclei")
        weak = pd.concat([evaluate_attack(model, data.images[:3], data.masks[:3], name, [EPS]) for name in
                          ("fgsm", "noise")]).assign(model="masked", structure="nuclei")
    assert (robust.member == SQUARE).all() and (robust.iou < robust.gradient_iou).all()
    assert (robust.square_iou == robust.iou).all()
    checks = strength.ensemble_checks(weak, robust, n_boot=50).iloc[0]
    assert checks.verdict == strength.MASKING and checks.beats_square is not None and not checks.beats_square
    assert checks.square_wins == 3
    wins = strength.square_wins(robust)
    assert sorted(wins.image) == [0, 1, 2] and (wins.margin > 0.01).all()
    assert checks.square_margin == pytest.approx(wins.margin.max())
    for r in wins.itertuples():
        assert f"{r.image} at 16 ({r.margin:.3f})" in checks.square_images
    # a robust table from before Square (no square_iou column): the check was not run, never passed
    old = strength.ensemble_checks(weak, robust.drop(columns=["gradient_iou", "square_iou"]), n_boot=50).iloc[0]
    assert old.beats_square is None and old.square_wins == 0


def test_square_and_convergence_docstring_examples_hold():
    assert doctest.testmod(square).failed == 0 and doctest.testmod(convergence).failed == 0
