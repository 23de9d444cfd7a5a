"""Training objectives: the segmentation loss, and the paper's two defenses as losses.

- `segmentation_loss`: BCE with logits (optionally plus Dice), plus the auxiliary losses of
  architectures that have them (PSPNet, ICNet), weighted as in the paper's code.
- `defended_loss`: the loss of one batch under a defense: Gaussian-noise augmentation (sigma drawn
  from the noise levels per image; loss = mean of clean and noisy loss) or adversarial training
  (PGD in image space, or FGSM from a random start; loss = mean of clean and adversarial loss).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from .attacks.gradient import PGD  # the module itself: the ensemble is no input of a training


def segmentation_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, loss: str = "bce") -> torch.Tensor:
    """BCE (plus Dice) of the main output plus the weighted auxiliary losses."""
    logits, aux = model(x, return_aux=True) if getattr(model, "aux_weights", ()) else (model(x), [])

    def one(out):
        value = F.binary_cross_entropy_with_logits(out, y)
        if loss == "bce+dice":
            p = torch.sigmoid(out)
            inter = (p * y).flatten(1).sum(1)
            value = value + (1 - (2 * inter + 1) / (p.flatten(1).sum(1) + y.flatten(1).sum(1) + 1)).mean()
        return value

    total = one(logits)
    for weight, out in zip(model.aux_weights if aux else (), aux):
        total = total + weight * one(out)
    return total


def defended_loss(model, x, y, config, generator: torch.Generator) -> torch.Tensor:
    """The loss of batch (`x`, `y`) under `config.defense` (a `fmlib.training.TrainConfig`)."""
    clean = segmentation_loss(model, x, y, config.loss)
    if config.defense == "none":
        return clean
    if config.defense == "noise":
        levels = torch.tensor(config.noise_levels, dtype=x.dtype)
        sigma = levels[torch.randint(0, len(levels), (len(x),), generator=generator)].view(-1, 1, 1, 1) / 255
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        other = (x + sigma.to(x.device) * noise.to(x.device)).clamp(0, 1)
    else:
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        if config.adv_method == "pgd":
            attack = PGD(model, config.adv_eps, step_size=config.adv_step, steps=config.adv_steps, seed=seed)
        else:  # FGSM from a random start (Wong et al. 2020): one step of 1.25 eps
            attack = PGD(model, config.adv_eps, step_size=1.25 * config.adv_eps, steps=1, seed=seed)
        # The attack's input gradients stay float32 under mixed precision: bfloat16 would quantize
        # the signs and steps that define the perturbation.
        with torch.autocast(x.device.type, enabled=False):
            other = attack(x, y)
    return 0.5 * (clean + segmentation_loss(model, other, y, config.loss))
