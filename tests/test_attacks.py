import numpy as np
import pytest
import torch

from fmlib.attacks import ATTACKS, PGD, create_attack, evaluate_attack, ifgsm_steps, random_sign_noise
from fmlib.models import create_model
from fmlib.synthesis import make_dataset
from fmlib.training import TrainConfig, fit

EPS = 8 / 255


@pytest.fixture(scope="module")
def trained():
    train = make_dataset("nuclei", 8, 64, seed=0)
    test = make_dataset("nuclei", 6, 64, seed=50)
    torch.manual_seed(0)
    config = TrainConfig(max_steps=50, eval_every=5, batch_size=4, lr=3e-3)
    result = fit(create_model("sim_unet"), train, train, config, progress=False)
    device = next(result.model.parameters()).device  # fit puts the model on the "auto" device
    x = torch.from_numpy(test.images[:, None]).to(device)
    y = torch.from_numpy(test.masks[:, None].astype(np.float32)).to(device)
    return result.model, x, y


def _iou(model, x, y):
    with torch.no_grad():
        pred = model(x) > 0
    truth = y > 0.5
    return ((pred & truth).flatten(1).sum(1) / ((pred | truth).flatten(1).sum(1) + 1e-5)).mean().item()


@pytest.mark.parametrize("name, norm", [(name, "linf") for name in ATTACKS] +
                         [(name, "l2") for name in ("pgd", "segpgd", "cospgd")])  # FGSM, I-FGSM: L-inf only
def test_budget_and_range(trained, name, norm):
    model, x, y = trained
    kwargs = {"norm": norm, "step_size": 0.5} if norm == "l2" else {}
    eps = 2.0 if norm == "l2" else EPS
    adv = create_attack(name, model, eps, **kwargs)(x, y)
    delta = (adv - x).flatten(1)
    bound = delta.norm(dim=1) if norm == "l2" else delta.abs().max(dim=1).values
    assert (bound <= eps + 1e-5).all()
    assert adv.min() >= 0 and adv.max() <= 1
    assert (adv != x).any()


def test_pgd_beats_fgsm_and_random_noise(trained):
    model, x, y = trained
    clean = _iou(model, x, y)
    pgd = _iou(model, create_attack("pgd", model, EPS)(x, y), y)
    fgsm = _iou(model, create_attack("fgsm", model, EPS)(x, y), y)
    noise = _iou(model, random_sign_noise(x, EPS), y)
    assert clean > 0.7
    assert pgd <= fgsm + 1e-6
    assert clean - pgd > 3 * max(clean - noise, 0.02)


def test_damage_grows_with_eps_and_stronger_losses_are_not_weaker(trained):
    model, x, y = trained
    # evaluate_attack takes numpy images (N, H, W), as the study's tables do
    table = evaluate_attack(model, x[:, 0].cpu().numpy(), y[:, 0].cpu().numpy(), "pgd",
                            eps_list=[1 / 255, 4 / 255, 16 / 255])
    by_eps = table.groupby("eps").iou.mean().to_numpy()
    assert all(np.diff(by_eps) <= 1e-6)
    assert set(table.columns) >= {"image", "eps", "iou", "dice", "robustness", "clean_iou"}
    pgd = _iou(model, create_attack("pgd", model, 4 / 255)(x, y), y)
    for name in ("segpgd", "cospgd"):
        assert _iou(model, create_attack(name, model, 4 / 255)(x, y), y) <= pgd + 0.02


def test_deterministic_no_grad_safe_and_leaves_the_model_as_found(trained):
    model, x, y = trained
    model.train()
    flags = [p.requires_grad for p in model.parameters()]
    with torch.no_grad():
        a = PGD(model, EPS, seed=3)(x, y)
    b = PGD(model, EPS, seed=3)(x, y)
    assert torch.equal(a, b) and not torch.equal(a, PGD(model, EPS, seed=4)(x, y))
    assert model.training and [p.requires_grad for p in model.parameters()] == flags
    model.eval()


def test_trace_and_paper_ifgsm_iterations(trained):
    model, x, y = trained
    attack = create_attack("pgd", model, EPS, steps=5)
    attack(x, y, trace=True)
    assert [t["iteration"] for t in attack.trace] == [1, 2, 3, 4, 5]
    assert attack.trace[-1]["iou"] <= attack.trace[0]["iou"]
    assert [ifgsm_steps(e / 255) for e in (1, 2, 4, 8, 16, 32)] == [1, 2, 5, 10, 20, 36]


def test_a_zero_gradient_is_reported():
    class Constant(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return x * 0 + self.bias

    x = torch.rand(1, 1, 32, 32)
    with pytest.warns(RuntimeWarning, match="gradient"):
        PGD(Constant(), EPS, random_start=False)(x, (x > 0.5).float())


@pytest.mark.parametrize("kwargs, match", [
    (dict(eps=-0.1), "eps"), (dict(eps=float("nan")), "eps"), (dict(norm="l1"), "norm"), (dict(steps=0), "steps"),
])
def test_invalid_arguments(trained, kwargs, match):
    model, x, y = trained
    args = dict(eps=EPS) | kwargs
    with pytest.raises(ValueError, match=match):
        PGD(model, **args)


def test_invalid_shapes(trained):
    model, x, y = trained
    with pytest.raises(ValueError, match="images"):
        PGD(model, EPS)(x[:, 0], y[:, 0])
    with pytest.raises(ValueError, match="masks"):
        PGD(model, EPS)(x, y[:2])
    with pytest.raises(ValueError, match="name"):
        create_attack("deepfool", model, EPS)
