"""Training: `fit` a segmentation model, with the paper's two defenses, checkpoints and a cache.

- Loss: BCE with logits (optionally plus Dice), plus the auxiliary losses of architectures that
  have them (PSPNet, ICNet), weighted as in the paper's code.
- Optimizer and schedule from `TrainConfig`: ``PRESETS["paper"]`` is the paper's SGD (lr 0.01,
  momentum 0.9, weight decay 1e-8, lr halved every 100 epochs); the default is AdamW with a cosine
  schedule, which converges in the few epochs a CPU affords.
- Defenses: Gaussian-noise augmentation (sigma drawn from 0-7 grey levels per image; loss = mean of
  clean and noisy loss) and adversarial training (PGD, eps 8/255, step 2/255, k iterations, in
  image space; or FGSM with a random start, "fast adversarial training"; loss = mean of clean and
  adversarial loss). The attacks come from `fmlib.attacks`.
- The checkpoint with the best validation IoU is kept (validation IoU can dip for an epoch while
  BatchNorm statistics settle). Each epoch writes a resumable checkpoint.

Cached training by content key (`train`, `load_trained`) lives in `fmlib.checkpoints`, prediction in
`fmlib.inference`.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from ._checks import check_choice, check_int, check_real
from .attacks.gradient import PGD  # the module itself: the ensemble is no input of a training
from .cache import write_atomic
from .inference import autocast, predict_scores, resolve_device

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "step", "constant")
LOSSES = ("bce", "bce+dice")
DEFENSES = ("none", "noise", "adversarial")
ADV_METHODS = ("pgd", "fgsm_rs")
#: The study's training regimes, each a defense: standard training (none), Gaussian-noise
#: augmentation and adversarial training.
REGIMES = ("standard", "noise", "adversarial")


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Every field is validated; `PRESETS` holds named configurations."""

    epochs: int = 20
    batch_size: int = 8
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    schedule: str = "cosine"
    step_epochs: int = 100
    step_gamma: float = 0.5
    loss: str = "bce"
    augment: bool = False
    defense: str = "none"
    noise_levels: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7)   # grey levels (/255)
    adv_eps: float = 8 / 255
    adv_step: float = 2 / 255
    adv_steps: int = 10
    adv_method: str = "pgd"
    mixed_precision: bool = False
    seed: int = 0

    def __post_init__(self):
        check_int("epochs", self.epochs, low=1)
        check_int("batch_size", self.batch_size, low=1)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_real("lr", self.lr, low=0.0, low_inclusive=False, high=10.0)
        check_real("weight_decay", self.weight_decay, low=0.0)
        check_real("momentum", self.momentum, low=0.0, high=1.0)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_int("step_epochs", self.step_epochs, low=1)
        check_real("step_gamma", self.step_gamma, low=0.0, low_inclusive=False, high=1.0)
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
        check_int("seed", self.seed, low=0)

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


PRESETS: dict[str, TrainConfig] = {
    "paper": TrainConfig(epochs=500, batch_size=4, optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=1e-8,
                         schedule="step", step_epochs=100, step_gamma=0.5),
    "cpu": TrainConfig(),
}


@dataclass
class TrainedModel:
    """A trained model (best validation checkpoint loaded) and how it got there."""

    model: torch.nn.Module
    history: object          # pandas DataFrame: epoch, train_loss, val_iou, val_dice, lr, seconds
    best_epoch: int
    best_val_iou: float
    config: TrainConfig
    train_time_s: float
    key: str | None = None


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
    """Random flips and 90-degree rotations, the same for image and mask (the paper used none)."""
    k, flip = torch.randint(0, 4, (2,), generator=generator).tolist()
    x, y = torch.rot90(x, k, (-2, -1)), torch.rot90(y, k, (-2, -1))
    if flip % 2:
        x, y = x.flip(-1), y.flip(-1)
    return x, y


def segmentation_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, loss: str = "bce") -> torch.Tensor:
    """BCE (plus Dice) of the main output plus the weighted auxiliary losses."""
    logits, aux = model(x, return_aux=True) if getattr(model, "aux_weights", ()) else (model(x), [])

    def one(out):
        value = F.binary_cross_entropy_with_logits(out, y)
        if loss == "bce+dice":
            p = torch.sigmoid(out)
            inter = (p * y).flatten(1).sum(1)
            value = value + (1 - (2 * inter + 1) / (p.flatten(1).sum(1) + y.flatten(1).sum(1) + 1)).mean()
        return value

    total = one(logits)
    for weight, out in zip(model.aux_weights if aux else (), aux):
        total = total + weight * one(out)
    return total


def _defended_loss(model, x, y, config: TrainConfig, generator: torch.Generator) -> torch.Tensor:
    clean = segmentation_loss(model, x, y, config.loss)
    if config.defense == "none":
        return clean
    if config.defense == "noise":
        levels = torch.tensor(config.noise_levels, dtype=x.dtype)
        sigma = levels[torch.randint(0, len(levels), (len(x),), generator=generator)].view(-1, 1, 1, 1) / 255
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        other = (x + sigma.to(x.device) * noise.to(x.device)).clamp(0, 1)
    else:
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        if config.adv_method == "pgd":
            attack = PGD(model, config.adv_eps, step_size=config.adv_step, steps=config.adv_steps, seed=seed)
        else:  # FGSM from a random start (Wong et al. 2020): one step of 1.25 eps
            attack = PGD(model, config.adv_eps, step_size=1.25 * config.adv_eps, steps=1, seed=seed)
        # The attack's input gradients stay float32 under mixed precision: bfloat16 would quantize
        # the signs and steps that define the perturbation.
        with torch.autocast(x.device.type, enabled=False):
            other = attack(x, y)
    return 0.5 * (clean + segmentation_loss(model, other, y, config.loss))


def _optimizer(model, config: TrainConfig):
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay)
    return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def _schedule(optimizer, config: TrainConfig):
    if config.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, config.step_epochs, config.step_gamma)
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)


def _save_atomic(obj, path: Path) -> None:
    write_atomic(path, lambda scratch: torch.save(obj, scratch))


def fit(model: torch.nn.Module, train_data, val_data, config: TrainConfig = TrainConfig(), *,
        checkpoint_dir: str | Path | None = None, device: str = "auto", progress: bool = True,
        description: str = "training") -> TrainedModel:
    """Train `model` on `train_data`, keep the weights with the best validation IoU.

    Parameters
    ----------
    model : torch.nn.Module
        A `fmlib.models.Segmenter` (or any module mapping (N, 1, H, W) to logits).
    train_data, val_data : Dataset or (images, masks)
        Images (N, H, W) in [0, 1] and masks (N, H, W) in {0, 1}.
    config : TrainConfig
    checkpoint_dir : path, optional
        Where ``last.pt`` (resumable state, every epoch) and ``best.pt`` go. An interrupted run with
        the same configuration resumes from ``last.pt``; a longer run (more `epochs`, same schedule
        otherwise) continues from it.
    device : "auto", "cpu", "cuda", ...
    progress : bool
        tqdm bar over epochs with the live loss and validation IoU.
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config: expected a TrainConfig, got {type(config).__name__}")
    device = resolve_device(device)
    x_train, y_train = _as_tensors(train_data)
    val_data = _as_tensors(val_data)  # converted once, not every epoch
    torch.manual_seed(config.seed)
    model.to(device)
    optimizer = _optimizer(model, config)
    scheduler = _schedule(optimizer, config)
    generator = torch.Generator().manual_seed(config.seed)
    history, best_iou, best_epoch, start_epoch, elapsed = [], -1.0, -1, 0, 0.0
    best_state = copy.deepcopy(model.state_dict())
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        last = folder / "last.pt"
        if last.exists():
            state = torch.load(last, map_location=device, weights_only=True)
            saved = TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in state["config"].items()})
            if saved.replace(epochs=config.epochs) == config and state["epoch"] <= config.epochs:
                model.load_state_dict(state["model"])
                optimizer.load_state_dict(state["optimizer"])
                scheduler.load_state_dict(state["scheduler"])
                generator.set_state(state["generator"])
                torch.set_rng_state(state["torch_rng"])
                history, best_iou, best_epoch = state["history"], state["best_iou"], state["best_epoch"]
                best_state, start_epoch, elapsed = state["best_model"], state["epoch"], state["elapsed"]
    n = len(x_train)
    steps_per_epoch = math.ceil(n / config.batch_size)
    bar = tqdm(range(start_epoch, config.epochs), desc=description, unit="epoch", disable=not progress,
               initial=start_epoch, total=config.epochs, leave=False)
    for epoch in bar:
        start = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=generator)
        total = 0.0
        for b in range(steps_per_epoch):
            idx = order[b * config.batch_size:(b + 1) * config.batch_size]
            xb, yb = x_train[idx], y_train[idx]
            if config.augment:
                xb, yb = _augment(xb, yb, generator)
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            with autocast(device, config.mixed_precision):
                loss = _defended_loss(model, xb, yb, config, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
        scheduler.step()
        per_image = predict_scores(model, *val_data, mixed_precision=config.mixed_precision)
        scores = {"iou": float(per_image["iou"].mean()), "dice": float(per_image["dice"].mean())}
        seconds = time.perf_counter() - start
        elapsed += seconds
        history.append({"epoch": epoch + 1, "train_loss": total / n, "val_iou": scores["iou"],
                        "val_dice": scores["dice"], "lr": optimizer.param_groups[0]["lr"], "seconds": seconds})
        if scores["iou"] > best_iou:
            best_iou, best_epoch = scores["iou"], epoch + 1
            best_state = copy.deepcopy(model.state_dict())
            if folder is not None:
                _save_atomic(best_state, folder / "best.pt")
        bar.set_postfix(loss=f"{total / n:.4f}", val_iou=f"{scores['iou']:.3f}", best=f"{best_iou:.3f}")
        if folder is not None:
            _save_atomic({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                          "scheduler": scheduler.state_dict(), "generator": generator.get_state(),
                          "torch_rng": torch.get_rng_state(), "history": history, "best_iou": best_iou,
                          "best_epoch": best_epoch, "best_model": best_state, "epoch": epoch + 1,
                          "elapsed": elapsed, "config": config.to_dict()}, folder / "last.pt")
    model.load_state_dict(best_state)
    model.eval()
    return TrainedModel(model, pd.DataFrame(history), best_epoch, best_iou, config, elapsed)
