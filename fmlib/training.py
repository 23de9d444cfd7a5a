"""Training: `fit` a segmentation model, with the paper's two defenses, checkpoints and a cache.

- Losses and the two defenses (noise augmentation, adversarial training) are `fmlib.objectives`.
- Training counts optimizer steps on batches drawn from a pool of simulated images, each with a
  random flip and 90-degree rotation, and validates every `TrainConfig.eval_every` steps. It runs
  until the plateau rule (`fmlib.plateau`) holds, which is evidence that more training would not
  help at a learning rate that still trains, or until the cap `TrainConfig.max_steps`.
- Optimizer and schedule from `TrainConfig`: the default is AdamW with reduce-on-plateau (and a
  linear warm-up where set, for transformers); ``PRESETS["paper"]`` is the paper's SGD (lr 0.01,
  momentum 0.9, weight decay 1e-8, lr halved every 100 epochs).
- The checkpoint with the best validation IoU is kept (validation IoU can dip while BatchNorm
  statistics settle). Each validation writes a resumable checkpoint.

Cached training by content key (`train`, `load_trained`) lives in `fmlib.checkpoints`, prediction in
`fmlib.inference`.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ._checks import check_choice, check_int, check_real
from .cache import write_atomic
from .inference import autocast, predict_scores, resolve_device
from .objectives import defended_loss
from .plateau import SCHEDULES, PlateauRule, learning_rate

OPTIMIZERS = ("adamw", "sgd")
LOSSES = ("bce", "bce+dice")
DEFENSES = ("none", "noise", "adversarial")
ADV_METHODS = ("pgd", "fgsm_rs")
#: The study's training regimes: ``standard``, the paper's protocol (one clean acquisition at SNR 8);
#: ``randomized``, acquisitions whose physics are drawn per image (`fmlib.domain`, this project's
#: extension); and the paper's two defenses on the standard data, Gaussian-noise augmentation and
#: adversarial training. The data of each regime: `fmlib.grid.data_spec`.
REGIMES = ("standard", "randomized", "noise", "adversarial")


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Every field is validated; `PRESETS` holds named configurations.

    Training counts optimizer steps, not epochs: the training set is a pool drawn from the
    simulator, and a run validates every `eval_every` steps until the plateau rule
    (`fmlib.plateau.PlateauRule`: `patience`, `min_delta`, `lr_factor`, `max_reductions`,
    `min_lr_ratio`) says it has converged, or until `max_steps`, the cap."""

    max_steps: int = 1000
    eval_every: int = 50
    batch_size: int = 8
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    schedule: str = "plateau"
    warmup_steps: int = 0
    step_every: int = 20_000
    step_gamma: float = 0.5
    patience: int = 4
    min_delta: float = 0.005   # about the noise of a validation IoU on ~50 images
    lr_factor: float = 0.5
    max_reductions: int = 2
    min_lr_ratio: float = 0.05
    loss: str = "bce"
    augment: bool = True
    defense: str = "none"
    noise_levels: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7)   # grey levels (/255)
    adv_eps: float = 8 / 255
    adv_step: float = 2 / 255
    adv_steps: int = 10
    adv_method: str = "pgd"
    mixed_precision: bool = False
    seed: int = 0

    def __post_init__(self):
        check_int("max_steps", self.max_steps, low=1)
        check_int("eval_every", self.eval_every, low=1)
        check_int("batch_size", self.batch_size, low=1)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_real("lr", self.lr, low=0.0, low_inclusive=False, high=10.0)
        check_real("weight_decay", self.weight_decay, low=0.0)
        check_real("momentum", self.momentum, low=0.0, high=1.0)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_int("warmup_steps", self.warmup_steps, low=0)
        check_int("step_every", self.step_every, low=1)
        check_real("step_gamma", self.step_gamma, low=0.0, low_inclusive=False, high=1.0)
        _ = self.rule  # validates the plateau settings, naming the field
        check_choice("loss", self.loss, LOSSES)
        check_choice("defense", self.defense, DEFENSES)
        for i, level in enumerate(self.noise_levels):
            check_real(f"noise_levels[{i}]", level, low=0.0, high=255.0)
        check_real("adv_eps", self.adv_eps, low=0.0, high=1.0)
        check_real("adv_step", self.adv_step, low=0.0, high=1.0)
        check_int("adv_steps", self.adv_steps, low=1)
        check_choice("adv_method", self.adv_method, ADV_METHODS)
        if not isinstance(self.mixed_precision, bool):
            raise ValueError(f"mixed_precision: expected True or False, got {self.mixed_precision!r}")
        if not isinstance(self.augment, bool):
            raise ValueError(f"augment: expected True or False, got {self.augment!r}")
        check_int("seed", self.seed, low=0)

    @property
    def rule(self) -> PlateauRule:
        """The plateau rule of this configuration."""
        return PlateauRule(patience=self.patience, min_delta=self.min_delta, factor=self.lr_factor,
                           max_reductions=self.max_reductions, min_lr_ratio=self.min_lr_ratio)

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


PRESETS: dict[str, TrainConfig] = {
    # The paper's SGD: lr 0.01 halved every 100 epochs of 800 images in batches of 4 (20,000 steps).
    "paper": TrainConfig(max_steps=100_000, eval_every=1000, batch_size=4, optimizer="sgd", lr=0.01, momentum=0.9,
                         weight_decay=1e-8, schedule="step", step_every=20_000, step_gamma=0.5),
    "cpu": TrainConfig(),
}


@dataclass
class TrainedModel:
    """A trained model (best validation checkpoint loaded) and how it got there."""

    model: torch.nn.Module
    history: object          # pandas DataFrame: step, train_loss, val_iou, val_dice, lr, seconds
    best_step: int
    best_val_iou: float
    config: TrainConfig
    train_time_s: float
    key: str | None = None
    steps: int = 0           # optimizer steps run
    converged: bool = False  # the plateau rule held before the step cap


def _as_tensors(data) -> tuple[torch.Tensor, torch.Tensor]:
    images, masks = (data.images, data.masks) if hasattr(data, "images") else data
    x = torch.as_tensor(np.asarray(images, dtype=np.float32))
    y = torch.as_tensor(np.asarray(masks, dtype=np.float32))
    if x.ndim == 3:
        x, y = x[:, None], y[:, None]
    if x.ndim != 4 or x.shape != y.shape:
        raise ValueError(f"train_data: expected images and masks of shape (N, H, W), got {tuple(x.shape)} and "
                         f"{tuple(y.shape)}")
    return x, y


def _augment(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator):
    """A random flip and 90-degree rotation of each image, the same for its mask (the paper used
    none): the eight symmetries of the square, which a microscope image does not prefer."""
    k, flip = torch.randint(0, 4, (len(x),), generator=generator), torch.randint(0, 2, (len(x),), generator=generator)
    xs, ys = [], []
    for xi, yi, ki, fi in zip(x, y, k.tolist(), flip.tolist()):
        xi, yi = torch.rot90(xi, ki, (-2, -1)), torch.rot90(yi, ki, (-2, -1))
        xs.append(xi.flip(-1) if fi else xi)
        ys.append(yi.flip(-1) if fi else yi)
    return torch.stack(xs), torch.stack(ys)


def _optimizer(model, config: TrainConfig):
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay)
    return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def _save_atomic(obj, path: Path) -> None:
    write_atomic(path, lambda scratch: torch.save(obj, scratch))


def _batches(n: int, batch_size: int, generator: torch.Generator):
    """Endless batches of indices: a fresh permutation of the pool at every pass."""
    while True:
        order = torch.randperm(n, generator=generator)
        for b in range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size):
            yield order[b:b + batch_size]


def fit(model: torch.nn.Module, train_data, val_data, config: TrainConfig = TrainConfig(), *,
        checkpoint_dir: str | Path | None = None, device: str = "auto", progress: bool = True,
        description: str = "training") -> TrainedModel:
    """Train `model` until its validation IoU reaches a plateau, and keep its best weights.

    Every `config.eval_every` optimizer steps the model is validated; the plateau rule
    (`fmlib.plateau.PlateauRule`) then lowers the learning rate, or ends the run as converged. A run
    that reaches `config.max_steps` first ends as not converged.

    Parameters
    ----------
    model : torch.nn.Module
        A `fmlib.models.Segmenter` (or any module mapping (N, 1, H, W) to logits).
    train_data, val_data : Dataset or (images, masks)
        Images (N, H, W) in [0, 1] and masks (N, H, W) in {0, 1}. Batches are drawn from
        `train_data` as a pool (a fresh permutation at each pass, with a random flip and rotation
        of each image where `config.augment`).
    config : TrainConfig
    checkpoint_dir : path, optional
        Where ``last.pt`` (resumable state, every validation) and ``best.pt`` go. An interrupted run
        with the same configuration resumes from ``last.pt``; a run with a higher `max_steps` (the
        same configuration otherwise) continues from it.
    device : "auto", "cpu", "cuda", ...
    progress : bool
        tqdm bar over steps with the live loss and validation IoU.

    Returns
    -------
    TrainedModel
        With the history (one row per validation: step, train_loss, val_iou, val_dice, lr,
        seconds), ``steps`` run, ``converged`` and the best weights loaded.

    Examples
    --------
    >>> from fmlib.models import create_model
    >>> from fmlib.synthesis import make_dataset
    >>> data = make_dataset("nuclei", 8, 64, seed=0)
    >>> result = fit(create_model("sim_unet"), data, data, TrainConfig(max_steps=20, eval_every=10), progress=False)
    >>> list(result.history.step)
    [10, 20]
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config: expected a TrainConfig, got {type(config).__name__}")
    device = resolve_device(device)
    x_train, y_train = _as_tensors(train_data)
    val_data = _as_tensors(val_data)  # converted once, not at every validation
    torch.manual_seed(config.seed)
    model.to(device)
    optimizer = _optimizer(model, config)
    generator = torch.Generator().manual_seed(config.seed)
    rule = config.rule
    state = {"history": [], "best_iou": -1.0, "best_step": 0, "step": 0, "elapsed": 0.0, "reductions": 0,
             "since": 0, "verdict": "go on"}
    best_state = copy.deepcopy(model.state_dict())
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        last = folder / "last.pt"
        if last.exists():
            saved = torch.load(last, map_location=device, weights_only=True)
            old = TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved["config"].items()})
            if old.replace(max_steps=config.max_steps) == config and saved["state"]["step"] <= config.max_steps:
                model.load_state_dict(saved["model"])
                optimizer.load_state_dict(saved["optimizer"])
                generator.set_state(saved["generator"])
                torch.set_rng_state(saved["torch_rng"])
                state, best_state = saved["state"], saved["best_model"]
    # The batch order has a generator of its own, so that a resumed run replays it to the same point.
    batches = _batches(len(x_train), config.batch_size, torch.Generator().manual_seed(config.seed + 1))
    for _ in range(state["step"]):
        next(batches)
    bar = tqdm(total=config.max_steps, initial=state["step"], desc=description, unit="step", disable=not progress,
               leave=False)
    while state["step"] < config.max_steps and state["verdict"] != "converged":
        start, total, seen = time.perf_counter(), 0.0, 0
        model.train()
        for _ in range(min(config.eval_every, config.max_steps - state["step"])):
            lr = learning_rate(state["step"], config.lr, schedule=config.schedule, max_steps=config.max_steps,
                               warmup_steps=config.warmup_steps, reductions=state["reductions"],
                               factor=config.lr_factor, step_every=config.step_every, step_gamma=config.step_gamma)
            for group in optimizer.param_groups:
                group["lr"] = lr
            idx = next(batches)
            xb, yb = x_train[idx], y_train[idx]
            if config.augment:
                xb, yb = _augment(xb, yb, generator)
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            with autocast(device, config.mixed_precision):
                loss = defended_loss(model, xb, yb, config, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, seen = total + float(loss.detach()) * len(idx), seen + len(idx)
            state["step"] += 1
            bar.update(1)
        per_image = predict_scores(model, *val_data, mixed_precision=config.mixed_precision)
        iou, dice = float(per_image["iou"].mean()), float(per_image["dice"].mean())
        seconds = time.perf_counter() - start
        state["elapsed"] += seconds
        state["history"].append({"step": state["step"], "train_loss": total / seen, "val_iou": iou, "val_dice": dice,
                                 "lr": lr, "seconds": seconds})
        if iou > state["best_iou"]:
            state["best_iou"], state["best_step"] = iou, state["step"]
            best_state = copy.deepcopy(model.state_dict())
            if folder is not None:
                _save_atomic(best_state, folder / "best.pt")
        scores = [h["val_iou"] for h in state["history"]]
        lrs = [h["lr"] for h in state["history"]]
        state["verdict"], state["reductions"], state["since"] = rule.step(
            scores, lrs, state["reductions"], state["since"], config.lr, can_reduce=config.schedule == "plateau")
        bar.set_postfix(loss=f"{total / seen:.4f}", val_iou=f"{iou:.3f}", best=f"{state['best_iou']:.3f}",
                        lr=f"{lr:.1e}")
        if folder is not None:
            _save_atomic({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                          "generator": generator.get_state(), "torch_rng": torch.get_rng_state(), "state": state,
                          "best_model": best_state, "config": config.to_dict()}, folder / "last.pt")
    bar.close()
    model.load_state_dict(best_state)
    model.eval()
    return TrainedModel(model, pd.DataFrame(state["history"]), state["best_step"], state["best_iou"], config,
                        state["elapsed"], steps=state["step"], converged=state["verdict"] == "converged")
