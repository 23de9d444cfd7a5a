"""Nuclei scored as objects on the real sources: the DSB 2018 matching (`fmlib.instances`) of the
models' foreground maps, split into nuclei the way the baseline splits its threshold, and of the
Otsu + watershed baseline itself, beside semantic IoU."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from ..inference import predict
from ..instances import DSB_THRESHOLDS, instance_table, split_touching, summarize
from ..realdata import Tiles, labelling, otsu_watershed
from .scores import BASELINE, BASELINE_REGIME


def predicted_instances(model: torch.nn.Module | None, tiles: Tiles, *, min_size_px: int = 16) -> np.ndarray:
    """Instance labels (N, H, W) of `tiles`: the model's foreground split into touching nuclei
    (`fmlib.instances.split_touching`), or with `model` None the Otsu + watershed baseline."""
    if model is None:
        return np.stack([otsu_watershed(image, min_size_px=min_size_px) for image in tiles.images])
    return np.stack([split_touching(mask, min_size_px=min_size_px) for mask in predict(model, tiles.images)])


def object_counts(models: Iterable[tuple[str, str, torch.nn.Module]], tiles: Mapping[str, Tiles],
                  sources: Sequence[str], *, baseline: bool = True,
                  thresholds: Sequence[float] = DSB_THRESHOLDS,
                  labeller: Callable[[torch.nn.Module, Tiles], np.ndarray] | None = None) -> pd.DataFrame:
    """TP, FP and FN per tile and threshold (`fmlib.instances.instance_table`) of every (name, regime,
    model) of a pool on each of `sources`, and of the baseline (``method`` `BASELINE`) when `baseline`;
    every row says who labelled its source (``labelling``: expert or automatic). A model's nuclei are
    ``labeller(model, tiles)`` (e.g. `fmlib.sizing.SizeNormalizer.instances`), by default
    `predicted_instances` on the tiles as they are."""
    pool = [*models, *([(BASELINE, BASELINE_REGIME, None)] if baseline else [])]
    rows = []
    for name, regime, model in pool:
        for source in sources:
            if tiles[source].labels is None:
                raise ValueError(f"tiles: source {source!r} has no instance labels")
            found = (predicted_instances(model, tiles[source]) if labeller is None or model is None
                     else labeller(model, tiles[source]))
            table = instance_table(tiles[source].labels, found, tiles[source].names, thresholds)
            rows.append(table.assign(method=name, regime=regime, source=source, labelling=labelling(source).kind))
    return pd.concat(rows, ignore_index=True)


def object_scores(counts: pd.DataFrame, *, by: Sequence[str] = ("source", "labelling", "method", "regime"),
                  n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """F1 per threshold and DSB average precision per group of `by` (`fmlib.instances.summarize`),
    with CIs that resample objects."""
    by = list(by)
    return pd.concat([summarize(group, n_boot=n_boot, seed=seed).assign(**dict(zip(by, key)))
                      for key, group in counts.groupby(by, sort=False)], ignore_index=True)[
        [*by, "metric", "threshold", "estimate", "ci_low", "ci_high", "n_true", "n_pred"]]
