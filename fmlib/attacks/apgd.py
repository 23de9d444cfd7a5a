"""APGD (Croce & Hein, ICML 2020) for per-pixel binary segmentation, with segmentation losses.

Auto-PGD needs no step size: it starts at twice the budget and halves the step of an image at a
checkpoint when that image's loss has stopped rising (too few successful steps since the last
checkpoint, or no new best with the step unchanged), restarting it from its best point. A momentum
of 0.75 smooths the steps. The checkpoints ``w_j = ceil(p_j * steps)`` follow
``p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``.

For segmentation, as in SEA (Croce et al., ECCV 2024), several losses attack different weaknesses
(`LOSSES`): the per-pixel BCE, a soft Jaccard loss that targets the IoU itself, and the SegPGD
weighting that first pushes the pixels still right. Whatever the loss, each image keeps the point of
lowest (thresholded) IoU it reached, and an image whose IoU reaches zero stops being attacked.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.nn import functional as F

from .._checks import check_choice, check_int
from ..inference import logit_scores, model_device
from .base import Attack, check_inputs, input_gradients_only, project, random_start, warn_if_zero

#: Momentum and the share of successful steps below which the step is halved (the paper's values).
MOMENTUM = 0.75
RHO = 0.75


def _bce(logits, target, t, steps):
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).mean(1)


def _jaccard(logits, target, t, steps):
    # 1 - soft IoU: maximising it drives the IoU itself down, whatever the pixels' confidence.
    p = torch.sigmoid(logits).flatten(1)
    y = target.flatten(1)
    inter = (p * y).sum(1)
    return 1 - (inter + 1) / ((p + y - p * y).sum(1) + 1)


def _segpgd(logits, target, t, steps):
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    correct = ((logits > 0) == (target > 0.5)).float()
    lam = (t - 1) / (2 * steps)
    return ((1 - lam) * correct * bce + lam * (1 - correct) * bce).flatten(1).mean(1)


#: Per-image losses ``loss(logits, target, t, steps) -> (N,)`` that the attack maximises.
LOSSES: dict[str, Callable] = {"bce": _bce, "jaccard": _jaccard, "segpgd": _segpgd}


def checkpoints(steps: int) -> list[int]:
    """The iterations (1-based) at which APGD may halve its step: ``ceil(p_j * steps)``.

    Examples
    --------
    >>> checkpoints(100)
    [22, 41, 57, 70, 80, 87, 93, 99]
    """
    steps = check_int("steps", steps, low=1)
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return sorted({math.ceil(q * steps) for q in p[1:] if q <= 1})


class APGD(Attack):
    """APGD on one loss of `LOSSES`, in L-inf or L2, from the clean image or a random start.

    Parameters
    ----------
    model : torch.nn.Module
        Maps (N, 1, H, W) images in [0, 1] to (N, 1, H, W) logits.
    eps : float
        Budget (image intensity for L-inf, per-image L2 norm).
    steps : int
        Iterations.
    loss : {"bce", "jaccard", "segpgd"}
    norm : {"linf", "l2"}
    random_start : bool
        Start from a random point of the budget ball (restarts do); else from the clean image.
    seed : int

    ``iou_trace`` holds the mean best IoU after each iteration of the last call (for `converged`).
    ``perturb(..., start=x0)`` runs on from a point of the budget ball instead (the ensemble's
    continuation of a run that had not converged, `fmlib.attacks.worst_case`).
    """

    def __init__(self, model: torch.nn.Module, eps: float, *, steps: int = 50, loss: str = "bce",
                 norm: str = "linf", random_start: bool = False, seed: int = 0):
        # The step starts at twice the budget (the paper's) and is halved per image from there.
        super().__init__(model, eps, steps=steps, step_size=2 * eps, norm=norm, random_start=random_start, seed=seed)
        self.loss_name = check_choice("loss", loss, LOSSES)
        self.name = f"apgd-{loss}" + ("-l2" if norm == "l2" else "")
        self.iou_trace: list[float] = []

    def _direction(self, grad: torch.Tensor) -> torch.Tensor:
        if self.norm == "linf":
            return grad.sign()
        return grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)

    def _evaluate(self, x_adv, y, t):
        """Per-image loss, gradient and IoU at `x_adv`."""
        x_adv = x_adv.detach().requires_grad_(True)
        logits = self.model(x_adv)
        loss = LOSSES[self.loss_name](logits, y, t, self.steps)
        (grad,) = torch.autograd.grad(loss.sum(), x_adv)
        iou = torch.as_tensor(logit_scores(logits, y)["iou"], dtype=x_adv.dtype, device=x_adv.device)
        return loss.detach(), grad.detach(), iou

    def perturb(self, images: torch.Tensor, masks: torch.Tensor, *, trace: bool = False,
                start: torch.Tensor | None = None) -> torch.Tensor:
        """Adversarial versions of `images` (N, 1, H, W): per image, the point of lowest IoU reached,
        from `start` (N, 1, H, W, projected onto the budget ball) when given, else from the clean image
        or a random start. The start counts as reached: the result is never worse than it."""
        x, y = check_inputs(images, masks)
        if start is not None:
            start = torch.as_tensor(start)
            if start.shape != x.shape or not torch.is_floating_point(start) or not torch.isfinite(start).all():
                raise ValueError(f"start: expected finite floats of the images' shape {tuple(x.shape)}, "
                                 f"got {start.dtype} of shape {tuple(start.shape)}")
        if self.eps == 0:
            return x.clone()
        device = model_device(self.model)
        with input_gradients_only(self.model):
            return self._run(x.to(device), y.to(device), None if start is None else start.float().to(device))

    def _run(self, x: torch.Tensor, y: torch.Tensor, start: torch.Tensor | None = None) -> torch.Tensor:
        n = len(x)
        shape = (-1, 1, 1, 1)
        if start is not None:
            x_adv = project(start, x, self.eps, self.norm)
        else:
            x_adv = random_start(x, self.eps, self.norm, self.seed) if self.random_start else x.clone()
        loss, grad, iou = self._evaluate(x_adv, y, 1)
        warn_if_zero(grad, self.name)
        best_x, best_iou = x_adv.clone(), iou.clone()        # what is returned: lowest IoU
        top_x, top_loss, top_grad = x_adv.clone(), loss.clone(), grad.clone()  # highest loss: restarts
        eta = torch.full((n,), 2 * self.eps, device=x.device)
        marks = checkpoints(self.steps)
        last_mark, successes = 0, torch.zeros(n, device=x.device)
        eta_at_mark, top_at_mark = eta.clone(), top_loss.clone()
        x_prev, prev_loss = x_adv.clone(), loss.clone()
        active = best_iou > 0
        self.iou_trace = [float(best_iou.mean())]
        for t in range(1, self.steps + 1):
            if not active.any():
                break
            idx = active.nonzero().flatten()
            xa, xp, g, e = x_adv[idx], x_prev[idx], grad[idx], eta[idx].view(shape)
            z = project(xa + e * self._direction(g), x[idx], self.eps, self.norm)
            if t > 1:  # momentum (the first step has no previous one)
                z = project(xa + MOMENTUM * (z - xa) + (1 - MOMENTUM) * (xa - xp), x[idx], self.eps, self.norm)
            new_loss, new_grad, new_iou = self._evaluate(z, y[idx], t)
            x_prev[idx], x_adv[idx], grad[idx] = xa, z.detach(), new_grad
            successes[idx] += (new_loss > prev_loss[idx]).float()
            prev_loss[idx] = new_loss
            better = new_loss > top_loss[idx]
            top_loss[idx[better]], top_x[idx[better]], top_grad[idx[better]] = (new_loss[better], z[better].detach(),
                                                                                new_grad[better])
            lower = new_iou < best_iou[idx]
            best_iou[idx[lower]], best_x[idx[lower]] = new_iou[lower], z[lower].detach()
            if t in marks:
                stalled = successes < RHO * (t - last_mark)
                stuck = (eta_at_mark == eta) & (top_at_mark == top_loss)
                halve = (stalled | stuck) & active
                eta[halve] /= 2
                x_adv[halve], grad[halve] = top_x[halve], top_grad[halve]  # restart from the best point
                x_prev[halve] = top_x[halve]
                successes.zero_()
                last_mark, eta_at_mark, top_at_mark = t, eta.clone(), top_loss.clone()
            active = best_iou > 0  # a fully fooled image is left alone
            self.iou_trace.append(float(best_iou.mean()))
        return best_x.detach()
