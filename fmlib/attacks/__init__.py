"""Adversarial attacks for per-pixel binary segmentation.

A small `Attack` base in the manner of torchattacks: the base handles the device, eval mode,
gradients, projection onto the budget, clipping to [0, 1] and seeding; each attack sets its loss
and its step. All attacks are untargeted on the per-pixel binary cross-entropy of the ground-truth
mask (one logit per pixel: cross-entropy over classes, as general attack libraries use, has a zero
gradient on such models). Budgets are in image-intensity space: ``eps=8/255`` is 8 grey levels.

Attacks: `FGSM`, `IFGSM` (the paper's step and iterations), `PGD` (L-inf and L2, random start),
`SegPGD` (Gu et al., ECCV 2022) and `CosPGD` (Agnihotri et al., ICML 2024); `APGD` (Croce & Hein
2020) on segmentation losses; `Square` (Andriushchenko et al., ECCV 2020), a gradient-free query attack
that masked gradients cannot stop; and `worst_case`, the per-image worst case of an ensemble of all of
them with restarts, Square last (in the spirit of AutoAttack and SEA), which
`evaluate_attack(..., "ensemble")` reports.
"""

from .apgd import APGD, LOSSES, checkpoints
from .base import NORMS, PAPER_EPS, Attack, check_inputs, project, random_sign_noise, random_start
from .convergence import converged, tail_drop
from .ensemble import SQUARE, add_square, continue_until_converged, members, worst_case
from .evaluate import ENSEMBLE, NOISE, TRANSFER, evaluate_attack
from .gradient import FGSM, IFGSM, PGD, CosPGD, SegPGD, ifgsm_steps
from .registry import ATTACKS, create_attack
from .square import SQUARE_LOSSES, Square, p_schedule

__all__ = [
    "APGD",
    "ATTACKS",
    "Attack",
    "CosPGD",
    "ENSEMBLE",
    "FGSM",
    "IFGSM",
    "LOSSES",
    "NOISE",
    "NORMS",
    "PAPER_EPS",
    "PGD",
    "SQUARE",
    "SQUARE_LOSSES",
    "SegPGD",
    "Square",
    "TRANSFER",
    "add_square",
    "check_inputs",
    "checkpoints",
    "continue_until_converged",
    "converged",
    "create_attack",
    "evaluate_attack",
    "ifgsm_steps",
    "members",
    "p_schedule",
    "project",
    "random_sign_noise",
    "random_start",
    "tail_drop",
    "worst_case",
]
