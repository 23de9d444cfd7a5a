"""The model registry, the normalizing wrapper, and size measures."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .._checks import check_int, check_real
from ..inference import eval_mode


@dataclass(frozen=True)
class ModelSpec:
    """A registered architecture and what the book says about it."""

    name: str
    build: Callable[..., nn.Module]
    family: str                       # "cnn" or "transformer"
    description: str
    paper_parameters_m: float | None  # parameters of the paper's code (3-channel input), millions
    aux_weights: tuple[float, ...] = ()
    tags: dict = field(default_factory=dict)


MODELS: dict[str, ModelSpec] = {}


def register_model(name: str, *, family: str, description: str, paper_parameters_m: float | None = None,
                   aux_weights: tuple[float, ...] = (), **tags):
    """Decorator: register `build(in_channels, classes, width) -> nn.Module` under `name`.

    A network with auxiliary heads returns ``(logits, [aux_logits, ...])`` when called with
    ``return_aux=True``; `aux_weights` are their loss weights.
    """

    def decorate(build):
        MODELS[name] = ModelSpec(name, build, family, description, paper_parameters_m, tuple(aux_weights), tags)
        return build

    return decorate


def list_models(family: str | None = None) -> list[str]:
    """Registered model names, optionally of one family ("cnn", "transformer")."""
    return [n for n, s in MODELS.items() if family is None or s.family == family]


def scaled(channels: int, width: float, minimum: int = 4) -> int:
    """`channels` times `width`, rounded to a multiple of 4 (at least `minimum`)."""
    return max(minimum, int(round(channels * width / 4)) * 4)


def zscore(x: torch.Tensor) -> torch.Tensor:
    """Per-image (and channel) z-score, the input normalization of every model (as in the paper):
    ``(x - mean) / (std + 1e-6)`` over H and W. It cancels any affine intensity change with a positive
    slope, so corruptions that are only that cannot act on the models (`fmlib.corruptions.cancelled_corruptions`)."""
    mean = x.mean(dim=(-2, -1), keepdim=True)
    std = x.std(dim=(-2, -1), keepdim=True)
    return (x - mean) / (std + 1e-6)


class Segmenter(nn.Module):
    """Per-image z-score normalization, the network, and a check of the input contract."""

    def __init__(self, net: nn.Module, name: str, in_channels: int = 1, aux_weights: tuple[float, ...] = ()):
        super().__init__()
        self.net = net
        self.name = name
        self.in_channels = in_channels
        self.aux_weights = tuple(aux_weights)

    def forward(self, x: torch.Tensor, return_aux: bool = False):
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x: expected a (N, {self.in_channels}, H, W) tensor, got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h % 32 or w % 32:
            raise ValueError(f"x: H and W must be multiples of 32 (the models downsample by 32), got {h} x {w}")
        z = zscore(x)
        if return_aux:
            if self.aux_weights:
                return self.net(z, return_aux=True)
            return self.net(z), []
        out = self.net(z)
        return out[0] if isinstance(out, tuple) else out


def create_model(name: str, in_channels: int = 1, classes: int = 1, width: float = 1.0) -> Segmenter:
    """Build model `name` with random weights.

    Raises ValueError for an unknown name (listing the valid ones) or a bad argument.

    Examples
    --------
    >>> model = create_model("sim_unet")
    >>> model(torch.rand(2, 1, 64, 64)).shape
    torch.Size([2, 1, 64, 64])
    """
    if name not in MODELS:
        raise ValueError(f"name: unknown model {name!r}; expected one of {', '.join(MODELS)}")
    check_int("in_channels", in_channels, low=1, high=16)
    check_int("classes", classes, low=1, high=1000)
    check_real("width", width, low=0.05, high=4.0)
    spec = MODELS[name]
    return Segmenter(spec.build(in_channels=in_channels, classes=classes, width=float(width)), name, in_channels,
                     spec.aux_weights)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_flops(model: nn.Module, size: int = 128, in_channels: int = 1) -> int:
    """Floating-point operations of one forward pass on a (1, in_channels, size, size) image.

    Counted by `torch.utils.flop_counter` (a multiply-add counts as two operations).
    """
    counter = FlopCounterMode(display=False)
    with eval_mode(model), torch.no_grad(), counter:
        model(torch.rand(1, in_channels, size, size))
    return int(counter.get_total_flops())
