"""The sim-to-real targets on expert labels, with confidence intervals that resample nuclei.

Two targets are set for the synthetic-trained nuclei models on the expert-labelled DSB image: the
median architecture of a training regime must segment it better than the classic Otsu + watershed
baseline, and the best one (chosen on the selection source, never on the test image) must reach the
sim-to-real bar. The chapter sets them on the randomized regime and reports the paper's protocol
(standard) beside them (`fmlib.simtoreal.regime_targets`). Both are semantic IoU over all pixels of
the test tiles, and both come with a bootstrap CI that resamples *nuclei*: every pixel belongs to
its nearest reference nucleus (the Voronoi cell of the labels, `nucleus_cells`), so a resample of
nuclei carries the false positives around them too, and the pooled IoU of the resampled cells is
exactly the tiles' IoU when nothing is resampled (a tile without any nucleus is one cell of its own,
so its false positives count). Training seeds are resampled first, within each architecture, then
nuclei.

What the CI leaves out: the seeds change the initialisation and the batch order, not the training
images (every seed trains on the same synthetic set), and two or three seeds resampled with
replacement understate the spread between training runs; nuclei cut by a tile border are resampled as
separate objects, and neighbouring nuclei of one image are not independent. The interval is
therefore conditional on this training set and these seeds, and somewhat narrow.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from skimage.segmentation import expand_labels

from .._checks import check_int, check_real
from ..realdata import Tiles
from .scores import BASELINE, Predictor, baseline_foreground, tile_prediction

#: The two targets of `sim_to_real_targets`, in order.
TARGETS = ("median model above the baseline", "best model reaches the bar")


def nucleus_cells(labels: np.ndarray) -> np.ndarray:
    """Each pixel of each tile assigned to its nearest reference nucleus: the labels of `labels`
    (N, H, W) grown over the whole tile (`skimage.segmentation.expand_labels`). A tile without any
    nucleus keeps 0 everywhere (`cell_counts` makes it one cell).

    Examples
    --------
    >>> labels = np.zeros((1, 4, 6), int); labels[0, 1, 0] = 1; labels[0, 2, 5] = 2
    >>> nucleus_cells(labels)[0]
    array([[1, 1, 1, 2, 2, 2],
           [1, 1, 1, 2, 2, 2],
           [1, 1, 1, 2, 2, 2],
           [1, 1, 1, 2, 2, 2]])
    """
    labels = np.asarray(labels)
    if labels.ndim != 3 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels: expected integer instance labels (N, H, W), got {labels.dtype} {labels.shape}")
    reach = labels.shape[1] + labels.shape[2]  # farther than any pixel of the tile
    return np.stack([expand_labels(tile, distance=reach) for tile in labels])


def cell_counts(predicted: np.ndarray, tiles: Tiles) -> pd.DataFrame:
    """Intersection and union pixel counts of a predicted foreground (N, H, W) with the reference
    masks of `tiles`, per nucleus cell (`nucleus_cells`): one row per tile and cell, columns
    ``tile``, ``cell``, ``intersection``, ``union``. A tile without any reference nucleus is one
    cell (``cell`` 0), so that its false positives count. The sums over all rows give the pixel IoU
    of all tiles together."""
    predicted = np.asarray(predicted)
    if tiles.labels is None:
        raise ValueError("tiles: instance labels are needed to resample nuclei")
    if predicted.shape != tiles.masks.shape:
        raise ValueError(f"predicted: expected shape {tiles.masks.shape} (the tiles'), got {predicted.shape}")
    if predicted.dtype != bool:
        raise ValueError(f"predicted: expected a boolean foreground, got {predicted.dtype}")
    cells = nucleus_cells(tiles.labels)
    truth = tiles.masks.astype(bool)
    rows = []
    for k, name in enumerate(tiles.names):
        cell = cells[k].ravel()
        n = int(cell.max()) + 1
        inter = np.bincount(cell, weights=(predicted[k] & truth[k]).ravel(), minlength=n)
        union = np.bincount(cell, weights=(predicted[k] | truth[k]).ravel(), minlength=n)
        ids = np.unique(cell[cell > 0]) if cell.any() else np.array([0])
        rows.append(pd.DataFrame({"tile": name, "cell": ids, "intersection": inter[ids].astype(np.int64),
                                  "union": union[ids].astype(np.int64)}))
    return pd.concat(rows, ignore_index=True)


def pixel_counts(models: Iterable[tuple[str, int, torch.nn.Module]], tiles: Tiles, *,
                 baseline: bool = True, predictor: Predictor | None = None) -> pd.DataFrame:
    """`cell_counts` of every (architecture, training seed, model) on `tiles`, and of the Otsu +
    watershed baseline (``method`` `BASELINE`, seed -1) when `baseline`; columns ``method``,
    ``seed``, ``tile``, ``cell``, ``intersection``, ``union``. A model's foreground is
    ``predictor(model, tiles)`` (e.g. a `fmlib.sizing.SizeNormalizer`), by default its prediction on
    the tiles as they are."""
    predictor = tile_prediction if predictor is None else predictor
    frames = []
    for name, seed, model in models:
        frames.append(cell_counts(predictor(model, tiles), tiles).assign(method=name, seed=int(seed)))
    if baseline:
        frames.append(cell_counts(baseline_foreground(tiles), tiles).assign(method=BASELINE, seed=-1))
    if not frames:
        raise ValueError("models: expected at least one model or the baseline")
    return pd.concat(frames, ignore_index=True)[["method", "seed", "tile", "cell", "intersection", "union"]]


def _verdict(low: float, high: float) -> str:
    """The verdict on a margin's CI: at or above zero, below zero, or spanning it."""
    if low >= 0:
        return "met"
    if high < 0:
        return "not met"
    return "inconclusive: the CI spans the target"


def sim_to_real_targets(counts: pd.DataFrame, *, models: Sequence[str], best: str, bar_iou: float,
                        n_boot: int = 2000, confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """The two targets on one source's `pixel_counts`: the median of `models` (each architecture's
    IoU the mean over its training seeds) against the baseline, and `best` against `bar_iou`.

    The bootstrap draws, per replicate, each architecture's seeds with replacement, then the nucleus
    cells with replacement, the same cells for every method (a paired comparison); the module
    docstring says what this interval leaves out. A target is
    ``met`` when the CI of its margin (median minus baseline; best minus bar) lies at or above zero,
    ``not met`` when it lies below, and inconclusive when it spans zero.

    Returns one row per target (`TARGETS`): ``target``, ``subject``, ``estimate`` with
    ``ci_low``/``ci_high``, the ``reference`` (baseline IoU with its CI, or the bar), the ``margin``
    with its CI, the ``verdict``, and ``n_nuclei``, ``n_models``, ``n_seeds``.
    """
    models = list(models)
    if not models or best not in models:
        raise ValueError(f"best: expected one of models {models}, got {best!r}")
    bar_iou = check_real("bar_iou", bar_iou, low=0.0, high=1.0)
    n_boot = check_int("n_boot", n_boot, low=1)
    confidence = check_real("confidence", confidence, low=0.0, high=1.0)
    missing = [m for m in [*models, BASELINE] if m not in set(counts.method)]
    if missing:
        raise ValueError(f"counts: no rows for {missing}; expected pixel_counts of every model and the baseline")
    cells = counts[["tile", "cell"]].drop_duplicates().reset_index(drop=True)
    index = pd.MultiIndex.from_frame(cells)

    def matrix(frame, column):  # one row per (method, seed), one column per cell
        wide = frame.pivot_table(index=["method", "seed"], columns=["tile", "cell"], values=column, aggfunc="sum")
        wide = wide.reindex(columns=index)
        if wide.isna().any().any():
            raise ValueError("counts: every method and seed must have a row for every nucleus cell")
        return wide

    inter, union = matrix(counts, "intersection"), matrix(counts, "union")
    runs = list(inter.index)
    seeds = {m: [i for i, (name, _) in enumerate(runs) if name == m] for m in [*models, BASELINE]}
    inter, union = inter.to_numpy(float), union.to_numpy(float)

    def scores(cell_draw, seed_draws):
        iou = inter[:, cell_draw].sum(axis=1) / np.maximum(union[:, cell_draw].sum(axis=1), 1.0)
        per_model = {m: iou[seed_draws[m]].mean() for m in seeds}
        median = float(np.median([per_model[m] for m in models]))
        return median, per_model[BASELINE], per_model[best]

    everything = np.arange(len(cells))
    point = scores(everything, seeds)
    rng = np.random.default_rng(seed)
    boots = np.array([scores(rng.integers(0, len(cells), len(cells)),
                             {m: rng.choice(ix, len(ix)) for m, ix in seeds.items()}) for _ in range(n_boot)])
    alpha = (1 - confidence) / 2

    def ci(values):
        return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))

    median_ci, base_ci, best_ci = ci(boots[:, 0]), ci(boots[:, 1]), ci(boots[:, 2])
    median_margin = ci(boots[:, 0] - boots[:, 1])
    best_margin = ci(boots[:, 2] - bar_iou)
    n_seeds = max(len(seeds[m]) for m in models)
    common = {"n_nuclei": len(cells), "n_models": len(models), "n_seeds": n_seeds}
    return pd.DataFrame([
        {"target": TARGETS[0], "subject": f"median of {len(models)} architectures", "estimate": point[0],
         "ci_low": median_ci[0], "ci_high": median_ci[1], "reference": point[1], "reference_ci_low": base_ci[0],
         "reference_ci_high": base_ci[1], "margin": point[0] - point[1], "margin_ci_low": median_margin[0],
         "margin_ci_high": median_margin[1], "verdict": _verdict(*median_margin), **common},
        {"target": TARGETS[1], "subject": best, "estimate": point[2], "ci_low": best_ci[0], "ci_high": best_ci[1],
         "reference": bar_iou, "reference_ci_low": np.nan, "reference_ci_high": np.nan, "margin": point[2] - bar_iou,
         "margin_ci_low": best_margin[0], "margin_ci_high": best_margin[1], "verdict": _verdict(*best_margin),
         **common},
    ])
