"""The attacks by name."""

from __future__ import annotations

import torch

from .base import Attack
from .gradient import FGSM, IFGSM, PGD, CosPGD, SegPGD

ATTACKS = {"fgsm": FGSM, "ifgsm": IFGSM, "pgd": PGD, "segpgd": SegPGD, "cospgd": CosPGD}


def create_attack(name: str, model: torch.nn.Module, eps: float, **kwargs) -> Attack:
    """An attack by name (`ATTACKS`); unknown names raise ValueError listing the valid ones."""
    if name not in ATTACKS:
        raise ValueError(f"name: unknown attack {name!r}; expected one of {', '.join(ATTACKS)}")
    return ATTACKS[name](model, eps, **kwargs)
