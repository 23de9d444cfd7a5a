"""The worst case over an ensemble of attacks, per image: the robust IoU that the book reports.

In the spirit of AutoAttack and SEA (Croce & Hein 2020; Croce et al., ECCV 2024): a robust score is
only as low as the strongest attack found, so each image is attacked by every member, FGSM, I-FGSM
and PGD (the paper's attacks) and APGD on several losses with random restarts, and keeps the
adversarial image of lowest IoU. By construction no single member does better than the ensemble.
An image whose IoU reaches zero is fully fooled and is not attacked further, which keeps the
ensemble affordable.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch

from .._checks import check_int
from ..inference import model_device, predict_scores
from .apgd import APGD, LOSSES
from .base import check_inputs
from .gradient import FGSM, IFGSM, PGD

#: The paper's attacks, run first: cheap, and what the ensemble must never be weaker than.
BASELINE_MEMBERS = ("fgsm", "ifgsm", "pgd")


def members(eps: float, *, steps: int = 50, losses: Sequence[str] = tuple(LOSSES), restarts: int = 1,
            pgd_steps: int = 10, norm: str = "linf", seed: int = 0) -> list[tuple[str, dict]]:
    """The ensemble's members in the order they run: (name, how to build it)."""
    check_int("restarts", restarts, low=1)
    out = [] if norm != "linf" else [("fgsm", {}), ("ifgsm", {}), ("pgd", {"steps": pgd_steps})]
    for loss in losses:
        for restart in range(restarts):  # restart 0 starts from the clean image, the others at random
            out.append((f"apgd-{loss}" + (f"-r{restart}" if restart else ""),
                        {"loss": loss, "steps": steps, "norm": norm, "random_start": restart > 0,
                         "seed": seed + restart}))
    return out


def _build(model, name: str, eps: float, spec: dict, seed: int):
    if name == "fgsm":
        return FGSM(model, eps, seed=seed)
    if name == "ifgsm":
        return IFGSM(model, eps, seed=seed)
    if name == "pgd":
        return PGD(model, eps, steps=spec["steps"], seed=seed)
    return APGD(model, eps, **spec)


def worst_case(model: torch.nn.Module, images, masks, eps: float, *, steps: int = 50,
               losses: Sequence[str] = tuple(LOSSES), restarts: int = 1, pgd_steps: int = 10, norm: str = "linf",
               seed: int = 0) -> tuple[torch.Tensor, pd.DataFrame]:
    """The per-image worst case over the ensemble (`members`) at budget `eps`.

    Returns the adversarial images (N, 1, H, W) and a table with one row per image and member that
    ran on it: ``image``, ``member``, ``iou`` (that member's attacked IoU) and ``worst`` (whether it is
    the ensemble's pick for the image). Members skip the images already fully fooled (IoU 0).
    ``table.attrs["traces"]`` maps each APGD member to its mean-best-IoU curve over its iterations
    (`fmlib.attacks.apgd.APGD.iou_trace`: is it converged?).
    """
    x, y = check_inputs(images, masks)
    device = model_device(model)
    best = x.clone()
    best_iou = torch.as_tensor(predict_scores(model, x, y)["iou"])
    winner = ["clean"] * len(x)
    rows, traces = [], {}
    for name, spec in members(eps, steps=steps, losses=losses, restarts=restarts, pgd_steps=pgd_steps, norm=norm,
                              seed=seed):
        idx = (best_iou > 0).nonzero().flatten()
        if not len(idx):
            break
        attacker = _build(model, name, eps, spec, seed)
        adv = attacker(x[idx].to(device), y[idx].to(device)).cpu()
        if isinstance(attacker, APGD):
            traces[name] = list(attacker.iou_trace)
        iou = torch.as_tensor(predict_scores(model, adv, y[idx])["iou"])
        lower = iou < best_iou[idx]
        best[idx[lower]], best_iou[idx[lower]] = adv[lower], iou[lower]
        for k, i in enumerate(idx.tolist()):
            rows.append({"image": i, "member": name, "iou": float(iou[k])})
            if lower[k]:
                winner[i] = name
    table = pd.DataFrame(rows, columns=["image", "member", "iou"])
    table["worst"] = [winner[i] == m for i, m in zip(table.image, table.member)]
    table.attrs["traces"] = traces
    return best, table
