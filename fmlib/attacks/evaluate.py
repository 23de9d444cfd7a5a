"""Attacks run on a test set at several budgets, into a tidy table of per-image scores."""

from __future__ import annotations

import pandas as pd
import torch
from tqdm.auto import tqdm

from ..inference import as_batch, model_device, predict_scores
from .base import PAPER_EPS, check_inputs, random_sign_noise
from .ensemble import worst_case
from .registry import ATTACKS, create_attack

#: Names `evaluate_attack` takes besides `ATTACKS`: the random-sign baseline, the per-image worst case
#: of the ensemble (`fmlib.attacks.ensemble.worst_case`), and examples transferred from a surrogate.
NOISE, ENSEMBLE, TRANSFER = "noise", "ensemble", "transfer"


def evaluate_attack(model: torch.nn.Module, images, masks, attack: str = "pgd", eps_list=PAPER_EPS, *,
                    batch_size: int = 16, seed: int = 0, progress: bool = False,
                    surrogate: torch.nn.Module | None = None, transfer_attack: str = "pgd", **attack_kwargs):
    """Per image and budget: IoU, Dice and the paper's robustness ratio (attacked IoU / clean IoU).

    `attack` is a name of `ATTACKS`, ``"noise"`` (the random-sign baseline), ``"ensemble"`` (the
    per-image worst case of `worst_case`; `attack_kwargs` go to it: steps, losses, restarts, ...) or
    ``"transfer"`` (`transfer_attack`, with `attack_kwargs`, crafted on `surrogate` and applied to
    `model`). Images are (N, H, W) or (N, 1, H, W) arrays or tensors in [0, 1]; masks likewise.
    Returns a tidy DataFrame with columns image, attack, eps, eps_255, iou, dice, clean_iou, robustness.
    """
    x, y = check_inputs(as_batch(images), as_batch(masks))
    if attack not in (NOISE, ENSEMBLE, TRANSFER) and attack not in ATTACKS:
        raise ValueError(f"attack: unknown attack {attack!r}; expected one of {', '.join(ATTACKS)}, "
                         f"{NOISE!r}, {ENSEMBLE!r}, {TRANSFER!r}")
    if attack == TRANSFER and surrogate is None:
        raise ValueError("surrogate: a transfer attack needs the model its examples are crafted on")
    clean = predict_scores(model, x, y, batch_size)
    rows = []
    for eps in tqdm(list(eps_list), desc=f"{attack}", disable=not progress, leave=False):
        adv = []
        for i in range(0, len(x), batch_size):
            xb, yb = x[i:i + batch_size], y[i:i + batch_size]
            if attack == NOISE:
                adv.append(random_sign_noise(xb, eps, seed=seed + i))
            elif attack == ENSEMBLE:
                adv.append(worst_case(model, xb, yb, eps, seed=seed, **attack_kwargs)[0])
            else:
                source = surrogate if attack == TRANSFER else model
                attacker = create_attack(transfer_attack if attack == TRANSFER else attack, source, eps, seed=seed,
                                         **attack_kwargs)
                adv.append(attacker(xb.to(model_device(source)), yb.to(model_device(source))).cpu())
        scores = predict_scores(model, torch.cat(adv), y, batch_size)
        for k in range(len(x)):
            rows.append({"image": k, "attack": attack, "eps": float(eps), "eps_255": round(float(eps) * 255, 3),
                         "iou": float(scores["iou"][k]), "dice": float(scores["dice"][k]),
                         "clean_iou": float(clean["iou"][k]),
                         "robustness": float(scores["iou"][k] / max(clean["iou"][k], 1e-5))})
    return pd.DataFrame(rows)
