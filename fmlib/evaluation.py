"""Evaluation of a trained model: clean scores, corruptions and attacks, as tidy tables.

Each function takes a model and a test set (a synthesis `Dataset`, or real `fmlib.realdata.Tiles`)
and returns one row per image (and corruption and severity, or attack and budget). Study
configurations (`fmlib.profiles.Config`) supply the corruptions, attacks, budgets and seeds; the
grid (`fmlib.grid`) caches these tables for every trained model.
"""

from __future__ import annotations

import pandas as pd

from .attacks import evaluate_attack
from .corruptions import CORRUPTIONS, corrupt
from .inference import predict
from .metrics import adversarial_score, robustness_ratio, segmentation_scores
from .synthesis import Dataset

#: The attacks that run ``cfg.attack_steps`` iterations (the others fix their own: FGSM one step,
#: I-FGSM the paper's count).
ITERATIVE_ATTACKS = ("pgd", "segpgd", "cospgd")


def prediction_scores(predictions, dataset) -> pd.DataFrame:
    """Per-image IoU, Dice, precision and recall of binary `predictions` (N, H, W) against the masks
    of `dataset`: a synthesis `Dataset`, or real `fmlib.realdata.Tiles`, whose names then fill a
    ``tile`` column."""
    names = getattr(dataset, "names", None)
    scores = segmentation_scores(predictions, dataset.masks > 0)
    tiles = {"tile": names} if names is not None else {}
    return pd.DataFrame({"image": range(len(dataset.masks)), **tiles, **scores})


def clean_scores(model, dataset, *, mixed_precision: bool = False) -> pd.DataFrame:
    """Per-image IoU, Dice, precision and recall of `model` on the clean images of `dataset`
    (`prediction_scores`)."""
    return prediction_scores(predict(model, dataset.images, mixed_precision=mixed_precision), dataset)


def attack_table(cfg, model, dataset, *, attacks: list[str] | None = None, noise_baseline: bool = True,
                 progress: bool = False) -> pd.DataFrame:
    """Every attack of `cfg` (or `attacks`), plus the random-sign noise baseline, at every budget of
    `cfg.eps_255`, on the first `cfg.n_attack_images` images of `dataset`: one row per image, attack
    and budget.

    PGD, SegPGD and CosPGD run `cfg.attack_steps` iterations with the paper's step of 2/255; FGSM
    is one step; I-FGSM uses the paper's step (1/255) and iteration count.
    """
    images, masks = dataset.images[:cfg.n_attack_images], dataset.masks[:cfg.n_attack_images]
    eps = [e / 255 for e in cfg.eps_255]
    tables = []
    for name in [*(cfg.attacks if attacks is None else attacks), *(["noise"] if noise_baseline else [])]:
        kwargs = {"steps": cfg.attack_steps} if name in ITERATIVE_ATTACKS else {}
        tables.append(evaluate_attack(model, images, masks, name, eps, seed=cfg.seed, progress=progress, **kwargs))
    return pd.concat(tables, ignore_index=True)


def corruption_table(cfg, model, dataset) -> pd.DataFrame:
    """IoU and Dice of `model` on `dataset` under every corruption and severity of `cfg`, per image,
    with the clean IoU beside them. `dataset` is a synthesis `Dataset` (physical corruptions then act
    on its raw counts) or anything with ``images`` and ``masks`` (real tiles: the reference
    acquisition)."""
    counts = dataset if isinstance(dataset, Dataset) else None
    amp = bool(cfg.get("mixed_precision", False))  # bfloat16 inference on CUDA (the paper profile)

    truth = dataset.masks > 0
    clean = segmentation_scores(predict(model, dataset.images, mixed_precision=amp), truth)
    frames = []
    for name in cfg.corruptions:
        for severity in range(1, 6):
            images = corrupt(dataset.images, name, severity, rng=cfg.seed, dataset=counts)
            scores = segmentation_scores(predict(model, images, mixed_precision=amp), truth)
            frames.append(pd.DataFrame({"image": range(len(dataset.images)), "corruption": name,
                                        "family": CORRUPTIONS[name].family, "severity": severity,
                                        "iou": scores["iou"], "dice": scores["dice"], "clean_iou": clean["iou"]}))
    return pd.concat(frames, ignore_index=True)


def with_robustness(corruption: pd.DataFrame) -> pd.DataFrame:
    """`corruption` (a `corruption_table`) with a ``robustness`` column: the paper's per-image
    corrupted/clean IoU ratio (`fmlib.metrics.robustness_ratio`)."""
    return corruption.assign(robustness=robustness_ratio(corruption.iou, corruption.clean_iou))


def robustness_summary(corruption: pd.DataFrame, adversarial: pd.DataFrame, attack: str = "pgd",
                       by: tuple[str, ...] = ("structure", "model", "regime")) -> pd.DataFrame:
    """Per model (and structure, regime): clean IoU, corruption robustness (mean corrupted/clean IoU
    over corruptions, severities and images) and the adversarial score of `attack`, side by side."""
    keys = [k for k in by if k in corruption.columns]
    corr = (corruption.assign(r=robustness_ratio(corruption.iou, corruption.clean_iou))
            .groupby(keys, sort=False).agg(clean_iou=("clean_iou", "mean"), corruption_robustness=("r", "mean"))
            .reset_index())
    adv = adversarial_score(adversarial[adversarial.attack == attack], by=keys).rename(
        columns={"score": "adversarial_robustness", "mean_iou": "adversarial_iou"})
    return corr.merge(adv, on=keys)
