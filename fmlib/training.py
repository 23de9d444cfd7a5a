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
- `train` caches finished models by a hash of (model, data, training configuration, code);
  `load_trained` returns a cached model without training.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from ._checks import check_choice, check_int, check_real

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "step", "constant")
LOSSES = ("bce", "bce+dice")
DEFENSES = ("none", "noise", "adversarial")
ADV_METHODS = ("pgd", "fgsm_rs")


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

    def replace(self, **changes) -> "TrainConfig":
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
    history: "object"          # pandas DataFrame: epoch, train_loss, val_iou, val_dice, lr, seconds
    best_epoch: int
    best_val_iou: float
    config: TrainConfig
    train_time_s: float
    key: str | None = None


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


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


def autocast(device: torch.device, enabled: bool):
    """bfloat16 autocast on CUDA when `enabled`; a no-op elsewhere, so CPU runs stay float32 and
    reproducible bit for bit. bfloat16 keeps float32's range: no gradient scaler is needed."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=bool(enabled) and device.type == "cuda")


@torch.no_grad()
def predict(model: torch.nn.Module, images, batch_size: int = 16, device="auto", *,
            mixed_precision: bool = False) -> np.ndarray:
    """Binary predictions (sigmoid > 0.5) of `model` for images (N, H, W) in [0, 1]: bool (N, H, W).

    `mixed_precision` runs the forward pass in bfloat16 on CUDA (ignored on the CPU)."""
    device = resolve_device(device)
    x = torch.as_tensor(np.asarray(images, dtype=np.float32))
    if x.ndim == 3:
        x = x[:, None]
    was_training = model.training
    model.eval()
    with autocast(device, mixed_precision):
        out = torch.cat([model(x[i:i + batch_size].to(device)).cpu() > 0 for i in range(0, len(x), batch_size)])
    model.train(was_training)
    return out[:, 0].numpy()


@torch.no_grad()
def evaluate(model: torch.nn.Module, data, batch_size: int = 16, device="auto", *,
             mixed_precision: bool = False) -> dict[str, float]:
    """Mean per-image IoU and Dice (threshold 0.5 on the sigmoid) of `model` on `data`."""
    from .metrics import segmentation_scores

    x, y = _as_tensors(data)
    scores = segmentation_scores(predict(model, x, batch_size, device, mixed_precision=mixed_precision),
                                 y[:, 0].numpy() > 0.5)
    return {"iou": float(scores["iou"].mean()), "dice": float(scores["dice"].mean())}


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
        from .attacks import PGD

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
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


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
    import pandas as pd
    from tqdm.auto import tqdm

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
        scores = evaluate(model, val_data, device=device, mixed_precision=config.mixed_precision)
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


# ----------------------------------------------------------------------------------------------
# Cached training
# ----------------------------------------------------------------------------------------------

def code_version() -> str:
    """Hash of the code a trained model depends on: models, training, attacks and synthesis."""
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    files = [package / "training.py", package / "attacks.py", *sorted((package / "models").glob("*.py")),
             *sorted((package / "synthesis").glob("*.py"))]
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cache_dir() -> Path:
    """``$FMROBUST_CACHE``, else ``.cache/`` of the study, else ``~/.cache/fmrobust``."""
    env = os.environ.get("FMROBUST_CACHE")
    if env:
        return Path(env)
    from .study import StudyError, find_root

    try:
        return find_root() / ".cache"
    except StudyError:
        return Path.home() / ".cache" / "fmrobust"


@dataclass(frozen=True)
class DataSpec:
    """The synthetic training and validation data of a model (validation scenes differ from training)."""

    structure: str
    n_train: int
    n_val: int
    size: int = 128
    snr: float = 8.0
    seed: int = 0

    def make(self):
        from .synthesis import make_dataset

        train = make_dataset(self.structure, self.n_train, self.size, snr=self.snr, seed=self.seed)
        val = make_dataset(self.structure, self.n_val, self.size, snr=self.snr, seed=self.seed + 100_000)
        return train, val


def training_key(model_name: str, width: float, data: DataSpec, config: TrainConfig) -> str:
    payload = {"model": model_name, "width": width, "data": dataclasses.asdict(data), "config": config.to_dict(),
               "code": code_version()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def _folder(model_name, width, data, config, root) -> tuple[str, Path]:
    key = training_key(model_name, width, data, config)
    return key, Path(root or cache_dir()) / "checkpoints" / f"{model_name}-{data.structure}-{key}"


def train(model_name: str, data: DataSpec, config: TrainConfig = TrainConfig(), *, width: float = 1.0,
          cache: str | Path | None = None, device: str = "auto", progress: bool = True) -> TrainedModel:
    """Train `model_name` on synthetic `data`, or return the cached result of the same training.

    The cache key hashes the model, its width, the data specification, the configuration and the
    code version (`code_version`); an interrupted training resumes from its last epoch.
    """
    from .models import create_model

    key, folder = _folder(model_name, width, data, config, cache)
    if (folder / "done.json").exists():
        return load_trained(model_name, data, config, width=width, cache=cache, device=device)
    train_set, val_set = data.make()
    torch.manual_seed(config.seed)
    model = create_model(model_name, width=width)
    result = fit(model, train_set, val_set, config, checkpoint_dir=folder, device=device, progress=progress,
                 description=f"{model_name} on {data.structure} ({config.defense})")
    result.key = key
    result.history.to_csv(folder / "history.csv", index=False)
    (folder / "done.json").write_text(json.dumps({
        "model": model_name, "width": width, "data": dataclasses.asdict(data), "config": config.to_dict(),
        "best_epoch": result.best_epoch, "best_val_iou": result.best_val_iou, "train_time_s": result.train_time_s,
        "key": key, "code": code_version()}, indent=2))
    (folder / "last.pt").unlink(missing_ok=True)  # the best weights are all a finished model needs
    return result


def load_trained(model_name: str, data: DataSpec, config: TrainConfig = TrainConfig(), *, width: float = 1.0,
                 cache: str | Path | None = None, device: str = "auto") -> TrainedModel:
    """The cached result of `train` with the same arguments; raises FileNotFoundError if not trained."""
    import pandas as pd

    from .models import create_model

    key, folder = _folder(model_name, width, data, config, cache)
    done = folder / "done.json"
    if not done.exists():
        raise FileNotFoundError(f"no trained {model_name!r} for these data and settings in {folder}; "
                                "call fmlib.training.train(...) first")
    info = json.loads(done.read_text())
    model = create_model(model_name, width=width)
    model.load_state_dict(torch.load(folder / "best.pt", map_location="cpu", weights_only=True))
    model.to(resolve_device(device)).eval()
    return TrainedModel(model, pd.read_csv(folder / "history.csv"), info["best_epoch"], info["best_val_iou"], config,
                        info["train_time_s"], key)
