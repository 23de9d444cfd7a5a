"""The two comparisons of the real-images chapter: the best architecture trained on the real
training tiles, and trained on domain-randomized synthetic images at several strengths."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import torch
from tqdm.auto import tqdm

from .._checks import check_int
from ..cache import array_digest, content_key, write_atomic
from ..checkpoints import DataSpec, train
from ..inference import resolve_device
from ..models import create_model
from ..paths import cache_dir
from ..realdata import Tiles
from ..synthesis import Dataset
from ..training import TrainConfig, TrainedModel, fit
from .scores import source_scores
from .tiles import validation_split


def fit_real_reference(model_name: str, tiles: Tiles, *, width: float = 1.0, epochs: int, batch_size: int,
                       lr: float, loss: str, seed: int, progress: bool = False,
                       cache: str | Path | None = None) -> TrainedModel:
    """Train `model_name` on real tiles: the real-data reference of the synthetic-trained models.

    The first fifth of `tiles` validates (`validation_split`), the rest trains, with AdamW on a cosine
    schedule over `epochs` passes of the few real tiles (validated after each; the plateau rule may
    end it earlier), at `batch_size`, `lr`, `loss` and `seed`; the weights are initialized after
    ``torch.manual_seed(seed)``. Pass the selection source's tiles, so that no test tile is seen in
    training.

    The result is cached like the study's trainings (in `cache`, default `fmlib.paths.cache_dir`, under
    ``real_references/``), keyed by the tiles' content, the arguments and the code: the pages that
    compare with the reference train it once (the same weights; the global torch random state after
    the call differs between a training and a load, as after `fmlib.checkpoints.train`).
    """
    train_set, val_set = validation_split(tiles)
    per_epoch = max(1, len(train_set.images) // batch_size)
    config = TrainConfig(max_steps=epochs * per_epoch, eval_every=per_epoch, schedule="cosine", batch_size=batch_size,
                         lr=lr, loss=loss, seed=seed)
    payload = {"model": model_name, "width": width, "tiles": array_digest(tiles.images, tiles.masks),
               "config": config.to_dict()}
    key = content_key(payload, ["simtoreal/comparisons.py"])
    folder = Path(cache if cache is not None else cache_dir()) / "real_references" / f"{model_name}-{key}"
    torch.manual_seed(seed)
    model = create_model(model_name, width=width)
    if (folder / "done.json").exists():
        info = json.loads((folder / "done.json").read_text())
        model.load_state_dict(torch.load(folder / "best.pt", map_location="cpu", weights_only=True))
        model.to(resolve_device("auto")).eval()
        return TrainedModel(model, pd.read_csv(folder / "history.csv"), info["best_step"], info["best_val_iou"],
                            config, info["train_time_s"], key, steps=info["steps"], converged=info["converged"])
    result = fit(model, train_set, val_set, config, checkpoint_dir=folder, progress=progress)
    result.key = key
    result.history.to_csv(folder / "history.csv", index=False)
    (folder / "last.pt").unlink(missing_ok=True)  # the best weights are all a finished model needs
    info = {"model": model_name, "width": width, "config": config.to_dict(), "best_step": result.best_step,
            "best_val_iou": result.best_val_iou, "steps": result.steps, "converged": result.converged,
            "train_time_s": result.train_time_s, "key": key}
    write_atomic(folder / "done.json", lambda scratch: scratch.write_text(json.dumps(info, indent=2)))  # last: done
    return result


class Candidate(NamedTuple):
    """A model trained at one randomization strength, the first synthetic images it was trained on,
    and whether its training converged (the plateau rule held before the step cap)."""

    model: torch.nn.Module
    train_set: Dataset
    converged: bool = True


def randomized_candidates(model_name: str, strengths: Iterable[float], config: TrainConfig, *, n_train: int,
                          n_val: int, size: int, seed: int, width: float = 1.0, structure: str = "nuclei",
                          progress: bool = True, n_shown: int = 8,
                          cache: str | Path | None = None) -> dict[float, Candidate]:
    """Train `model_name` on domain-randomized images (`fmlib.domain`) at each of `strengths`, or
    load it: the trainings are cached like the study's (`fmlib.checkpoints.train`), and strength 0
    (the paper's single acquisition at SNR 8) is the study's ``standard`` data, strength
    ``cfg.training_randomization`` its ``randomized`` data, so those two are the grid's own models.

    Parameters
    ----------
    model_name : str
        The architecture (`fmlib.models.create_model`), at channel width `width`.
    strengths : iterable of float
        Randomization strengths in [0, 1] (`fmlib.domain.PhysicsRanges.scaled` of the default ranges).
    config : TrainConfig
        How to train (the study's configuration of the architecture, so only the data differ).
    n_train, n_val, size, seed : int
        The data specification (`fmlib.checkpoints.DataSpec`): pool and validation sizes, image
        side and the study seed of the scenes.
    structure : str
    progress : bool
        A tqdm bar over the strengths.
    n_shown : int
        Training images kept in each `Candidate` to show (the first of its pool).
    cache : path, optional
        The cache folder (`fmlib.paths.cache_dir` if None).

    Returns
    -------
    dict of float to Candidate
        By strength, in the order of `strengths`: the trained model, its first training images and
        whether its training converged.
    """
    out = {}
    for strength in tqdm(list(strengths), desc="randomization strengths", disable=not progress):
        data = DataSpec(structure, n_train=n_train, n_val=n_val, size=size, snr=8.0, seed=seed,
                        randomization=float(strength))
        fitted = train(model_name, data, config, width=width, cache=cache, progress=False)
        shown = training_sample(data, min(n_shown, n_train))
        out[float(strength)] = Candidate(fitted.model, shown, bool(fitted.converged))
    return out


def training_sample(spec: DataSpec, n_images: int = 64) -> Dataset:
    """The first `n_images` training images of data specification `spec` (`fmlib.checkpoints.DataSpec`):
    a sample of what its models train on, without simulating a large pool whole; past the pool's
    size, more draws of the same kind follow it (the same seed).

    Examples
    --------
    >>> sample = training_sample(DataSpec("nuclei", n_train=512, n_val=48, size=32), n_images=2)
    >>> sample.images.shape
    (2, 32, 32)
    """
    n_images = check_int("n_images", n_images, low=1)
    return dataclasses.replace(spec, n_train=n_images, n_val=1).make()[0]


def candidate_scores(candidates: Mapping[float, Candidate], tiles: Mapping[str, Tiles], sources: Iterable[str], *,
                     method: str) -> pd.DataFrame:
    """Per-tile scores of every candidate (by strength, `randomized_candidates`) on every source:
    one table with ``method``, ``strength`` and ``source``."""
    sources = list(sources)
    return pd.concat([source_scores(candidate.model, tiles, sources, method=method, strength=strength)
                      for strength, candidate in candidates.items()], ignore_index=True)
