"""The paper's attacks and their segmentation variants: FGSM, I-FGSM, PGD, SegPGD and CosPGD."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from .base import Attack


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
