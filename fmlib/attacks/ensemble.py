"""The worst case over an ensemble of attacks, per image: the robust IoU that the book reports.

In the spirit of AutoAttack and SEA (Croce & Hein 2020; Croce et al., ECCV 2024): a robust score is
only as low as the strongest attack found, so each image is attacked by every member, FGSM, I-FGSM
and PGD (the paper's attacks) and APGD on several losses with random restarts, and keeps the
adversarial image of lowest IoU. By construction no single member does better than the ensemble.
An image whose IoU reaches zero is fully fooled and is not attacked further, which keeps the
ensemble affordable. Every one of those members follows the model's gradient; the last one, the
Square Attack (`fmlib.attacks.square.Square`, Andriushchenko et al. 2020), reads only the logits, so
masked or shattered gradients cannot stop it (`add_square`: on the images not yet fooled, from the
clean image, with a budget of queries per image). A Square win is the sign of masking that
`fmlib.strength` flags.

An APGD run whose IoU curve is still falling when its iterations end
(`fmlib.attacks.convergence.converged`) goes on from its best point, as many iterations again at a
time, until the curve flattens or `max_steps` is reached: a fixed iteration count would leave the
strongest models, where the attack is slowest, with an upper bound.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch

from .._checks import check_choice, check_int
from ..inference import model_device, predict_scores
from .apgd import APGD, LOSSES
from .base import check_inputs
from .convergence import converged
from .gradient import FGSM, IFGSM, PGD
from .square import Square

#: The paper's attacks, run first: cheap, and what the ensemble must never be weaker than.
BASELINE_MEMBERS = ("fgsm", "ifgsm", "pgd")
#: The name of the Square member in the ensemble's tables.
SQUARE = "square"
#: Which losses get the random restarts of `worst_case`: every one, or only the one that won most images.
RESTART_LOSSES = ("all", "best")


def members(eps: float, *, steps: int = 50, losses: Sequence[str] = tuple(LOSSES), restarts: int = 1,
            pgd_steps: int = 10, norm: str = "linf", seed: int = 0, square_queries: int = 0) -> list[tuple[str, dict]]:
    """The ensemble's members in the order they run: (name, how to build it); Square last, where it has
    queries."""
    check_int("restarts", restarts, low=1)
    out = [] if norm != "linf" else [("fgsm", {}), ("ifgsm", {}), ("pgd", {"steps": pgd_steps})]
    out += [_apgd_member(loss, restart, steps=steps, norm=norm, seed=seed)
            for loss in losses for restart in range(restarts)]
    if check_int("square_queries", square_queries, low=0):
        out.append((SQUARE, {"queries": square_queries, "norm": norm, "seed": seed}))
    return out


def _apgd_member(loss: str, restart: int, *, steps: int, norm: str, seed: int) -> tuple[str, dict]:
    """The APGD member of `loss` and `restart` (0 starts from the clean image, the others at random
    points of the budget, each with its own seed): (name, how to build it)."""
    return (f"apgd-{loss}" + (f"-r{restart}" if restart else ""),
            {"loss": loss, "steps": steps, "norm": norm, "random_start": restart > 0, "seed": seed + restart})


def _build(model, name: str, eps: float, spec: dict, seed: int):
    if name == "fgsm":
        return FGSM(model, eps, seed=seed)
    if name == "ifgsm":
        return IFGSM(model, eps, seed=seed)
    if name == "pgd":
        return PGD(model, eps, steps=spec["steps"], seed=seed)
    return APGD(model, eps, **spec)


def _best_loss(winners: Sequence[str], losses: Sequence[str]) -> str:
    """The APGD loss whose clean-start run holds the most of the per-image worst cases `winners`
    (ties, and no APGD win at all, go to the earlier loss of `losses`)."""
    wins = {loss: sum(w == f"apgd-{loss}" for w in winners) for loss in losses}
    return max(losses, key=lambda loss: (wins[loss], -list(losses).index(loss)))


def continue_until_converged(attacker: APGD, images: torch.Tensor, masks: torch.Tensor, adversarial: torch.Tensor,
                             trace: list[float], max_steps: int) -> tuple[torch.Tensor, list[float]]:
    """Run an APGD attack on from where it stopped while its IoU curve `trace` (from iteration 0) is
    still falling (`converged`) and some image is not yet fooled: `attacker.steps` more iterations at
    a time from the best points reached (`adversarial`), with a fresh step-size schedule, until the
    curve has flattened or `max_steps` iterations have run in all. Returns the best points and the
    whole curve (its length minus one is the number of iterations run)."""
    max_steps = check_int("max_steps", max_steps, low=1)
    trace = list(trace)
    while trace[-1] > 0 and not converged(trace) and len(trace) - 1 < max_steps:
        more = APGD(attacker.model, attacker.eps, steps=min(attacker.steps, max_steps - (len(trace) - 1)),
                    loss=attacker.loss_name, norm=attacker.norm, seed=attacker.seed)
        adversarial = more.perturb(images, masks, start=adversarial)
        trace += more.iou_trace[1:]  # its iteration 0 is where the last run ended
    return adversarial, trace


def worst_case(model: torch.nn.Module, images, masks, eps: float, *, steps: int = 50,
               losses: Sequence[str] = tuple(LOSSES), restarts: int = 1, pgd_steps: int = 10, norm: str = "linf",
               seed: int = 0, max_steps: int | None = None, restart_losses: str = "all",
               square_queries: int = 0) -> tuple[torch.Tensor, pd.DataFrame]:
    """The per-image worst case over the ensemble (`members`) at budget `eps`.

    Each APGD run has `steps` iterations, and one whose IoU curve has not flattened by then runs on
    (`continue_until_converged`) up to `max_steps` in all (default `steps`: no continuation).

    `restarts` APGD runs per loss, the first from the clean image and the others from random points
    of the budget ball: for every loss (`restart_losses` ``"all"``), or, to halve what restarts cost
    on a CPU, only for the loss whose run found the most of the worst cases so far (``"best"``: the
    random restarts run last, on that loss alone; ties go to the earlier loss of `losses`).

    With `square_queries` > 0 the Square Attack runs last, with that many queries per image, on the
    images not yet fully fooled (`add_square`; its member is ``"square"``).

    Returns the adversarial images (N, 1, H, W) and a table with one row per image and member that
    ran on it: ``image``, ``member``, ``iou`` (that member's attacked IoU) and ``worst`` (whether it is
    the ensemble's pick for the image). Members skip the images already fully fooled (IoU 0).
    ``table.attrs["traces"]`` maps each APGD member to its mean-best-IoU curve over all its iterations
    (`fmlib.attacks.apgd.APGD.iou_trace`, continuations appended: is it converged?).
    """
    max_steps = check_int("max_steps", steps if max_steps is None else max_steps, low=1)
    if max_steps < steps:
        raise ValueError(f"max_steps: expected at least steps={steps}, got {max_steps}")
    check_choice("restart_losses", restart_losses, RESTART_LOSSES)
    restarts = check_int("restarts", restarts, low=1)
    square_queries = check_int("square_queries", square_queries, low=0)
    x, y = check_inputs(images, masks)
    device = model_device(model)
    best = x.clone()
    best_iou = torch.as_tensor(predict_scores(model, x, y)["iou"])
    winner = ["clean"] * len(x)
    rows, traces = [], {}
    every_loss = restart_losses == "all"
    planned = members(eps, steps=steps, losses=losses, restarts=restarts if every_loss else 1, pgd_steps=pgd_steps,
                      norm=norm, seed=seed)
    late = [] if every_loss else list(range(1, restarts))  # the random restarts of the best loss, run last
    while planned or late:
        if not planned:  # the clean-start runs are done: restart the loss that won most images
            loss = _best_loss(winner, losses)
            planned = [_apgd_member(loss, r, steps=steps, norm=norm, seed=seed) for r in late]
            late = []
        name, spec = planned.pop(0)
        idx = (best_iou > 0).nonzero().flatten()
        if not len(idx):
            break
        attacker = _build(model, name, eps, spec, seed)
        xi, yi = x[idx].to(device), y[idx].to(device)
        adv = attacker(xi, yi)
        if isinstance(attacker, APGD):
            adv, traces[name] = continue_until_converged(attacker, xi, yi, adv, attacker.iou_trace, max_steps)
        adv = adv.cpu()
        iou = torch.as_tensor(predict_scores(model, adv, y[idx])["iou"])
        lower = iou < best_iou[idx]
        best[idx[lower]], best_iou[idx[lower]] = adv[lower], iou[lower]
        for k, i in enumerate(idx.tolist()):
            rows.append({"image": i, "member": name, "iou": float(iou[k])})
            if lower[k]:
                winner[i] = name
    table = pd.DataFrame(rows, columns=["image", "member", "iou"])
    # bool even when no member ran (every image already at IoU 0): an empty object column would not
    # select rows
    table["worst"] = pd.Series([winner[i] == m for i, m in zip(table.image, table.member)], index=table.index,
                               dtype=bool)
    table.attrs["traces"] = traces
    return add_square(model, x, y, eps, best, table, queries=square_queries, norm=norm, seed=seed)


def add_square(model: torch.nn.Module, images, masks, eps: float, adversarial: torch.Tensor, table: pd.DataFrame, *,
               queries: int, norm: str = "linf", seed: int = 0) -> tuple[torch.Tensor, pd.DataFrame]:
    """The Square member after the gradient members: `fmlib.attacks.square.Square` with `queries`
    queries per image, from the clean `images`, on those whose worst case so far (`adversarial`, with
    the member `table` of `worst_case`) is not fully fooled.

    Returns the worst case with Square's wins in it, and `table` with a row per image Square ran on
    (member `SQUARE`; ``worst`` where it lowered the IoU, the image's earlier pick then losing its
    flag). Nothing runs where `queries` is 0. ``attrs["traces"]`` stays that of the APGD runs.
    """
    queries = check_int("queries", queries, low=0)
    x, y = check_inputs(images, masks)
    best = torch.as_tensor(adversarial).float().clone()
    best_iou = torch.as_tensor(predict_scores(model, best, y)["iou"])
    idx = (best_iou > 0).nonzero().flatten()
    if not queries or not len(idx):
        return best, table
    device = model_device(model)
    adv = Square(model, eps, queries=queries, norm=norm, seed=seed)(x[idx].to(device), y[idx].to(device)).cpu()
    iou = torch.as_tensor(predict_scores(model, adv, y[idx])["iou"])
    lower = iou < best_iou[idx]
    best[idx[lower]] = adv[lower]
    won = idx[lower].tolist()
    rows = pd.DataFrame({"image": idx.tolist(), "member": SQUARE, "iou": iou.tolist(), "worst": lower.tolist()})
    out = pd.concat([table.assign(worst=table.worst & ~table.image.isin(won)), rows], ignore_index=True)
    out["worst"] = out.worst.astype(bool)
    out.attrs = {"traces": dict(table.attrs.get("traces", {}))}
    return best, out
