"""The matched test conditions of a user's microscope, and the benchmark's models ranked on them.

`conditions` simulates the user's acquisition (`fmlib.matching`) with exact masks, on fields of
`FIELD_PX` px, and the degradations such a microscope meets:

- ``as estimated``: the matched acquisition itself, with as many objects per field as the user's
  foreground fraction implies (`scene_parameters`);
- ``SNR / 2`` and ``SNR / 4``: the same scenes with half and a quarter of the SNR (a shorter
  exposure, a dimmer label, bleaching);
- ``more blur``: the study's ``defocus`` corruption at severity 2 (one depth of field);
- the corruptions that the estimate makes plausible (`plausible_corruptions`): uneven illumination
  where the user's background varies across the field by 10 % of the objects' brightness or more,
  saturation where the user's frames hold clipped pixels.

The models see each simulated image as they will see the user's: its raw counts, scaled to [0, 1]
by the set's largest count (`as_counts`; the models' own z-score makes the scale irrelevant), not the
simulator's display mapping, which clips an acquisition whose background outshines its objects.
The fields are larger than the models' training images (they are fully convolutional): a small field
holds only a few objects of a large nucleus, and real images are seen whole.

`scores` runs every candidate model on every condition (per-image IoU); `ranking` orders the
candidates by their IoU averaged over the conditions, with a 95 % CI that resamples training seeds,
then images (`fmlib.stats.hierarchical_ci`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..acquisition import foreground
from ..corruptions import corrupt
from ..evaluation import prediction_scores
from ..inference import predict
from ..matching import matched_physics
from ..stats import hierarchical_ci
from ..synthesis import Dataset, make_dataset

#: Variation of the background across the field, as a fraction of the objects' step over it, above
#: which uneven illumination is a plausible corruption.
UNEVEN_BACKGROUND = 0.10
#: Fraction of pixels at a frame's maximum above which the frame is taken as saturated.
SATURATED_FRACTION = 1e-3
#: Most objects per field that `scene_parameters` asks for: the simulator places objects by rejection,
#: and tiny "objects" read off an image that is not of nuclei would ask for thousands.
MAX_OBJECTS = 200
#: Side (px) of the matched images: a field that holds many objects at the user's object size.
FIELD_PX = 192
#: Severity of the plausible corruptions and of the extra blur (the study's mid-low severity).
SEVERITY = 2


def saturated_fraction(frames: Sequence[np.ndarray]) -> float:
    """The largest fraction, over `frames`, of pixels at their frame's maximum value: clipped pixels
    pile up there, while an unclipped image holds its maximum in a handful of pixels."""
    return float(max(np.mean(frame == frame.max()) for frame in frames))


def plausible_corruptions(estimate: pd.DataFrame, frames: Sequence[np.ndarray]) -> dict[str, str]:
    """The study's corruptions (name: why) that the user's acquisition makes plausible."""
    found = {}
    values = estimate.set_index("quantity")
    # The unevenness is relative to the background level; what the models meet is that variation
    # against the objects' step, so a nearly black background with a relative ripple does not count.
    variation = values.loc["background_unevenness", "high"] * values.loc["background_ratio", "estimate"]
    if np.isfinite(variation) and variation >= UNEVEN_BACKGROUND:
        found["uneven_illumination"] = (f"your background varies by up to {variation:.0%} of the objects' "
                                        f"brightness across the field (threshold {UNEVEN_BACKGROUND:.0%})")
    saturated = saturated_fraction(frames)
    if saturated > SATURATED_FRACTION:
        found["saturation"] = f"{saturated:.2%} of the pixels of a frame sit at its maximum (clipped)"
    return found


def as_counts(dataset: Dataset) -> Dataset:
    """`dataset` whose ``images`` are its raw counts scaled to [0, 1] by their largest value: what the
    models see of the user's images (an affine map of the counts, nothing clipped)."""
    raw = dataset.raw.astype(np.float32)
    return dataclasses.replace(dataset, images=raw / max(float(raw.max()), 1.0))


def corrupted(dataset: Dataset, name: str, severity: int = SEVERITY, *, seed: int = 0) -> Dataset:
    """`dataset` (`as_counts`) with its images corrupted by the study's corruption `name`, applied to
    the images as they are (masks unchanged)."""
    images = corrupt(dataset.images, name, severity, rng=seed)
    return dataclasses.replace(dataset, images=np.asarray(images, dtype=np.float32))


def scene_parameters(estimate: pd.DataFrame, frames: Sequence[np.ndarray], structure: str, size: int) -> dict:
    """Structure parameters of the simulator matched without labels: for nuclei, the number per field
    of `size` px (within +-25 %) that covers the user's foreground fraction (Otsu, `fmlib.acquisition.
    foreground`) with objects of the estimated diameter, at most `MAX_OBJECTS`. Empty for the other
    structures, or where no diameter was estimated."""
    diameter = float(estimate.set_index("quantity").loc["diameter_px", "estimate"])
    if structure != "nuclei" or not np.isfinite(diameter) or diameter <= 0:
        return {}
    fraction = float(np.median([foreground(frame).mean() for frame in frames]))
    count = int(np.clip(round(fraction * size**2 / (math.pi / 4 * diameter**2)), 1, MAX_OBJECTS))
    return {"n_nuclei": (max(1, round(0.75 * count)), max(1, round(1.25 * count)))}


def conditions(estimate: pd.DataFrame, structure: str, frames: Sequence[np.ndarray], *, n_images: int,
               size: int = FIELD_PX, seed: int = 0) -> tuple[dict[str, Dataset], dict[str, str]]:
    """The matched test sets (name: `Dataset`, images `as_counts`) and why each condition is there
    (name: reason)."""
    physics = {**matched_physics(estimate, structure), **scene_parameters(estimate, frames, structure, size)}
    snr = physics.pop("snr")
    base = as_counts(make_dataset(structure, n_images, size, snr=snr, seed=seed, **physics))
    sets = {"as estimated": base}
    why = {"as estimated": f"your acquisition as estimated (SNR {snr:.1f})"}
    for factor in (2, 4):
        name = f"SNR / {factor}"
        sets[name] = as_counts(make_dataset(structure, n_images, size, snr=snr / factor, seed=seed, **physics))
        why[name] = f"the same scenes at SNR {snr / factor:.1f}"
    sets["more blur"] = corrupted(base, "defocus", seed=seed)
    why["more blur"] = "one depth of field out of focus (the study's defocus, severity 2)"
    for name, reason in plausible_corruptions(estimate, frames).items():
        sets[name] = corrupted(base, name, seed=seed)
        why[name] = reason
    return sets, why


def scores(candidates: Sequence[tuple[str, str, int]], load: Callable[[str, str, int], object],
           sets: Mapping[str, Dataset], *, progress: bool = True) -> pd.DataFrame:
    """Per-image IoU of each candidate (model, regime, seed; built by ``load(model, regime, seed)``)
    on each condition: ``model``, ``regime``, ``seed``, ``condition``, ``image``, ``iou``, ``dice``."""
    rows = []
    for model_name, regime, seed in tqdm(candidates, desc="models on your matched images", unit="model",
                                         disable=not progress):
        model = load(model_name, regime, seed)
        for condition, dataset in sets.items():
            table = prediction_scores(predict(model, dataset.images), dataset)
            rows.append(table[["image", "iou", "dice"]].assign(model=model_name, regime=regime, seed=seed,
                                                               condition=condition))
    columns = ["model", "regime", "seed", "condition", "image", "iou", "dice"]
    return pd.concat(rows, ignore_index=True)[columns]


def ranking(table: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """The candidates of `table` (`scores`) ranked by ``score``: IoU averaged over the conditions, with
    its 95 % CI (``low``, ``high``) over seeds, then images; beside it each condition's IoU.

    ``tied`` marks the candidates whose interval reaches the leader's estimate: the data do not
    separate them from it.
    """
    rows = []
    for (model_name, regime), group in table.groupby(["model", "regime"], sort=True):
        per_image = group.groupby(["seed", "image"], as_index=False).iou.mean()
        est, low, high = hierarchical_ci(per_image, "iou", n_boot=n_boot, seed=seed)
        row = {"model": model_name, "regime": regime, "n_seeds": group.seed.nunique(), "score": est,
               "low": low, "high": high}
        for condition, part in group.groupby("condition", sort=False):
            row[condition] = float(part.groupby("seed").iou.mean().mean())
        rows.append(row)
    ranked = pd.DataFrame(rows).sort_values("score", ascending=False, ignore_index=True)
    ranked.insert(0, "rank", np.arange(1, len(ranked) + 1))
    ranked["tied"] = (ranked["rank"] > 1) & (ranked["high"] >= ranked["score"].iloc[0])
    order = list(dict.fromkeys(table.condition))
    return ranked[["rank", "model", "regime", "n_seeds", "score", "low", "high", "tied", *order]]


def condition_scores(table: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Each candidate's IoU on each condition of `table` (`scores`) with its 95 % CI over seeds, then
    images: ``model``, ``regime``, ``condition``, ``iou``, ``low``, ``high``, in the table's order."""
    rows = []
    for (model_name, regime, condition), group in table.groupby(["model", "regime", "condition"], sort=False):
        est, low, high = hierarchical_ci(group, "iou", n_boot=n_boot, seed=seed)
        rows.append({"model": model_name, "regime": regime, "condition": condition, "iou": est, "low": low,
                     "high": high})
    return pd.DataFrame(rows)

