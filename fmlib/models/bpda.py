"""Straight-through gradients (BPDA) for layers whose gradients mislead an attack.

SegNet upsamples with the encoder's max-pooling indices: the forward pass is piecewise constant in
which pixel won each pooling window, so a perturbation that flips a winner moves the output in a way
the local gradient does not see, and a gradient attack can stall (gradient masking: a single FGSM
step may then do better than PGD). Backward Pass Differentiable Approximation (Athalye, Carlini &
Wagner, ICML 2018) keeps the forward pass exact and replaces, in the backward pass only, the
gradient of such a layer by that of a smooth approximation: here, nearest-neighbour upsampling in
place of max-unpooling.

A module opts in with a boolean attribute ``straight_through`` that its forward pass reads;
`straight_through` switches it on for a model within a ``with`` block. The model's outputs are
unchanged (tested); only the gradients an attack follows are.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn import functional as F


def unpool(x: torch.Tensor, indices: torch.Tensor, output_size, *, straight_through: bool = False) -> torch.Tensor:
    """2x2 max-unpooling of `x` with `indices`; with `straight_through`, the same values forward and
    the gradient of nearest-neighbour upsampling backward."""
    out = F.max_unpool2d(x, indices, 2, output_size=output_size)
    if not straight_through:
        return out
    smooth = F.interpolate(x, size=tuple(output_size), mode="nearest")
    return out.detach() + smooth - smooth.detach()


def has_straight_through(model: nn.Module) -> bool:
    """Whether some module of `model` has a straight-through (BPDA) backward pass to switch on."""
    return any(hasattr(m, "straight_through") for m in model.modules())


@contextmanager
def straight_through(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block, every module of `model` that supports it uses its BPDA backward pass.

    Examples
    --------
    >>> from fmlib.models import create_model
    >>> net = create_model("segnet", width=0.125)
    >>> with straight_through(net):
    ...     print(net.net.straight_through)
    True
    >>> has_straight_through(net), net.net.straight_through
    (True, False)
    """
    modules = [m for m in model.modules() if hasattr(m, "straight_through")]
    before = [m.straight_through for m in modules]
    try:
        for m in modules:
            m.straight_through = True
        yield model
    finally:
        for m, b in zip(modules, before):
            m.straight_through = b
