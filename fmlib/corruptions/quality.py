"""How much each corruption degrades an image against the clean one, and which ones the models' input
normalization cancels (no trained model involved)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from ..metrics import image_quality
from ..models import zscore
from .apply import corrupt
from .registry import CORRUPTIONS, SEVERITIES


def quality_table(dataset, corruptions: Sequence[str], *, seed: int = 0) -> pd.DataFrame:
    """PSNR, SSIM and SNR (`fmlib.metrics.image_quality`) of every image of a synthesis `dataset`
    under each of `corruptions` at every severity, against its clean image: one row per corruption,
    severity and image, tagged with the dataset's structure. Corruptions act on the dataset's raw
    counts (``corrupt(..., dataset=dataset)``) with generator seed `seed`.

    Examples
    --------
    >>> from fmlib.synthesis import make_dataset
    >>> quality_table(make_dataset("nuclei", 1, 64), ["defocus"]).shape[0]
    5
    """
    rows = []
    for name in corruptions:
        for severity in SEVERITIES:
            corrupted = corrupt(dataset.images, name, severity, rng=seed, dataset=dataset)
            for i in range(len(dataset)):
                q = image_quality(dataset.images[i], corrupted[i], dataset.masks[i])
                rows.append({"structure": dataset.structure, "corruption": name, "family": CORRUPTIONS[name].family,
                             "severity": severity, "image": i, **q})
    return pd.DataFrame(rows)


def _affine(clean: np.ndarray, corrupted: np.ndarray, tol: float) -> bool:
    """Whether ``corrupted = clip(a * clean + b)`` with a > 0 on every image (the fit uses the pixels
    neither image clips)."""
    for x, c in zip(clean.astype(np.float64), corrupted.astype(np.float64)):
        keep = (x > 0) & (x < 1) & (c > 0) & (c < 1)
        if keep.sum() < 2 or np.ptp(x[keep]) == 0:
            return False
        slope, intercept = np.polyfit(x[keep], c[keep], 1)
        mapped = slope * x + intercept
        if slope <= 0 or np.abs(mapped[keep] - c[keep]).max() > tol:
            return False
        # a clipped pixel must be one the affine map itself pushes out of [0, 1] (not a hot pixel)
        if (mapped[c == 1] < 1 - tol).any() or (mapped[c == 0] > tol).any():
            return False
    return True


def normalization_change(images, names: Sequence[str] | None = None, *, seed: int = 0,
                         tol: float = 1e-4) -> pd.DataFrame:
    """What each corruption changes of what a model sees after its input normalization
    (`fmlib.models.zscore`), per corruption and severity on `images` (N, H, W) in [0, 1]:

    - ``affine``: the corruption is an affine intensity map with a positive slope on every image
      (within `tol`, on the pixels it does not clip), which the z-score cancels exactly;
    - ``clipped_fraction``: the share of pixels it pushed to 0 or 1, the only way such a
      corruption can act;
    - ``max_change``: the largest absolute change of a z-scored pixel.
    """
    x = np.asarray(images, dtype=np.float32)
    reference = zscore(torch.from_numpy(x)[:, None])
    rows = []
    for name in names if names is not None else list(CORRUPTIONS):
        for severity in SEVERITIES:
            corrupted = corrupt(x, name, severity, rng=seed)
            change = (zscore(torch.from_numpy(corrupted)[:, None]) - reference).abs().max()
            clipped = ((corrupted == 0) | (corrupted == 1)) & ~((x == 0) | (x == 1))
            rows.append({"corruption": name, "severity": severity, "affine": _affine(x, corrupted, tol),
                         "clipped_fraction": float(clipped.mean()), "max_change": float(change)})
    return pd.DataFrame(rows)


def cancelled_corruptions(images, *, seed: int = 0) -> list[str]:
    """The corruptions that the models' per-image z-score cancels on `images`: affine intensity
    changes with a positive slope that clip no pixel, at every severity (`normalization_change`). A
    model sees the clean image under them, so they are reported apart from the others and kept out of
    headline averages. An affine change that clips (a brightness offset that saturates the brightest
    pixels) is not cancelled: it acts through the pixels it clips, as a saturating camera does.

    Examples
    --------
    >>> from fmlib.synthesis import make_dataset
    >>> cancelled_corruptions(make_dataset("nuclei", 2, 64, seed=0).images)
    ['low_contrast']
    """
    table = normalization_change(images, seed=seed)
    exact = table.assign(exact=table.affine & (table.clipped_fraction == 0))
    cancelled = exact.groupby("corruption", sort=False).exact.all()
    return [name for name, is_cancelled in cancelled.items() if is_cancelled]
