"""The attack base: budgets, projection, random starts and the iteration shared by the gradient attacks."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch.nn import functional as F

from .._checks import check_choice, check_int, check_real
from ..inference import eval_mode, logit_scores, model_device

NORMS = ("linf", "l2")
#: The paper's budgets, in grey levels of an 8-bit image.
PAPER_EPS = tuple(e / 255 for e in (1, 2, 4, 8, 16, 32))


def check_inputs(images, masks) -> tuple[torch.Tensor, torch.Tensor]:
    """`images` and `masks` as float tensors (N, 1, H, W), checked: images finite and in [0, 1]."""
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


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """`x_adv` moved back into the `norm` ball of radius `eps` around `x`, and into [0, 1]."""
    delta = x_adv - x
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        size = delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        delta = delta * torch.clamp(eps / size.clamp_min(1e-12), max=1.0)
    return (x + delta).clamp(0.0, 1.0)


def random_start(x: torch.Tensor, eps: float, norm: str, seed: int) -> torch.Tensor:
    """A uniform random point of the budget ball around `x` (clipped to [0, 1]), drawn with `seed`."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    noise = torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device) * 2 - 1
    if norm == "l2":
        # Uniform in the L2 ball: a random direction times a radius ~ eps * u^(1/d).
        direction = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        direction = direction / direction.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        u = torch.rand(x.shape[0], generator=generator, dtype=x.dtype).to(x.device)
        noise = direction * (u ** (1.0 / x[0].numel())).view(-1, 1, 1, 1)
    return project(x + eps * noise, x, eps, norm)


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
        return project(x_adv, x, self.eps, self.norm)

    def __call__(self, images: torch.Tensor, masks: torch.Tensor, *, trace: bool = False) -> torch.Tensor:
        return self.perturb(images, masks, trace=trace)

    def perturb(self, images: torch.Tensor, masks: torch.Tensor, *, trace: bool = False) -> torch.Tensor:
        """Adversarial versions of `images` (N, 1, H, W) in [0, 1] for ground truth `masks`."""
        x, y = check_inputs(images, masks)
        if self.eps == 0:
            return x.clone()
        device = model_device(self.model)
        x, y = x.to(device), y.to(device)
        self.trace = []
        with input_gradients_only(self.model):
            x_adv = random_start(x, self.eps, self.norm, self.seed) if self.random_start else x.clone()
            for t in range(1, self.steps + 1):
                x_adv.requires_grad_(True)
                logits = self.model(x_adv)
                loss = self.loss(logits, y, t)
                (grad,) = torch.autograd.grad(loss, x_adv)
                if t == 1:
                    warn_if_zero(grad, self.name)
                if trace:
                    self.trace.append({"iteration": t, "loss": float(loss.detach()),
                                       "iou": float(logit_scores(logits, y)["iou"].mean())})
                x_adv = self.project(self.step(x_adv.detach(), grad), x)
        return x_adv.detach()


@contextmanager
def input_gradients_only(model: torch.nn.Module) -> Iterator[None]:
    """Run the block with `model` in eval mode and its parameters frozen (an attack needs only the
    gradient with respect to the input), then give both back as they were."""
    requires = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        with eval_mode(model), torch.enable_grad():
            yield
    finally:
        for p, r in zip(model.parameters(), requires):
            p.requires_grad_(r)


def warn_if_zero(grad: torch.Tensor, name: str) -> None:
    """Warn when an attack's input gradient is zero: then it cannot move the image (masked gradients,
    or a loss the model's output does not reach)."""
    if not torch.any(grad != 0):
        warnings.warn(f"{name}: the loss gradient with respect to the input is zero; the attack cannot move the image",
                      RuntimeWarning, stacklevel=3)


def random_sign_noise(images: torch.Tensor, eps: float, seed: int = 0) -> torch.Tensor:
    """A baseline: each pixel moved by +-eps at random (the L-inf norm of an attack), clipped to [0, 1]."""
    x = torch.as_tensor(images).float()
    check_real("eps", eps, low=0.0)
    generator = torch.Generator(device="cpu").manual_seed(check_int("seed", seed, low=0))
    signs = torch.randint(0, 2, x.shape, generator=generator).to(x.device, x.dtype) * 2 - 1
    return (x + eps * signs).clamp(0, 1)
