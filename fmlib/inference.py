"""Inference: a model's logits and masks for arrays of images, in eval mode, in batches.

The one place where a segmentation model is run for its predictions. A model maps float images
(N, 1, H, W) in [0, 1] to one foreground logit per pixel; a pixel is foreground where its logit is
positive (sigmoid > 0.5). Every function here runs the model in eval mode (`eval_mode`, which
restores the mode it found) and on the device of its parameters.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from ._checks import check_int
from .metrics import segmentation_scores


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else the CPU; anything else as `torch.device` reads it."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter (the CPU for a model without parameters)."""
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


@contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Run the block with `model` in eval mode (BatchNorm running statistics, no dropout), then give
    it back the mode it had."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def autocast(device: torch.device, enabled: bool):
    """bfloat16 autocast on CUDA when `enabled`; a no-op elsewhere, so CPU runs stay float32 and
    reproducible bit for bit. bfloat16 keeps float32's range: no gradient scaler is needed."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=bool(enabled) and device.type == "cuda")


def as_batch(images) -> torch.Tensor:
    """Images (N, H, W) or (N, 1, H, W), an array or a tensor, as a float32 (N, 1, H, W) CPU tensor."""
    x = torch.as_tensor(np.asarray(images, dtype=np.float32))
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"images: expected shape (N, H, W) or (N, 1, H, W), got {tuple(x.shape)}")
    return x


def batches(n: int, batch_size: int) -> Iterator[slice]:
    """Consecutive slices of ``range(n)`` of at most `batch_size` items."""
    batch_size = check_int("batch_size", batch_size, low=1)
    for start in range(0, n, batch_size):
        yield slice(start, start + batch_size)


def masks_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Foreground where the logit is positive (sigmoid > 0.5)."""
    return logits > 0


@torch.no_grad()
def predict_logits(model: torch.nn.Module, images, batch_size: int = 16, *,
                   mixed_precision: bool = False) -> torch.Tensor:
    """The logits (N, 1, H, W) of `model` for `images` (N, H, W) in [0, 1], on the CPU, in float32.

    `mixed_precision` runs the forward pass in bfloat16 on CUDA (ignored on the CPU)."""
    x = as_batch(images)
    device = model_device(model)
    with eval_mode(model), autocast(device, mixed_precision):
        return torch.cat([model(x[part].to(device)).float().cpu() for part in batches(len(x), batch_size)])


def predict(model: torch.nn.Module, images, batch_size: int = 16, *, mixed_precision: bool = False) -> np.ndarray:
    """Binary predictions (logit > 0) of `model` for images (N, H, W) in [0, 1]: bool (N, H, W).

    Examples
    --------
    >>> from fmlib.models import create_model
    >>> predict(create_model("sim_unet"), np.zeros((2, 64, 64), np.float32)).shape
    (2, 64, 64)
    """
    logits = predict_logits(model, images, batch_size, mixed_precision=mixed_precision)
    return masks_from_logits(logits)[:, 0].numpy()


def predict_scores(model: torch.nn.Module, images, masks, batch_size: int = 16, *,
                   mixed_precision: bool = False) -> dict[str, np.ndarray]:
    """Per-image IoU, Dice, precision and recall (`fmlib.metrics.segmentation_scores`) of the
    predictions of `model` for `images` against `masks` (N, H, W), foreground where mask > 0.5."""
    truth = np.asarray(masks) > 0.5
    if truth.ndim == 4:
        truth = truth[:, 0]
    return segmentation_scores(predict(model, images, batch_size, mixed_precision=mixed_precision), truth)


def logit_scores(logits: torch.Tensor, target: torch.Tensor) -> dict[str, np.ndarray]:
    """Per-image scores (`fmlib.metrics.segmentation_scores`) of logits (N, 1, H, W) already computed,
    against target masks of the same shape (foreground where > 0.5)."""
    return segmentation_scores(masks_from_logits(logits.detach())[:, 0].cpu().numpy(),
                               target[:, 0].detach().cpu().numpy() > 0.5)
