"""Output resolution: a model's output stride, and the IoU that stride allows.

Many segmentation networks (PSPNet, ICNet, DeepLabV3+, SegFormer) compute their logits on a grid
coarser than the image and upsample them bilinearly at the end. A bilinear upsampling of an
(H/s, W/s) map cannot draw a structure much thinner than `s` pixels, whatever the network has learned,
so on thin structures (ER tubules, a few pixels wide) the output stride `s` caps the IoU. This module
measures both sides:

- `output_stride` finds the stride of a model from its output: the coarsest grid whose bilinear
  upsampling reproduces the logits exactly;
- `attainable_iou` fits logit maps at a given stride to the true masks themselves, an oracle that
  sees the answer, and reports the IoU they reach. A trained model with that stride that scores close
  to it is limited by its output resolution, not by its training.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ._checks import check_array, check_choice, check_int, check_real
from .inference import eval_mode, logit_scores, model_device
from .objectives import segmentation_loss
from .training import LOSSES

OBJECTIVES = (*LOSSES, "iou")
#: The oracle's search: L-BFGS iterations of the BCE fit, then Adam steps and rate of the "iou" search.
BCE_FIT_ITERATIONS, IOU_SEARCH_STEPS, IOU_SEARCH_LR = 200, 1000, 0.1


def upsampling_matrix(n_out: int, stride: int, *, align_corners: bool = False) -> torch.Tensor:
    """The (n_out, n_out // stride) matrix of PyTorch's 1D linear upsampling by `stride`.

    2D bilinear upsampling is separable: ``F.interpolate(z, scale_factor=s, mode="bilinear")`` equals
    ``U_h @ z @ U_w.T`` with ``U = upsampling_matrix(n, s)`` for each axis.

    Examples
    --------
    >>> upsampling_matrix(8, 4).shape
    torch.Size([8, 2])
    """
    n_out = check_int("n_out", n_out, low=1)
    stride = check_int("stride", stride, low=1)
    if n_out % stride:
        raise ValueError(f"stride: expected a divisor of n_out={n_out}, got {stride}")
    n_in = n_out // stride
    basis = torch.eye(n_in, dtype=torch.float64)[None]  # (1, n_in channels, n_in samples)
    up = F.interpolate(basis, size=n_out, mode="linear", align_corners=align_corners)
    return up[0].T.contiguous()


@torch.no_grad()
def output_stride(model: torch.nn.Module, *, size: int = 128, strides: Sequence[int] = (32, 16, 8, 4, 2),
                  seed: int = 0, rtol: float = 1e-4) -> int:
    """The output stride of `model`: the coarsest of `strides` whose bilinear upsampling (either corner
    alignment) reproduces the model's logits, or 1 when none does.

    The logits of a model with output stride ``s`` lie in the range of the upsampling ``U_h z U_w^T``
    of an (H/s, W/s) map ``z``; the least-squares fit of ``z`` then leaves a residual at rounding level.
    A network that refines its upsampled logits with further layers counts as stride 1. The model runs
    in eval mode (its mode is restored afterwards) on random images, on the device of its parameters.

    Parameters
    ----------
    model : torch.nn.Module
        Maps (N, 1, H, W) images to (N, C, H, W) logits.
    size : int
        Side of the square test images, in pixels; a multiple of every stride in `strides`.
    strides : sequence of int
        Candidate strides, each > 1.
    seed : int
        Seed of the random test images.
    rtol : float
        Largest residual, relative to the logits' deviation from their mean, that counts as exact.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        If `size` is not a multiple of a stride, a stride is < 2, or the logits are constant (no
        stride can be told from them).

    Examples
    --------
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 8, stride=8),
    ...                           torch.nn.Upsample(scale_factor=8, mode="bilinear"))
    >>> output_stride(net, size=64)
    8
    """
    size = check_int("size", size, low=2)
    strides = sorted((check_int("strides", s, low=2) for s in strides), reverse=True)
    for s in strides:
        if size % s:
            raise ValueError(f"size: expected a multiple of every stride in strides, got {size} (stride {s})")
    check_real("rtol", rtol, low=0, low_inclusive=False)
    seed = check_int("seed", seed, low=0)
    images = torch.rand(2, 1, size, size, generator=torch.Generator().manual_seed(seed))
    with eval_mode(model):
        logits = model(images.to(model_device(model))).double().cpu().flatten(0, 1)  # (N * C, H, W)
    if tuple(logits.shape[-2:]) != (size, size):
        raise ValueError(f"model: expected logits of size {size} x {size}, got {tuple(logits.shape[-2:])}")
    spread = torch.linalg.norm(logits - logits.mean())
    if spread == 0:
        raise ValueError("model: its logits are constant, so no output stride can be told from them")
    for s in strides:
        for align in (False, True):
            up = upsampling_matrix(size, s, align_corners=align)
            coarse = torch.linalg.pinv(up) @ logits @ torch.linalg.pinv(up).T
            if torch.linalg.norm(logits - up @ coarse @ up.T) <= rtol * spread:
                return s
    return 1


def _upsample(z: torch.Tensor, size: tuple[int, int], align_corners: bool) -> torch.Tensor:
    return F.interpolate(z, size=size, mode="bilinear", align_corners=align_corners)


def _iou(logits: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    return logit_scores(logits, target)["iou"]


def _lbfgs(z: torch.Tensor, target: torch.Tensor, align_corners: bool, steps: int, loss: str) -> torch.Tensor:
    """Minimize the training loss `loss` of the upsampled map `z` against `target` by L-BFGS."""
    size = tuple(target.shape[-2:])
    z = z.detach().clone().requires_grad_(True)  # a copy: the fit starts from `z` and leaves it as it is
    opt = torch.optim.LBFGS([z], lr=1, max_iter=steps, tolerance_grad=1e-10, tolerance_change=1e-14,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        # the training loss itself, with the coarse map's upsampling as the "model"
        value = segmentation_loss(lambda m: _upsample(m, size, align_corners), z, target, loss)
        value.backward()
        return value

    opt.step(closure)
    return z.detach()


def _fit_loss(target: torch.Tensor, stride: int, align_corners: bool, steps: int, loss: str,
              bce: torch.Tensor | None = None) -> torch.Tensor:
    """The stride-`stride` logit map that minimizes the training loss `loss` against `target`, by
    L-BFGS from the logit of the area-averaged mask. BCE is convex in the logits, which are linear in
    the map, so for ``loss="bce"`` this is the global minimum; the Dice term of "bce+dice" is not
    convex, and that fit starts from the BCE minimum (`bce`, where it is already computed)."""
    if bce is None:
        start = torch.logit(F.avg_pool2d(target, stride).clamp(1e-3, 1 - 1e-3))
        bce = _lbfgs(start, target, align_corners, steps, "bce")
    return bce if loss == "bce" else _lbfgs(bce, target, align_corners, steps, loss)


def _fit_iou(target: torch.Tensor, start: torch.Tensor, align_corners: bool, steps: int,
             lr: float) -> np.ndarray:
    """Raise the IoU of the thresholded map by gradient ascent on a soft IoU whose sigmoid sharpens
    from temperature 1 to 1/10 (a soft IoU at a fixed temperature rewards grey logits, the thresholded
    one does not); keep the best thresholded IoU seen per image."""
    size = tuple(target.shape[-2:])
    z = start.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    best = _iou(_upsample(z.detach(), size, align_corners), target)
    for step in range(steps):
        logits = _upsample(z, size, align_corners)
        p = torch.sigmoid(logits * (1 + 9 * step / max(steps - 1, 1)))
        inter = (p * target).sum((1, 2, 3))
        loss = (1 - inter / (p + target - p * target).sum((1, 2, 3))).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        best = np.maximum(best, _iou(_upsample(z.detach(), size, align_corners), target))
    return best


def _checked_masks(masks: np.ndarray, output_stride: int) -> np.ndarray:
    """`masks` as an (N, H, W) binary array whose H and W are multiples of `output_stride`, or ValueError."""
    masks = check_array("masks", masks, ndim=(2, 3))
    if not np.isin(masks, (0, 1)).all():
        raise ValueError("masks: expected binary values (bool or 0/1)")
    masks = masks[None] if masks.ndim == 2 else masks
    output_stride = check_int("output_stride", output_stride, low=1)
    if masks.shape[1] % output_stride or masks.shape[2] % output_stride:
        raise ValueError(f"masks: expected H and W multiples of output_stride={output_stride}, "
                         f"got shape {masks.shape[1:]}")
    return masks


def attainable_iou(masks: np.ndarray, output_stride: int, *, objective: str = "bce", align_corners: bool = False,
                   steps: int | None = None, lr: float = IOU_SEARCH_LR) -> np.ndarray:
    """Per-image IoU of logit maps at `output_stride`, bilinearly upsampled, fitted to the masks.

    An oracle for models whose logits are a bilinear upsampling of an (H/s, W/s) map (PSPNet and
    ICNet: s = 8; DeepLabV3+ and SegFormer: s = 4; see `output_stride`). It sees the true mask and
    fits the coarse map to it directly:

    - ``objective="bce"``: the map with the lowest binary cross-entropy, the loss the models are
      trained with. Convex, so this is its global minimum: where a BCE-trained model with that stride
      ends up if it fits every test image perfectly.
    - ``objective="iou"``: starting from the BCE map, gradient ascent on a sharpening soft IoU, keeping
      the best thresholded IoU seen. The best this search finds: a lower bound on the exact maximum
      (not known in closed form), and an estimate of what any training objective could reach.

    Parameters
    ----------
    masks : ndarray of bool or {0, 1}, shape (N, H, W) or (H, W)
        True foreground; H and W multiples of `output_stride`.
    output_stride : int
        Stride of the coarse map, >= 1 (1: full resolution, attainable IoU 1).
    objective : {"bce", "iou"}
        What the map is fitted for.
    align_corners : bool
        Corner alignment of the upsampling (smp's PSPNet uses True, ``F.interpolate`` defaults to False).
    steps : int, optional
        L-BFGS iterations of the BCE fit (default 200), or for "iou" the Adam steps that follow a
        200-iteration BCE fit (default 1000).
    lr : float
        Adam learning rate of the "iou" search.

    Returns
    -------
    ndarray of float64, shape (N,): IoU with the paper's formula, as `fmlib.metrics.segmentation_scores`.

    Raises
    ------
    ValueError
        If `masks` is not 2D/3D binary, H or W is not a multiple of `output_stride`, or an argument is
        out of range.

    Examples
    --------
    >>> stripes = np.zeros((1, 32, 32), bool); stripes[:, :, ::4] = True   # 1-pixel lines, 4 apart
    >>> attainable_iou(stripes, 1).round(3).tolist()
    [1.0]
    >>> bool(attainable_iou(stripes, 8)[0] < 0.5)   # a stride-8 map cannot draw them
    True
    """
    masks = _checked_masks(masks, output_stride)
    check_choice("objective", objective, OBJECTIVES)
    steps = check_int("steps", steps, low=1) if steps is not None else None
    lr = check_real("lr", lr, low=0, low_inclusive=False)
    if objective == "iou":
        return _attainable(masks, output_stride, ("iou",), align_corners, BCE_FIT_ITERATIONS, steps or IOU_SEARCH_STEPS,
                           lr)["iou"]
    return _attainable(masks, output_stride, (objective,), align_corners, steps or BCE_FIT_ITERATIONS, IOU_SEARCH_STEPS,
                       lr)[objective]


def _attainable(masks: np.ndarray, output_stride: int, objectives: Sequence[str], align_corners: bool,
                lbfgs_steps: int, iou_steps: int, lr: float) -> dict[str, np.ndarray]:
    """`attainable_iou` of checked (N, H, W) `masks` for each of `objectives`, with one BCE fit for all:
    it is the whole fit of "bce", the start of the "bce+dice" fit and of the "iou" search."""
    target = torch.as_tensor(masks.astype(np.float32))[:, None]
    if output_stride == 1 or not len(target):
        return {objective: _iou(target * 2 - 1, target) for objective in objectives}
    bce = _fit_loss(target, output_stride, align_corners, lbfgs_steps, "bce")
    size = tuple(target.shape[-2:])
    return {objective: _fit_iou(target, bce, align_corners, iou_steps, lr) if objective == "iou" else
            _iou(_upsample(_fit_loss(target, output_stride, align_corners, lbfgs_steps, objective, bce), size,
                           align_corners), target)
            for objective in objectives}


def attainable_table(masks: dict[str, np.ndarray], strides: Sequence[int] = (1, 2, 4, 8, 16),
                     objectives: Sequence[str] = ("bce",), *, iou_steps: int = IOU_SEARCH_STEPS,
                     progress: bool = False) -> pd.DataFrame:
    """`attainable_iou` per image for every structure of `masks` (name -> (N, H, W) masks), stride
    and objective: one row per structure, output stride, objective and image. `iou_steps` are the
    Adam steps of the "iou" search; the objectives of one structure and stride share their BCE fit.

    Examples
    --------
    >>> table = attainable_table({"dots": np.eye(8, dtype=bool)[None]}, strides=(1, 2))
    >>> table.columns.tolist()
    ['structure', 'output_stride', 'objective', 'image', 'iou']
    """
    objectives = [check_choice("objectives", o, OBJECTIVES) for o in dict.fromkeys(objectives)]
    iou_steps = check_int("iou_steps", iou_steps, low=1)
    rows = []
    for structure, structure_masks in tqdm(masks.items(), desc="attainable IoU", disable=not progress):
        for stride in strides:
            checked = _checked_masks(structure_masks, stride)
            fitted = _attainable(checked, stride, objectives, False, BCE_FIT_ITERATIONS, iou_steps, IOU_SEARCH_LR)
            for objective in objectives:
                for image, iou in enumerate(fitted[objective]):
                    rows.append({"structure": structure, "output_stride": stride, "objective": objective,
                                 "image": image, "iou": iou})
    return pd.DataFrame(rows)


def against_attainable(clean: pd.DataFrame, strides: Mapping[str, int] | pd.Series, limits: pd.DataFrame,
                       loss: str, *, score: str = "iou") -> pd.DataFrame:
    """Each model's clean IoU (`clean`: model, structure and the column `score`) beside the mean IoU
    that maps at its output stride (`strides`: model -> stride) reach (`limits`, from
    `attainable_limits`, fitted to the masks of the same images), fitted with the training loss `loss`
    and for IoU, and the share of the former that the model reaches. The IoU is in column ``iou``."""
    fitted = attainable_columns(loss)
    against = clean[["model", "structure", score]].rename(columns={score: "iou"}).assign(
        output_stride=clean.model.map(strides)).merge(limits, on=["structure", "output_stride"])
    against["share of attainable"] = against.iou / against[fitted[loss]]
    return against


def attainable_columns(loss: str) -> dict[str, str]:
    """Readers' column names of the mean attainable IoU, by objective."""
    return {loss: f"fitted with the training loss ({loss})", "iou": "fitted for IoU (best found)"}


def attainable_limits(attainable: pd.DataFrame, loss: str) -> pd.DataFrame:
    """Mean attainable IoU per structure and output stride, one column per objective
    (`attainable_columns`)."""
    limits = attainable.groupby(["structure", "output_stride", "objective"]).iou.mean().unstack("objective")
    return limits.rename(columns=attainable_columns(loss)).reset_index()
