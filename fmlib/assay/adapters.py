"""Adapters: any segmentation network made to follow the assay's contract.

The contract of a model (`CONTRACT`):

    float images (N, 1, H, W) in [0, 1]  ->  foreground logits (N, 1, H, W), H and W multiples of 32,
    differentiable with respect to the input (the attacks need its gradient).

`Adapter` wraps models with other conventions, `check_contract` verifies one, and
`load_user_model` loads a TorchScript file or a factory with a state dict.

**Safety.** A TorchScript file or an import path (``package.module:factory``) runs its author's code
when loaded: load only models you trust. State dicts load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch

from .._checks import check_choice, check_int
from ..inference import eval_mode
from ..models import zscore

CONTRACT = ("a model must map float images (N, 1, H, W) in [0, 1] to foreground logits (N, 1, H, W), for H and "
            "W multiples of 32, differentiably; adapt other conventions with output= ('logits', "
            "'probabilities', 'softmax2'), in_channels= (1 or 3) and normalization= ('none', 'zscore', "
            "'imagenet' or (mean, std))")
OUTPUTS = ("logits", "probabilities", "softmax2")
NORMALIZATIONS = ("none", "zscore", "imagenet")
IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


class Adapter(torch.nn.Module):
    """Wrap `model` so that it follows the assay's contract (module docstring).

    Parameters
    ----------
    model : torch.nn.Module
    output : {"logits", "probabilities", "softmax2"}
        What the model returns: one foreground logit channel, one sigmoid probability channel, or
        two class logits (background, foreground) of a softmax; the foreground log-odds are returned.
    in_channels : {1, 3}
        Input channels the model expects; a grey image is repeated into three.
    normalization : "none", "zscore", "imagenet" or (mean, std)
        Normalization the model expects on its input in [0, 1]: none, per-image z-score, ImageNet's
        mean and std, or given ones (scalars or one per channel).
    """

    def __init__(self, model: torch.nn.Module, *, output: str = "logits", in_channels: int = 1,
                 normalization: str | tuple = "none"):
        super().__init__()
        self.model = model
        self.output = check_choice("output", output, OUTPUTS)
        self.in_channels = check_int("in_channels", in_channels, low=1, high=3)
        if self.in_channels == 2:
            raise ValueError(f"in_channels: expected 1 or 3, got {in_channels}")
        if isinstance(normalization, str):
            check_choice("normalization", normalization, NORMALIZATIONS)
            mean_std = IMAGENET_MEAN_STD if normalization == "imagenet" else None
        else:
            if not (isinstance(normalization, (tuple, list)) and len(normalization) == 2):
                raise ValueError(f"normalization: expected 'none', 'zscore', 'imagenet' or (mean, std), got "
                                 f"{normalization!r}")
            mean_std = normalization
        self.zscore = normalization == "zscore"
        if mean_std is not None:
            mean, std = (torch.as_tensor(v, dtype=torch.float32).reshape(-1, 1, 1) for v in mean_std)
            if (std <= 0).any():
                raise ValueError(f"normalization: std must be positive, got {mean_std[1]!r}")
            self.register_buffer("mean", mean[None])
            self.register_buffer("std", std[None])
        else:
            self.mean = self.std = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.zscore:
            x = zscore(x)
        if self.in_channels == 3:
            x = x.expand(-1, 3, -1, -1)
        if self.mean is not None:
            x = (x - self.mean) / self.std
        out = self.model(x)
        if isinstance(out, dict):  # torchvision segmentation models return {"out": ..., "aux": ...}
            out = out["out"]
        elif isinstance(out, (tuple, list)):
            out = out[0]
        if self.output == "softmax2":
            return out[:, 1:2] - out[:, 0:1]  # log-odds of the foreground class
        if self.output == "probabilities":
            return torch.logit(out.clamp(1e-6, 1 - 1e-6))
        return out


def check_contract(model: torch.nn.Module, size: int = 64, device: str | torch.device = "cpu") -> None:
    """Raise ValueError stating the contract unless `model` maps (2, 1, size, size) images in [0, 1]
    to finite (2, 1, size, size) logits that are differentiable with respect to the input."""
    x = torch.rand(2, 1, size, size, generator=torch.Generator().manual_seed(0)).to(device).requires_grad_(True)
    with eval_mode(model):
        try:
            out = model(x)
        except Exception as err:  # noqa: BLE001 - any failure of a foreign model is reported with the contract
            raise ValueError(f"model: failed on a (2, 1, {size}, {size}) batch ({type(err).__name__}: {err}); "
                             f"{CONTRACT}") from err
    if not isinstance(out, torch.Tensor):
        raise ValueError(f"model: returned {type(out).__name__}, not a tensor; {CONTRACT}")
    if tuple(out.shape) != (2, 1, size, size):
        raise ValueError(f"model: returned shape {tuple(out.shape)} for input (2, 1, {size}, {size}); {CONTRACT}")
    if not out.is_floating_point() or not torch.isfinite(out).all():
        raise ValueError(f"model: returned non-finite or non-float logits ({out.dtype}); {CONTRACT}")
    if not out.requires_grad:
        raise ValueError(f"model: its output does not depend differentiably on the input; {CONTRACT}")


def load_user_model(path: str | Path | None = None, *, factory: str | None = None, weights: str | Path | None = None,
               device: str | torch.device = "cpu") -> torch.nn.Module:
    """Load a model to assess: a TorchScript file (`path`), or ``package.module:function`` (`factory`,
    called without arguments) plus an optional state-dict file (`weights`, loaded with
    ``weights_only=True``). Both ways run the author's code: load only models you trust.
    """
    if (path is None) == (factory is None):
        raise ValueError("model: give either path (a TorchScript file) or factory ('package.module:function')")
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"path: no model file at {path}")
        try:
            return torch.jit.load(str(path), map_location=device)
        except RuntimeError as err:
            raise ValueError(f"path: {path} is not a TorchScript file ({err.__class__.__name__}); export one "
                             "with torch.jit.trace(model, example).save(path), or pass factory= and weights= for a "
                             "state dict") from err
    module_name, sep, function = factory.partition(":")
    if not sep or not module_name or not function:
        raise ValueError(f"factory: expected 'package.module:function', got {factory!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"factory: cannot import {module_name!r} ({err})") from err
    if not callable(getattr(module, function, None)):
        raise ValueError(f"factory: {module_name!r} has no function {function!r}")
    model = getattr(module, function)()
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"factory: {factory!r} returned a {type(model).__name__}, expected a torch.nn.Module "
                         "(the function should build and return the model, called without arguments)")
    if weights is not None:
        weights = Path(weights)
        if not weights.is_file():
            raise FileNotFoundError(f"weights: no state-dict file at {weights}")
        model.load_state_dict(torch.load(weights, map_location=device, weights_only=True))
    return model.to(device)
