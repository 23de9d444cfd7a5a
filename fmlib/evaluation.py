"""Evaluation of a trained model: clean scores, corruptions and attacks, as tidy tables.

Each function takes a model and a test set (a synthesis `Dataset`, or real `fmlib.realdata.Tiles`)
and returns one row per image (and corruption and severity, or attack and budget). Study
configurations (`fmlib.profiles.Config`) supply the corruptions, attacks, budgets and seeds; the
grid (`fmlib.grid`) caches these tables for every trained model.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import torch

from .attacks import check_inputs, evaluate_attack, worst_case
from .attacks.ensemble import BASELINE_MEMBERS, SQUARE, add_square
from .corruptions import CORRUPTIONS, corrupt
from .inference import as_batch, batches, predict, predict_scores
from .metrics import adversarial_score, robustness_ratio, segmentation_scores
from .models import has_straight_through, straight_through
from .strength import converged, sample_trace, tail_drop, trace_points
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


def robust_table(cfg, model, dataset, *, batch_size: int = 16) -> pd.DataFrame:
    """The robust IoU: per image of the first `cfg.n_attack_images` of `dataset` and budget of
    `cfg.ensemble_eps_255`, the worst case over the attack ensemble (`fmlib.attacks.worst_case`: FGSM, I-FGSM,
    PGD with `cfg.attack_steps`, and APGD on every loss with `cfg.ensemble_steps` iterations, run on to
    at most `cfg.ensemble_max_steps` while its IoU still falls, and `cfg.ensemble_restarts` runs of every
    loss or of the best, `cfg.ensemble_restart_losses`, then the gradient-free Square Attack with
    `cfg.square_queries` queries per image on the images not yet fully fooled).

    Columns: image, attack (``"ensemble"``), eps, eps_255, iou, dice, clean_iou, robustness (the
    paper's ratio), ``member`` (the attack that found the worst case, ``"clean"`` if none lowered the
    IoU), ``paper_attacks_iou`` (the worst case of FGSM, I-FGSM and PGD alone), ``gradient_iou`` (the
    worst case of every gradient member, BPDA ones included: the robust IoU without Square),
    ``square_iou`` (Square's IoU; NaN where it did not run, the image already fooled) and ``converged``
    (whether every APGD run's IoU curve had flattened, `fmlib.strength.converged`; true where the
    images were all fooled before APGD ran) with ``tail_drop``, the most that any of those runs'
    mean IoU still fell over its last quarter of iterations (`fmlib.strength.tail_drop`; 0 where the
    images were all fooled): how far from converged the robust IoU is; ``apgd_steps``, the most
    iterations any of those runs made (above `cfg.ensemble_steps` where one was run on); ``apgd_trace``,
    a JSON map of each APGD run to its mean best IoU at `fmlib.strength.trace_points` of
    `cfg.ensemble_max_steps` over the images of the row's batch that it attacked, those not yet fully
    fooled (a run that stopped earlier keeps its last value; `fmlib.strength.iteration_curves` reads
    it).

    A model with a straight-through backward pass (SegNet's unpooling, `fmlib.models.bpda`) is
    attacked twice, with its own gradients and with the BPDA ones, and keeps the worse of the two per
    image (members of the BPDA run are named ``<member>+bpda``).
    """
    x, y = check_inputs(as_batch(dataset.images[:cfg.n_attack_images]), as_batch(dataset.masks[:cfg.n_attack_images]))
    clean = predict_scores(model, x, y, batch_size)
    frames = []
    for level in cfg.ensemble_eps_255:
        for part in batches(len(x), batch_size):
            adv, members = study_worst_case(cfg, model, x[part], y[part], level / 255)
            scores = predict_scores(model, adv, y[part], batch_size)
            images = np.arange(len(x))[part]
            worst = members[members.worst].set_index("image").member
            paper = members[members.member.isin(BASELINE_MEMBERS)].groupby("image").iou.min()  # own gradients
            gradient = members[members.member != SQUARE].groupby("image").iou.min()
            square = members[members.member == SQUARE].set_index("image").iou
            traces = members.attrs["traces"]
            unfooled = [t for t in traces.values() if t[-1] != 0]
            done = all(converged(t) for t in unfooled)
            still_falling = max((tail_drop(t) for t in unfooled), default=0.0)
            longest = max((len(t) - 1 for t in traces.values()), default=0)
            frames.append(pd.DataFrame({
                "image": images, "attack": "ensemble", "eps": level / 255, "eps_255": float(level),
                "iou": scores["iou"], "dice": scores["dice"], "clean_iou": clean["iou"][part],
                "robustness": robustness_ratio(scores["iou"], clean["iou"][part]),
                "member": [worst.get(k, "clean") for k in range(len(images))],
                "paper_attacks_iou": [paper.get(k, clean["iou"][part][k]) for k in range(len(images))],
                "gradient_iou": [min(gradient.get(k, 1.0), clean["iou"][part][k]) for k in range(len(images))],
                "square_iou": [square.get(k, np.nan) for k in range(len(images))],
                "converged": done, "tail_drop": still_falling, "apgd_steps": longest,
                "apgd_trace": json.dumps({"iterations": trace_points(cfg.ensemble_max_steps),
                                          "traces": {m: [round(v, 5) for v in sample_trace(t, cfg.ensemble_max_steps)]
                                                     for m, t in traces.items()}})}))
    return pd.concat(frames, ignore_index=True)


def study_worst_case(cfg, model, x: torch.Tensor, y: torch.Tensor, eps: float, *,
                     norm: str = "linf") -> tuple[torch.Tensor, pd.DataFrame]:
    """`fmlib.attacks.worst_case` of the ensemble with the study's settings (`cfg`: iterations,
    continuation, restarts, PGD steps, Square's queries, seed) at budget `eps` in `norm`, and for a model
    with a BPDA backward pass (`fmlib.models.bpda`) also under it: the lower IoU per image, with the
    member tables of both runs (members of the BPDA run named ``<member>+bpda``; ``attrs["traces"]`` of
    both). Square (`cfg.square_queries` queries, none where the parameter is absent) runs once, after the
    gradient members of both runs, on the images neither fooled (`fmlib.attacks.add_square`: a
    straight-through backward pass leaves the forward pass, all Square reads, unchanged). The
    L-inf robust IoU (`robust_table`) and the L2 one (`fmlib.threat_models.l2_robust_table`) both use it.
    """
    queries = cfg.get("square_queries", 0)

    def run(square_queries):
        return worst_case(model, x, y, eps, steps=cfg.ensemble_steps, restarts=cfg.ensemble_restarts,
                          restart_losses=cfg.get("ensemble_restart_losses", "all"), norm=norm,
                          pgd_steps=cfg.attack_steps, seed=cfg.seed, max_steps=cfg.ensemble_max_steps,
                          square_queries=square_queries)

    if not has_straight_through(model):
        return run(queries)
    adv, members = run(0)
    with straight_through(model):
        adv_st, members_st = run(0)
    own = torch.as_tensor(predict_scores(model, adv, y)["iou"])
    bpda = torch.as_tensor(predict_scores(model, adv_st, y)["iou"])
    better = (bpda < own).nonzero().flatten()
    adv[better] = adv_st[better]
    picked = set(better.tolist())
    members = members.assign(worst=members.worst & ~members.image.isin(picked))
    members_st = members_st.assign(member=members_st.member + "+bpda", worst=members_st.worst &
                                   members_st.image.isin(picked))
    table = pd.concat([members, members_st], ignore_index=True)
    table.attrs["traces"] = {**members.attrs["traces"],
                             **{f"{k}+bpda": v for k, v in members_st.attrs["traces"].items()}}
    return add_square(model, x, y, eps, adv, table, queries=queries, norm=norm, seed=cfg.seed)


def transfer_table(cfg, model, dataset, surrogate) -> pd.DataFrame:
    """PGD examples (`cfg.attack_steps` iterations, every budget of `cfg.eps_255`) crafted on
    `surrogate` and applied to `model`, on the first `cfg.n_attack_images` images of `dataset`: the
    black-box check of a white-box robust IoU (a transfer that beats it means masked gradients)."""
    images, masks = dataset.images[:cfg.n_attack_images], dataset.masks[:cfg.n_attack_images]
    return evaluate_attack(model, images, masks, "transfer", [e / 255 for e in cfg.eps_255], seed=cfg.seed,
                           surrogate=surrogate, transfer_attack="pgd", steps=cfg.attack_steps)


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
    """Per model (and structure, regime): clean IoU, corruption robustness (the paper's ratio: mean
    corrupted IoU over corruptions, severities and images, over the mean clean IoU,
    `fmlib.metrics.ratio_of_means`) and the adversarial score of `attack`, side by side."""
    keys = [k for k in by if k in corruption.columns]
    corr = (corruption.groupby(keys, sort=False).agg(clean_iou=("clean_iou", "mean"), iou=("iou", "mean"))
            .reset_index())
    corr["corruption_robustness"] = robustness_ratio(corr.pop("iou"), corr.clean_iou)  # the ratio of the means
    adv = adversarial_score(adversarial[adversarial.attack == attack], by=keys).rename(
        columns={"score": "adversarial_robustness", "mean_iou": "adversarial_iou"})
    return corr.merge(adv, on=keys)
