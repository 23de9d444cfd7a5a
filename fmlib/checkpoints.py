"""Trained models, cached: `train` a model on synthetic data once, and `load_trained` it back.

The training images are a pool drawn once from the simulator per data specification and cached
(``<cache>/datasets/``): every model, seed and regime that trains on the same specification reads
the same pool instead of simulating it again.

A finished training is stored under ``<cache>/checkpoints/<model>-<structure>-<key>/`` (best
weights, history, ``done.json``), named by `training_key`: the content hash (`fmlib.cache`) of the
model, its width, the data specification, the training configuration and the code the training
runs. An interrupted training resumes from its last epoch (`fmlib.training.fit`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .cache import content_key, write_atomic
from .domain import PhysicsRanges, randomized_dataset
from .inference import resolve_device
from .models import create_model
from .paths import cache_dir
from .synthesis import make_dataset
from .training import TrainConfig, TrainedModel, fit

#: Seed offset of the validation scenes from the training scenes (the test scenes: `fmlib.grid`).
VALIDATION_SEED_OFFSET = 100_000


@dataclass(frozen=True)
class DataSpec:
    """The synthetic training and validation data of a model (validation scenes differ from training).

    With ``randomization`` 0 every image is one acquisition at `snr` (the paper's protocol); above 0
    each image's acquisition physics (SNR, background, autofluorescence, defocus, pixel size) is drawn
    from `fmlib.domain.PhysicsRanges` shrunk to that strength (`fmlib.domain.randomized_dataset`),
    and `snr` is unused."""

    structure: str
    n_train: int
    n_val: int
    size: int = 128
    snr: float = 8.0
    seed: int = 0
    randomization: float = 0.0

    def make(self):
        """The (training, validation) synthesis Datasets."""
        seeds = (self.seed, self.seed + VALIDATION_SEED_OFFSET)
        if self.randomization > 0:
            ranges = PhysicsRanges().scaled(self.randomization)
            return tuple(randomized_dataset(self.structure, n, self.size, seed=s, ranges=ranges)
                         for n, s in zip((self.n_train, self.n_val), seeds))
        return tuple(make_dataset(self.structure, n, self.size, snr=self.snr, seed=s)
                     for n, s in zip((self.n_train, self.n_val), seeds))


def training_pool(data: DataSpec, cache: str | Path | None = None) -> tuple[tuple, tuple]:
    """The (images, masks) of the training and of the validation set of `data`, simulated once and
    cached under ``<cache>/datasets/``: all that a training reads of them."""
    key = content_key(dataclasses.asdict(data), ["checkpoints.py"])
    path = Path(cache or cache_dir()) / "datasets" / f"{data.structure}-{key}.npz"
    if not path.exists():
        train_set, val_set = data.make()
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {"train_images": train_set.images, "train_masks": train_set.masks, "val_images": val_set.images,
                  "val_masks": val_set.masks}
        write_atomic(path, lambda scratch: _savez(scratch, arrays))
    with np.load(path) as stored:
        return ((stored["train_images"], stored["train_masks"]), (stored["val_images"], stored["val_masks"]))


def _savez(path: Path, arrays: dict) -> None:
    with open(path, "wb") as file:  # a file object: np.savez would append ".npz" to a path
        np.savez(file, **arrays)


def training_key(model_name: str, width: float, data: DataSpec, config: TrainConfig) -> str:
    """The cache key of a training: its inputs and the code it runs (this module and its imports)."""
    payload = {"model": model_name, "width": width, "data": dataclasses.asdict(data), "config": config.to_dict()}
    return content_key(payload, ["checkpoints.py"])


def checkpoint_folder(model_name: str, width: float, data: DataSpec, config: TrainConfig,
                      cache: str | Path | None = None) -> Path:
    """Where the training of these arguments is (or will be) stored; its ``done.json`` marks it finished."""
    return _folder(model_name, data, training_key(model_name, width, data, config), cache)


def _folder(model_name: str, data: DataSpec, key: str, cache: str | Path | None) -> Path:
    return Path(cache or cache_dir()) / "checkpoints" / f"{model_name}-{data.structure}-{key}"


def train(model_name: str, data: DataSpec, config: TrainConfig = TrainConfig(), *, width: float = 1.0,
          cache: str | Path | None = None, device: str = "auto", progress: bool = True) -> TrainedModel:
    """Train `model_name` on synthetic `data`, or return the cached result of the same training.

    The cache key (`training_key`) hashes the model, its width, the data specification, the
    configuration and the code; an interrupted training resumes from its last epoch.
    """
    key = training_key(model_name, width, data, config)
    folder = _folder(model_name, data, key, cache)
    if (folder / "done.json").exists():
        return load_trained(model_name, data, config, width=width, cache=cache, device=device)
    train_set, val_set = training_pool(data, cache)
    torch.manual_seed(config.seed)
    model = create_model(model_name, width=width)
    result = fit(model, train_set, val_set, config, checkpoint_dir=folder, device=device, progress=progress,
                 description=f"{model_name} on {data.structure} ({config.defense})")
    result.key = key
    result.history.to_csv(folder / "history.csv", index=False)
    (folder / "done.json").write_text(json.dumps({
        "model": model_name, "width": width, "data": dataclasses.asdict(data), "config": config.to_dict(),
        "best_step": result.best_step, "best_val_iou": result.best_val_iou, "steps": result.steps,
        "converged": result.converged, "train_time_s": result.train_time_s, "key": result.key}, indent=2))
    (folder / "last.pt").unlink(missing_ok=True)  # the best weights are all a finished model needs
    return result


def load_trained(model_name: str, data: DataSpec, config: TrainConfig = TrainConfig(), *, width: float = 1.0,
                 cache: str | Path | None = None, device: str = "auto") -> TrainedModel:
    """The cached result of `train` with the same arguments; raises FileNotFoundError if not trained."""
    folder = checkpoint_folder(model_name, width, data, config, cache)
    done = folder / "done.json"
    if not done.exists():
        raise FileNotFoundError(f"no trained {model_name!r} for these data and settings in {folder}; "
                                "call fmlib.checkpoints.train(...) first")
    info = json.loads(done.read_text())
    model = create_model(model_name, width=width)
    model.load_state_dict(torch.load(folder / "best.pt", map_location="cpu", weights_only=True))
    model.to(resolve_device(device)).eval()
    return TrainedModel(model, pd.read_csv(folder / "history.csv"), info["best_step"], info["best_val_iou"], config,
                        info["train_time_s"], info["key"], steps=info["steps"], converged=info["converged"])
