"""Adversarial attacks for per-pixel binary segmentation.

A small `Attack` base in the manner of torchattacks: the base handles the device, eval mode,
gradients, projection onto the budget, clipping to [0, 1] and seeding; each attack sets its loss
and its step. All attacks are untargeted on the per-pixel binary cross-entropy of the ground-truth
mask (one logit per pixel: cross-entropy over classes, as general attack libraries use, has a zero
gradient on such models). Budgets are in image-intensity space: ``eps=8/255`` is 8 grey levels.

Attacks: `FGSM`, `IFGSM` (the paper's step and iterations), `PGD` (L-inf and L2, random start),
`SegPGD` (Gu et al., ECCV 2022) and `CosPGD` (Agnihotri et al., ICML 2024).
"""

from __future__ import annotations

import warnings

import pandas as pd
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from ._checks import check_choice, check_int, check_real
from .inference import as_batch, eval_mode, logit_scores, model_device, predict_scores

NORMS = ("linf", "l2")
#: The paper's budgets, in grey levels of an 8-bit image.
PAPER_EPS = tuple(e / 255 for e in (1, 2, 4, 8, 16, 32))


class Attack:
    """Base class: iterate ``x <- project(x + step(grad of loss))`` from an optional random start.

    Parameters
    ----------
    model : torch.nn.Module
        Maps (N, 1, H, W) images in [0, 1] to (N, 1, H, W) logits.
    eps : float
        Budget, in image intensity (L-inf) or L2 norm of the perturbation per image.
    steps : int
        Iterations (>= 1).
    step_size : float
        Step length (sign step for L-inf, normalized-gradient step for L2).
    norm : {"linf", "l2"}
    random_start : bool
        Start from a uniform random point of the budget ball.
    seed : int
        Seed of the random start; the same seed gives the same adversarial images.
    """

    name = "attack"

    def __init__(self, model: torch.nn.Module, eps: float, *, steps: int = 1, step_size: float | None = None,
                 norm: str = "linf", random_start: bool = False, seed: int = 0):
        self.model = model
        self.eps = check_real("eps", eps, low=0.0, high=1e3)
        self.steps = check_int("steps", steps, low=1, high=100000)
        self.step_size = check_real("step_size", step_size if step_size is not None else eps, low=0.0)
        self.norm = check_choice("norm", norm, NORMS)
        self.random_start = bool(random_start)
        self.seed = check_int("seed", seed, low=0)
        self.trace: list[dict] = []

    # -- what an attack overrides ---------------------------------------------------------------
    def loss(self, logits: torch.Tensor, target: torch.Tensor, t: int) -> torch.Tensor:
        """Per-pixel BCE with the ground truth, averaged (iteration `t` counts from 1)."""
        return F.binary_cross_entropy_with_logits(logits, target)

    def step(self, x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        if self.norm == "linf":
            return x + self.step_size * grad.sign()
        norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        return x + self.step_size * grad / norm

    # -- the shared machinery ---------------------------------------------------------------------
    def project(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        delta = x_adv - x
        if self.norm == "linf":
            delta = delta.clamp(-self.eps, self.eps)
        else:
            norm = delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
            delta = delta * torch.clamp(self.eps / norm.clamp_min(1e-12), max=1.0)
        return (x + delta).clamp(0.0, 1.0)

    def _random_start(self, x: torch.Tensor) -> torch.Tensor:
        generator = torch.Generator(device="cpu").manual_seed(self.seed)
        noise = torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device) * 2 - 1
        if self.norm == "l2":
            # Uniform in the L2 ball: a random direction times a radius ~ eps * u^(1/d).
            direction = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
            direction = direction / direction.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
            u = torch.rand(x.shape[0], generator=generator, dtype=x.dtype).to(x.device)
            noise = direction * (u ** (1.0 / x[0].numel())).view(-1, 1, 1, 1)
        return self.project(x + self.eps * noise, x)

    def __call__(self, images: torch.Tensor, masks: torch.Tensor, *, trace: bool = False) -> torch.Tensor:
        return self.perturb(images, masks, trace=trace)

    def perturb(self, images: torch.Tensor, masks: torch.Tensor, *, trace: bool = False) -> torch.Tensor:
        """Adversarial versions of `images` (N, 1, H, W) in [0, 1] for ground truth `masks`."""
        x, y = _check_inputs(images, masks)
        if self.eps == 0:
            return x.clone()
        device = model_device(self.model)
        x, y = x.to(device), y.to(device)
        requires = [p.requires_grad for p in self.model.parameters()]
        for p in self.model.parameters():
            p.requires_grad_(False)  # only the input's gradient is needed
        self.trace = []
        try:
            with eval_mode(self.model), torch.enable_grad():
                x_adv = self._random_start(x) if self.random_start else x.clone()
                for t in range(1, self.steps + 1):
                    x_adv.requires_grad_(True)
                    logits = self.model(x_adv)
                    loss = self.loss(logits, y, t)
                    (grad,) = torch.autograd.grad(loss, x_adv)
                    if t == 1 and not torch.any(grad != 0):
                        warnings.warn(f"{self.name}: the loss gradient with respect to the input is zero; "
                                      "the attack cannot move the image", RuntimeWarning, stacklevel=2)
                    if trace:
                        self.trace.append({"iteration": t, "loss": float(loss.detach()),
                                           "iou": float(logit_scores(logits, y)["iou"].mean())})
                    x_adv = self.project(self.step(x_adv.detach(), grad), x)
        finally:
            for p, r in zip(self.model.parameters(), requires):
                p.requires_grad_(r)
        return x_adv.detach()


def _check_inputs(images, masks) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.as_tensor(images)
    masks = torch.as_tensor(masks)
    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"images: expected a (N, 1, H, W) tensor, got shape {tuple(images.shape)}")
    if masks.shape != images.shape:
        raise ValueError(f"masks: expected the shape of images {tuple(images.shape)}, got {tuple(masks.shape)}")
    if not torch.is_floating_point(images) or not torch.isfinite(images).all():
        raise ValueError("images: expected finite floating-point values")
    if images.numel() and (images.min() < 0 or images.max() > 1):
        raise ValueError("images: expected values in [0, 1]")
    return images.float(), masks.float()


class FGSM(Attack):
    """Fast gradient sign method: one step of size eps (Goodfellow et al. 2015)."""

    name = "fgsm"

    def __init__(self, model, eps, *, seed: int = 0):
        super().__init__(model, eps, steps=1, step_size=eps, norm="linf", random_start=False, seed=seed)


def ifgsm_steps(eps: float) -> int:
    """The paper's I-FGSM iterations, ``min(eps*255 + 4, 1.25 * eps*255)``, at least one."""
    levels = round(eps * 255, 6)  # 4/255 * 255 is 3.9999999999999996 in floating point
    return max(1, int(min(levels + 4, 1.25 * levels)))


class IFGSM(Attack):
    """Iterative FGSM (Kurakin et al. 2017) with the paper's step (1/255) and iterations."""

    name = "ifgsm"

    def __init__(self, model, eps, *, step_size: float = 1 / 255, steps: int | None = None, seed: int = 0):
        super().__init__(model, eps, steps=steps or ifgsm_steps(eps), step_size=step_size, norm="linf",
                         random_start=False, seed=seed)


class PGD(Attack):
    """Projected gradient descent from a random start (Madry et al. 2018), L-inf or L2."""

    name = "pgd"

    def __init__(self, model, eps, *, step_size: float = 2 / 255, steps: int = 10, norm: str = "linf",
                 random_start: bool = True, seed: int = 0):
        super().__init__(model, eps, steps=steps, step_size=step_size, norm=norm, random_start=random_start, seed=seed)


class SegPGD(PGD):
    """SegPGD (Gu et al., ECCV 2022): weights correctly and wrongly classified pixels differently.

    ``L = (1 - lambda_t) * BCE(correct pixels) + lambda_t * BCE(wrong pixels)``, summed and divided
    by the number of pixels, with ``lambda_t = (t - 1) / (2 T)``: early iterations push the pixels
    that are still right, later ones keep the wrong ones wrong.
    """

    name = "segpgd"

    def loss(self, logits, target, t):
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        correct = ((logits > 0) == (target > 0.5)).float()
        lam = (t - 1) / (2 * self.steps)
        return ((1 - lam) * correct * bce + lam * (1 - correct) * bce).mean()


class CosPGD(PGD):
    """CosPGD (Agnihotri et al., ICML 2024): per-pixel BCE weighted by the cosine similarity between
    the predicted class distribution ``(1 - p, p)`` and the one-hot ground truth, so that pixels
    that are still confidently right weigh most."""

    name = "cospgd"

    def loss(self, logits, target, t):
        p = torch.sigmoid(logits)
        p_true = torch.where(target > 0.5, p, 1 - p)
        cosine = (p_true / torch.sqrt(p**2 + (1 - p) ** 2)).detach()
        return (cosine * F.binary_cross_entropy_with_logits(logits, target, reduction="none")).mean()


ATTACKS = {"fgsm": FGSM, "ifgsm": IFGSM, "pgd": PGD, "segpgd": SegPGD, "cospgd": CosPGD}


def create_attack(name: str, model: torch.nn.Module, eps: float, **kwargs) -> Attack:
    """An attack by name (`ATTACKS`); unknown names raise ValueError listing the valid ones."""
    if name not in ATTACKS:
        raise ValueError(f"name: unknown attack {name!r}; expected one of {', '.join(ATTACKS)}")
    return ATTACKS[name](model, eps, **kwargs)


def random_sign_noise(images: torch.Tensor, eps: float, seed: int = 0) -> torch.Tensor:
    """A baseline: each pixel moved by +-eps at random (the L-inf norm of an attack), clipped to [0, 1]."""
    x = torch.as_tensor(images).float()
    check_real("eps", eps, low=0.0)
    generator = torch.Generator(device="cpu").manual_seed(check_int("seed", seed, low=0))
    signs = torch.randint(0, 2, x.shape, generator=generator).to(x.device, x.dtype) * 2 - 1
    return (x + eps * signs).clamp(0, 1)


def evaluate_attack(model: torch.nn.Module, images, masks, attack: str = "pgd", eps_list=PAPER_EPS, *,
                    batch_size: int = 16, seed: int = 0, progress: bool = False, **attack_kwargs):
    """Per image and budget: IoU, Dice and the paper's robustness ratio (attacked IoU / clean IoU).

    `attack` is a name of `ATTACKS` (or "noise" for the random-sign baseline). Images are
    (N, H, W) or (N, 1, H, W) arrays or tensors in [0, 1]; masks likewise. Returns a tidy DataFrame
    with columns image, attack, eps, eps_255, iou, dice, clean_iou, robustness.
    """
    x, y = _check_inputs(as_batch(images), as_batch(masks))
    if attack != "noise" and attack not in ATTACKS:
        raise ValueError(f"attack: unknown attack {attack!r}; expected one of {', '.join(ATTACKS)}, 'noise'")
    device = model_device(model)
    clean = predict_scores(model, x, y, batch_size)
    rows = []
    for eps in tqdm(list(eps_list), desc=f"{attack}", disable=not progress, leave=False):
        adv = []
        for i in range(0, len(x), batch_size):
            xb, yb = x[i:i + batch_size], y[i:i + batch_size]
            if attack == "noise":
                adv.append(random_sign_noise(xb, eps, seed=seed + i))
            else:
                attacker = create_attack(attack, model, eps, seed=seed, **attack_kwargs)
                adv.append(attacker(xb.to(device), yb.to(device)).cpu())
        scores = predict_scores(model, torch.cat(adv), y, batch_size)
        for k in range(len(x)):
            rows.append({"image": k, "attack": attack, "eps": float(eps), "eps_255": round(float(eps) * 255, 3),
                         "iou": float(scores["iou"][k]), "dice": float(scores["dice"][k]),
                         "clean_iou": float(clean["iou"][k]),
                         "robustness": float(scores["iou"][k] / max(clean["iou"][k], 1e-5))})
    return pd.DataFrame(rows)
