"""How much each corruption degrades an image, measured against the clean image (no model involved)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..metrics import image_quality
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
