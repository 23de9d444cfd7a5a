"""The two comparisons of the real-images chapter: the best architecture trained on the real
training tiles, and trained on domain-randomized synthetic images at several strengths."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

import pandas as pd
import torch
from tqdm.auto import tqdm

from ..domain import PhysicsRanges, randomized_dataset
from ..models import create_model
from ..realdata import Tiles
from ..synthesis import Dataset
from ..training import TrainConfig, TrainedModel, fit
from .scores import source_scores
from .tiles import validation_split

#: Seed offsets, from the study seed, of the randomized training and validation scenes: seeds of
#: their own, so that no randomized scene repeats a training, validation or test scene of the study.
RANDOMIZED_TRAIN_SEED_OFFSET = 7
RANDOMIZED_VAL_SEED_OFFSET = 8


def fit_real_reference(model_name: str, tiles: Tiles, *, width: float = 1.0, epochs: int, batch_size: int,
                       lr: float, loss: str, seed: int, progress: bool = False) -> TrainedModel:
    """Train `model_name` on real tiles: the real-data reference of the synthetic-trained models.

    The first fifth of `tiles` validates (`validation_split`), the rest trains, with the library's
    default `TrainConfig` (AdamW, cosine schedule) at `epochs`, `batch_size`, `lr`, `loss` and
    `seed`; the weights are initialized after ``torch.manual_seed(seed)``. Pass the selection
    source's tiles, so that no test tile is seen in training.
    """
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, loss=loss, seed=seed)
    torch.manual_seed(seed)
    model = create_model(model_name, width=width)
    train, val = validation_split(tiles)
    return fit(model, train, val, config, progress=progress)


class Candidate(NamedTuple):
    """A model trained at one randomization strength, and the synthetic images it was trained on."""

    model: torch.nn.Module
    train_set: Dataset


def randomized_candidates(model_name: str, strengths: Iterable[float], config: TrainConfig, *, n_train: int,
                          n_val: int, size: int, seed: int, width: float = 1.0, structure: str = "nuclei",
                          ranges: PhysicsRanges | None = None, progress: bool = True) -> dict[float, Candidate]:
    """Train `model_name` on domain-randomized images (`fmlib.domain`) at each of `strengths`.

    Parameters
    ----------
    model_name : str
        The architecture (`fmlib.models.create_model`), at channel width `width`.
    strengths : iterable of float
        Randomization strengths in [0, 1] (`PhysicsRanges.scaled`).
    config : TrainConfig
        How to train (the study's standard configuration, so only the data differ).
    n_train, n_val, size : int
        Number of training and validation images and their side in pixels.
    seed : int
        The study seed: the scenes are drawn with seeds ``seed + RANDOMIZED_TRAIN_SEED_OFFSET`` and
        ``seed + RANDOMIZED_VAL_SEED_OFFSET``, the weights initialized after ``torch.manual_seed(seed)``.
    structure : str
    ranges : PhysicsRanges, optional
        The full-strength ranges (the library's defaults if None).
    progress : bool
        A tqdm bar over the strengths.

    Returns
    -------
    dict of float to Candidate
        By strength, in the order of `strengths`: the trained model and its training images.
    """
    ranges = PhysicsRanges() if ranges is None else ranges
    out = {}
    for strength in tqdm(list(strengths), desc="randomization strengths", disable=not progress):
        part = ranges.scaled(strength)
        train_set = randomized_dataset(structure, n_train, size, seed=seed + RANDOMIZED_TRAIN_SEED_OFFSET, ranges=part)
        val_set = randomized_dataset(structure, n_val, size, seed=seed + RANDOMIZED_VAL_SEED_OFFSET, ranges=part)
        torch.manual_seed(seed)
        fitted = fit(create_model(model_name, width=width), (train_set.images, train_set.masks),
                     (val_set.images, val_set.masks), config, progress=False)
        out[float(strength)] = Candidate(fitted.model, train_set)
    return out


def candidate_scores(candidates: Mapping[float, Candidate], tiles: Mapping[str, Tiles], sources: Iterable[str], *,
                     method: str) -> pd.DataFrame:
    """Per-tile scores of every candidate (by strength, `randomized_candidates`) on every source:
    one table with ``method``, ``strength`` and ``source``."""
    sources = list(sources)
    return pd.concat([source_scores(candidate.model, tiles, sources, method=method, strength=strength)
                      for strength, candidate in candidates.items()], ignore_index=True)
