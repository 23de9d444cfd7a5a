"""When has a training run converged? A plateau rule with evidence, and the learning rate it drives.

A validation curve that has stopped rising is only evidence of convergence if the model could still
have learned: a run whose learning rate has decayed to (almost) nothing flattens whatever it has
learned. The rule here therefore asks for a plateau *at a learning rate that still trains*:

- `plateau_reached`: the last ``patience`` validations did not beat the best score before them by
  more than ``min_delta``, while the learning rate stayed at least ``min_lr_ratio`` of its base;
- `PlateauRule`: reduce-on-plateau with that test. Each plateau halves the learning rate (``factor``)
  and gives the run ``patience`` validations more; the plateau after the last of ``max_reductions``
  reductions ends the run as *converged*: training went on at two or three learning rates and stopped
  helping at each. A run that reaches its step cap first is *not converged*.

`learning_rate` gives the learning rate of a step: a linear warm-up (transformers need one), then the
schedule (``"plateau"``: the base times the reductions so far; ``"cosine"``, ``"step"``,
``"constant"`` as usual).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ._checks import check_int, check_real

SCHEDULES = ("plateau", "cosine", "step", "constant")


def plateau_reached(scores: Sequence[float], lrs: Sequence[float], *, patience: int, min_delta: float = 0.0,
                    base_lr: float, min_lr_ratio: float = 0.05) -> bool:
    """Whether a validation curve has reached a plateau that more training would not lift.

    Parameters
    ----------
    scores : sequence of float
        Validation scores (higher is better), one per validation, oldest first.
    lrs : sequence of float
        The learning rate during the steps before each validation (same length as `scores`).
    patience : int
        Validations that must bring no improvement.
    min_delta : float
        The improvement over the best earlier score that still counts as progress.
    base_lr : float
        The run's base learning rate.
    min_lr_ratio : float
        The learning rate during those `patience` validations must be at least this share of
        `base_lr`: a curve flattened by a vanished learning rate is no evidence.

    Returns
    -------
    bool
        True when the last `patience` scores do not exceed ``max(earlier) + min_delta`` and the
        learning rate stayed at or above ``min_lr_ratio * base_lr`` throughout them.

    Examples
    --------
    >>> plateau_reached([0.5, 0.8, 0.80, 0.80, 0.79], [1e-3] * 5, patience=3, base_lr=1e-3)
    True
    >>> plateau_reached([0.5, 0.6, 0.7, 0.8, 0.9], [1e-3] * 5, patience=3, base_lr=1e-3)  # still rising
    False
    >>> plateau_reached([0.5, 0.8, 0.8, 0.8, 0.8], [1e-3, 1e-4, 1e-6, 1e-7, 0.0], patience=3, base_lr=1e-3)
    False
    """
    check_int("patience", patience, low=1)
    check_real("min_delta", min_delta, low=0.0)
    check_real("base_lr", base_lr, low=0.0, low_inclusive=False)
    check_real("min_lr_ratio", min_lr_ratio, low=0.0, high=1.0)
    if len(scores) != len(lrs):
        raise ValueError(f"lrs: expected one learning rate per score ({len(scores)}), got {len(lrs)}")
    if len(scores) <= patience:
        return False
    before, recent = max(scores[:-patience]), max(scores[-patience:])
    return recent <= before + min_delta and min(lrs[-patience:]) >= min_lr_ratio * base_lr


@dataclass(frozen=True)
class PlateauRule:
    """Reduce-on-plateau with a convergence verdict (see the module docstring)."""

    patience: int = 4
    min_delta: float = 0.005   # about the noise of a validation IoU on ~50 images
    factor: float = 0.5
    max_reductions: int = 2
    min_lr_ratio: float = 0.05

    def __post_init__(self):
        check_int("patience", self.patience, low=1)
        check_real("min_delta", self.min_delta, low=0.0, high=1.0)
        check_real("factor", self.factor, low=0.0, low_inclusive=False, high=1.0)
        check_int("max_reductions", self.max_reductions, low=0)
        check_real("min_lr_ratio", self.min_lr_ratio, low=0.0, high=1.0)

    def step(self, scores: Sequence[float], lrs: Sequence[float], reductions: int, since: int, base_lr: float,
             can_reduce: bool = True) -> tuple[str, int, int]:
        """What to do after the latest validation: ``"go on"``, ``"reduce"`` (the learning rate, by
        `factor`) or ``"converged"``. `reductions` so far, `since`: the index of the first validation
        at the current learning rate (a plateau is judged only on validations at one rate).
        `can_reduce` is False for schedules other than ``"plateau"``, which set their own rate.
        Returns (action, reductions, since) after the action."""
        # A plateau needs `patience` validations since the last reduction, against the best before them.
        if len(scores) - since < self.patience or not plateau_reached(
                scores, lrs, patience=self.patience, min_delta=self.min_delta, base_lr=base_lr,
                min_lr_ratio=self.min_lr_ratio):
            return "go on", reductions, since
        if can_reduce and reductions < self.max_reductions:
            return "reduce", reductions + 1, len(scores)
        return "converged", reductions, since


def learning_rate(step: int, base_lr: float, *, schedule: str = "plateau", max_steps: int = 1, warmup_steps: int = 0,
                  reductions: int = 0, factor: float = 0.5, step_every: int = 1, step_gamma: float = 0.5) -> float:
    """The learning rate of optimizer step `step` (0-based).

    Examples
    --------
    >>> learning_rate(0, 1e-3, warmup_steps=4)
    0.00025
    >>> learning_rate(10, 1e-3, reductions=2)
    0.00025
    >>> round(learning_rate(50, 1.0, schedule="cosine", max_steps=100), 3)
    0.5
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule: expected one of {SCHEDULES}, got {schedule!r}")
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    if schedule == "plateau":
        scale = factor ** reductions
    elif schedule == "cosine":
        scale = 0.5 * (1 + math.cos(math.pi * min(step, max_steps) / max_steps))
    elif schedule == "step":
        scale = step_gamma ** (step // step_every)
    else:
        scale = 1.0
    return base_lr * warm * scale
