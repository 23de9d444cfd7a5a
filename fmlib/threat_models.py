"""The L2 threat model beside the L-inf one: RMS-matched budgets, the L2 ensemble, and a check
that ties the two together.

The study's budgets are L-inf (grey levels per pixel). An L2 budget needs a scale to be compared
with them; `l2_budget` matches the root-mean-square perturbation per pixel: an L-inf perturbation
of size eps on an H x W image has an L2 norm of at most ``eps * sqrt(H * W)``, so the RMS-matched L2
ball *contains* the L-inf ball. Two things follow:

- the RMS of a perturbation at the matched L2 budget is the L-inf budget itself, so
  `budget_units` sets both against the images' own noise;
- the L-inf ensemble's worst case is a point of the L2 ball, so a strong L2 attack leaves an IoU no
  higher than the L-inf robust IoU of the same images. `inclusion_check` flags a model where the L2
  ensemble does worse than that point (its L2 attack is not converged, or its gradients mislead
  L2 steps): one more check, beside those of `fmlib.strength`, that can fail.

The L2 ensemble is APGD on every loss (`fmlib.attacks.worst_case` with ``norm="l2"``; FGSM, I-FGSM
and PGD are the L-inf baselines and stay out), with the study's iterations, continuation and random
restarts. A model with a straight-through backward pass (SegNet's unpooling) is attacked with its own
and with the BPDA gradients, and keeps the worse case per image, as in `fmlib.evaluation.robust_table`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from ._checks import check_int, check_real
from .attacks import check_inputs
from .evaluation import study_worst_case
from .inference import as_batch, batches, predict_scores
from .metrics import bootstrap_ci, bootstrap_scores
from .strength import PASSES, converged, tail_drop
from .synthesis import DISPLAY_SIGNAL

#: The verdict of `inclusion_check` where the L2 ensemble leaves a higher IoU than the L-inf worst case.
L2_WEAKER = "L2 attack weaker than the L-inf point in its ball"


def l2_budget(eps: float, image_shape: Sequence[int]) -> float:
    """The L2 budget whose root-mean-square perturbation per pixel is the L-inf budget `eps`.

    Parameters
    ----------
    eps : float
        L-inf budget in image intensity (``eps_255 / 255``), at least 0.
    image_shape : sequence of int
        The image's (H, W), or any shape whose trailing two entries are; every entry at least 1.

    Returns
    -------
    float
        ``eps * sqrt(H * W)``: the largest L2 norm of an L-inf perturbation of size `eps`, so the
        L2 ball of this radius contains the L-inf ball.

    Examples
    --------
    >>> round(l2_budget(8 / 255, (96, 96)), 4)
    3.0118
    """
    eps = check_real("eps", eps, low=0.0)
    shape = tuple(image_shape)
    if len(shape) < 2:
        raise ValueError(f"image_shape: expected at least (H, W), got {shape!r}")
    height, width = (check_int(name, n, low=1) for name, n in zip(("image_shape[-2]", "image_shape[-1]"), shape[-2:]))
    return eps * math.sqrt(height * width)


def l2_robust_table(cfg, model: torch.nn.Module, dataset, *, batch_size: int = 16) -> pd.DataFrame:
    """The L2 robust IoU: per image of the first `cfg.n_attack_images` of `dataset` and L-inf budget
    of `cfg.ensemble_eps_255`, the worst case of the L2 APGD ensemble at the RMS-matched budget
    (`l2_budget`).

    Columns: image, attack (``"ensemble-l2"``), eps_255 (the L-inf budget it is matched to), eps_l2,
    iou, dice, clean_iou, ``member`` (the run that found the worst case, ``"clean"`` if none lowered
    the IoU; ``+bpda`` for the straight-through gradients), ``converged`` and ``tail_drop`` (as in
    `fmlib.evaluation.robust_table`: has every APGD run's IoU curve flattened?) and ``apgd_steps``.
    The study's configuration supplies the budgets, iterations (`cfg.ensemble_steps`, run on to
    `cfg.ensemble_max_steps`), restarts and seed.
    """
    x, y = check_inputs(as_batch(dataset.images[:cfg.n_attack_images]), as_batch(dataset.masks[:cfg.n_attack_images]))
    clean = predict_scores(model, x, y, batch_size)
    frames = []
    for level in cfg.ensemble_eps_255:
        eps_l2 = l2_budget(level / 255, x.shape[-2:])
        for part in batches(len(x), batch_size):
            adv, members = study_worst_case(cfg, model, x[part], y[part], eps_l2, norm="l2")
            worst = members[members.worst].set_index("image").member
            member = [worst.get(k, "clean") for k in range(len(adv))]
            traces = members.attrs["traces"]
            scores = predict_scores(model, adv, y[part], batch_size)
            unfooled = [t for t in traces.values() if t[-1] != 0]
            frames.append(pd.DataFrame({
                "image": np.arange(len(x))[part], "attack": "ensemble-l2", "eps_255": float(level), "eps_l2": eps_l2,
                "iou": scores["iou"], "dice": scores["dice"], "clean_iou": clean["iou"][part], "member": member,
                "converged": all(converged(t) for t in unfooled),
                "tail_drop": max((tail_drop(t) for t in unfooled), default=0.0),
                "apgd_steps": max((len(t) - 1 for t in traces.values()), default=0)}))
    return pd.concat(frames, ignore_index=True)


def budget_units(dataset, eps_255: Sequence[float], *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Each budget (grey levels of an 8-bit display) against the scales of the images it perturbs.

    - ``eps_over_noise``: the budget over the noise standard deviation at the foreground signal,
      ``DISPLAY_SIGNAL / SNR`` in display units (the display maps the mean foreground signal to
      `DISPLAY_SIGNAL` above black, and the SNR is that signal over its noise);
    - ``eps_over_std``: the budget over the standard deviation of the image itself, the units of a
      model that z-scores its input (the paper's "/std");
    - ``below_noise``: whether the budget is smaller than the noise the camera already adds.

    Medians over the images of `dataset` (a synthesis Dataset; its per-image SNR is measured), each with
    a 95 % CI that resamples the images (``<column>_low``, ``<column>_high``; `n_boot` resamples,
    `seed`): the scale is a property of the test images, and a few images pin it only so far.

    Examples
    --------
    >>> from fmlib.synthesis import make_dataset
    >>> units = budget_units(make_dataset("nuclei", 2, 64, snr=8.0), [8, 32])
    >>> units.below_noise.tolist()
    [True, False]
    """
    check_int("n_boot", n_boot, low=1)
    snr = np.array([m["snr"] for m in dataset.metadata], dtype=float)
    sigma = DISPLAY_SIGNAL / snr
    std = dataset.images.reshape(len(dataset.images), -1).std(axis=1)

    def median_ci(name: str, values: np.ndarray) -> dict:
        estimate, low, high = bootstrap_ci(values, np.median, n_boot=n_boot, seed=seed)
        return {name: estimate, f"{name}_low": low, f"{name}_high": high}

    rows = []
    for level in eps_255:
        eps = check_real("eps_255", level, low=0.0, high=255.0) / 255
        rows.append({"eps_255": float(level), "eps": eps, **median_ci("noise_sigma_255", sigma * 255),
                     **median_ci("eps_over_noise", eps / sigma), **median_ci("eps_over_std", eps / std),
                     "below_noise": bool(eps < np.median(sigma))})
    return pd.DataFrame(rows)


def inclusion_check(linf: pd.DataFrame, l2: pd.DataFrame, *, by: Sequence[str] = ("model", "structure"),
                    tol: float = 0.01, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per `by` group and budget: does the L2 ensemble do at least as well as the L-inf point in its ball?

    Parameters
    ----------
    linf : DataFrame
        Rows of `fmlib.evaluation.robust_table` (the L-inf ensemble) with the `by` columns.
    l2 : DataFrame
        Rows of `l2_robust_table` for the same models, images and budgets, with the `by` columns.
    by : sequence of str
        Columns that name a model (and structure, seed ...) in both tables.
    tol : float
        IoU by which the L2 ensemble's mean may exceed the L-inf one before the check fails (the
        attacks' own float noise).
    n_boot, seed : int
        Bootstrap resamples of the images, and their seed, for the CI of the difference.

    Returns
    -------
    DataFrame
        One row per group and ``eps_255``: ``linf_iou`` and ``l2_iou`` (means over the images both
        tables attacked), ``difference`` (``l2_iou - linf_iou``) with its 95 % CI, which resamples the
        images, paired (``difference_low``, ``difference_high``), ``n_images``, ``l2_converged``,
        ``l2_no_weaker`` (``l2_iou <= linf_iou + tol``) and ``verdict`` (`fmlib.strength.PASSES` or
        `L2_WEAKER`).

    Examples
    --------
    >>> linf = pd.DataFrame({"model": "m", "eps_255": 8.0, "image": [0, 1], "iou": [0.5, 0.4]})
    >>> l2 = linf.assign(iou=[0.1, 0.0], converged=True)
    >>> inclusion_check(linf, l2, by=("model",)).verdict.tolist()
    ['passes']
    """
    by = list(by)
    tol = check_real("tol", tol, low=0.0)
    check_int("n_boot", n_boot, low=1)
    for name, table in (("linf", linf), ("l2", l2)):
        missing = sorted({*by, "eps_255", "image", "iou"} - set(table.columns))
        if missing:
            raise ValueError(f"{name}: expected columns {missing} (the by columns, eps_255, image, iou)")
    if "converged" not in l2.columns:
        raise ValueError("l2: expected a 'converged' column (rows of l2_robust_table)")
    keys = [*by, "eps_255", "image"]
    pairs = linf[keys + ["iou"]].merge(l2[keys + ["iou", "converged"]], on=keys, suffixes=("_linf", "_l2"))
    if pairs.empty:
        raise ValueError("linf, l2: no model, budget and image in common")
    out = pairs.groupby([*by, "eps_255"], sort=True).agg(
        linf_iou=("iou_linf", "mean"), l2_iou=("iou_l2", "mean"), n_images=("image", "size"),
        l2_converged=("converged", "all")).reset_index()
    difference = bootstrap_scores(pairs.assign(difference=pairs.iou_l2 - pairs.iou_linf), "difference",
                                  [*by, "eps_255"], n_boot=n_boot, seed=seed)
    out = out.merge(difference.drop(columns="n").rename(columns={
        "mean": "difference", "ci_low": "difference_low", "ci_high": "difference_high"}), on=[*by, "eps_255"])
    out["l2_no_weaker"] = out.l2_iou <= out.linf_iou + tol
    out["verdict"] = np.where(out.l2_no_weaker, PASSES, L2_WEAKER)
    return out
