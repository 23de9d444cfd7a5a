"""Evidence of an attack's strength, per model: is the robust IoU a worst case or an artefact?

A robust score means something only if the attack behind it is strong. Reviewers check first
(Carlini et al. 2019, "On evaluating adversarial robustness"; Croce & Hein 2020):

- the attack has converged: more iterations no longer lower the IoU (`converged`);
- the damage grows with the budget (`monotone in eps`);
- iterative attacks do at least as well as a single step, and every attack better than random noise
  of the same budget;
- a white-box attack does at least as well as examples transferred from another model;
- the gradient members of the ensemble do at least as well, on every image, as its gradient-free
  Square member (`square_wins`): a query attack that never reads a gradient beating them all is the
  signature of masked or shattered gradients (AutoAttack includes Square for this reason).

Budgets mean little without a scale: `fmlib.threat_models.budget_units` gives each one as a multiple
of the images' own noise and of their standard deviation (the paper's "/std" units).

A model on which a weaker attack (one step, noise, a transfer, or Square on some image) lowers the
IoU more than the white-box (gradient) attack has gradients that mislead the attack: "gradient
masking suspected". A model on which the attack was still gaining when it stopped is "not
converged". Either way its robust IoU is an upper bound, not a measurement, and the book does not
call it robust (`attack_check`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ._checks import check_int, check_real
from .attacks.convergence import (  # noqa: F401 (part of this module's API, kept beside the attacks)
    converged,
    iteration_curves,
    sample_trace,
    tail_drop,
    trace_points,
)
from .metrics import bootstrap_ci, bootstrap_scores

MASKING = "gradient masking suspected"
DEGENERATE = "no better than a constant prediction on a structure"
NOT_CONVERGED = "not converged (upper bound)"
PASSES = "passes"
DEGENERATE_MARGIN = 0.02  # IoU: a clean score within this of a constant prediction's has learnt nothing


def diagnose(table: pd.DataFrame, *, white_box: str, single_step: str = "fgsm", iterative: Sequence[str] = ("ifgsm",
             "pgd"), noise: str = "noise", transfer: str | None = "transfer", by: Sequence[str] = ("model",),
             tol: float = 0.01, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per group of `by`, the strength checks of `white_box` on an attack table (columns ``attack``,
    ``eps_255``, ``image``, ``iou`` and those of `by`; one row per image, attack and budget), each True
    when it holds, and a verdict: `PASSES`, or `MASKING` when one step, noise or a transfer lowers the
    mean IoU more than `white_box` at some budget (by more than `tol`).

    The verdict comes with its evidence: ``weakest_attack`` and ``weakest_eps_255``, the weaker attack
    (one step, noise or the transfer) and budget that came closest to the white-box attack, and
    ``weakest_margin``, its mean IoU minus the white-box IoU on the same images (negative: the weaker
    attack did better), with a 95 % CI that resamples the images, paired (``weakest_margin_low``,
    ``weakest_margin_high``; `n_boot` resamples, `seed`). With a handful of attacked images the
    interval is wide: a verdict is a point comparison, and the interval says how firm it is.

    When `white_box` is the ensemble (`fmlib.attacks.worst_case`), which holds FGSM, I-FGSM and PGD,
    the single-step and iterative checks hold by construction; the informative ones are then noise,
    the transfer and the budget, with APGD's convergence beside them (`attack_check`). Run `diagnose`
    on PGD alone for the paper's attacks, where a single step winning is the classic sign of masking.

    A check whose attacks are missing from the table is reported as None (not run), never as passed.
    """
    tol = check_real("tol", tol, low=0.0)
    check_int("n_boot", n_boot, low=1)
    by = list(by)
    missing = {"attack", "eps_255", "image", "iou", *by} - set(table.columns)
    if missing:
        raise ValueError(f"table: no column(s) {sorted(missing)}")
    means = table.groupby([*by, "attack", "eps_255"]).iou.mean()
    per_image = table.groupby([*by, "attack", "eps_255", "image"]).iou.mean()
    weaker = [name for name in (single_step, noise, transfer) if name]
    rows = []
    for key, part in means.groupby(level=list(range(len(by)))):
        part = part.droplevel(list(range(len(by))))
        images = per_image.xs(key if isinstance(key, tuple) else (key,), level=list(range(len(by))))
        row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        wb = _curve(part, white_box)
        if wb is None:
            raise ValueError(f"white_box: no {white_box!r} rows in the table for {row}")
        row["monotone_in_eps"] = bool((np.diff(wb.sort_index().to_numpy()) <= tol).all())
        row["beats_single_step"] = _no_better_than(wb, _curve(part, single_step), tol)
        found = [_no_better_than(wb, _curve(part, name), tol) for name in iterative]
        found = [f for f in found if f is not None]
        row["beats_iterative"] = all(found) if found else None
        row["beats_noise"] = _no_better_than(wb, _curve(part, noise), tol)
        row["beats_transfer"] = _no_better_than(wb, _curve(part, transfer), tol) if transfer else None
        weaker_wins = [row[k] is False for k in ("beats_single_step", "beats_noise", "beats_transfer")]
        row["verdict"] = MASKING if any(weaker_wins) else PASSES
        row.update(_weakest_margin(images, white_box, weaker, n_boot=n_boot, seed=seed))
        rows.append(row)
    return pd.DataFrame(rows)


def _weakest_margin(images: pd.Series, white_box: str, weaker: Sequence[str], *, n_boot: int, seed: int) -> dict:
    """Of the `weaker` attacks and budgets in `images` (IoU per attack, budget and image), the one whose
    mean IoU came closest to (or below) `white_box`'s on the same images: its name, budget, and the
    mean paired difference (weaker minus white-box) with its bootstrap CI over the images."""
    row = {"weakest_attack": None, "weakest_eps_255": np.nan, "weakest_margin": np.nan,
           "weakest_margin_low": np.nan, "weakest_margin_high": np.nan}
    attacks = images.index.get_level_values("attack")
    if white_box not in attacks:
        return row
    reference = images.loc[white_box]
    closest = None
    for name in weaker:
        if name not in attacks:
            continue
        paired = (images.loc[name] - reference).dropna()  # only the budgets and images both attacked
        for level, differences in paired.groupby(level="eps_255"):
            if closest is None or differences.mean() < closest[2].mean():
                closest = (name, float(level), differences)
    if closest is None:
        return row
    estimate, low, high = bootstrap_ci(closest[2].to_numpy(), n_boot=n_boot, seed=seed)
    return {"weakest_attack": closest[0], "weakest_eps_255": closest[1], "weakest_margin": estimate,
            "weakest_margin_low": low, "weakest_margin_high": high}


def ensemble_checks(attacks: pd.DataFrame, robust: pd.DataFrame, *, by: Sequence[str] = ("model", "structure"),
                    tol: float = 0.01, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """The strength checks of the ensemble's robust IoU per group of `by`: `diagnose` with the
    ensemble as the white-box attack, APGD's convergence, and what APGD added to the paper's attacks.

    Parameters
    ----------
    attacks : DataFrame
        The weaker attacks on the same models and images, one row per image, attack and budget
        (columns ``attack``, ``eps_255``, ``image``, ``iou`` and those of `by`): one FGSM step, random
        noise, the transfer, and where run I-FGSM and PGD (`fmlib.evaluation.attack_table`,
        `fmlib.evaluation.transfer_table`).
    robust : DataFrame
        `fmlib.evaluation.robust_table` rows of the same models (one training seed).
    by : sequence of str
        The groups, e.g. model and structure, or model, structure and regime.
    tol : float
        IoU by which a weaker attack must beat the ensemble to count (`diagnose`).
    n_boot, seed : int
        Bootstrap resamples of the images, and their seed, for the 95 % CIs.

    Returns
    -------
    DataFrame
        One row per group: the columns of `diagnose` (the verdict with the margin behind it and its
        CI), ``apgd_converged`` (every APGD run's curve had flattened), ``apgd_tail_drop``,
        ``apgd_steps``, ``ensemble_gain`` (mean IoU that the ensemble took below the paper's attacks,
        with ``ensemble_gain_low`` and ``ensemble_gain_high``, a CI over the images), ``pgd_verdict``
        (the same checks of PGD alone; None where PGD was not run), ``clean_iou``, and the Square
        check: ``beats_square`` (no image on which Square beat every gradient member by more than
        `tol`; None where Square did not run, or `robust` has no ``square_iou``; False turns the
        verdict into `MASKING`), ``square_wins`` (how many images it won), ``square_margin`` (its
        largest margin, `square_wins`) and ``square_images`` ("image at budget (margin)", one per win).

    Examples
    --------
    >>> weak = pd.DataFrame({"model": "m", "attack": ["fgsm", "noise"], "eps_255": 8.0, "image": 0,
    ...                      "iou": [0.5, 0.9]})
    >>> strong = pd.DataFrame({"model": ["m"], "attack": "ensemble", "eps_255": 8.0, "image": 0, "iou": 0.4,
    ...                        "clean_iou": 0.95, "paper_attacks_iou": 0.5, "converged": True,
    ...                        "tail_drop": 0.0, "apgd_steps": 100})
    >>> ensemble_checks(weak, strong, by=["model"])[["verdict", "apgd_converged", "ensemble_gain"]].values.tolist()
    [['passes', True, 0.09999999999999998]]
    """
    by = list(by)
    missing = {"attack", "eps_255", "image", "iou", *by} - set(attacks.columns)
    if missing:
        raise ValueError(f"attacks: no column(s) {sorted(missing)}")
    missing = {"eps_255", "image", "iou", "clean_iou", "paper_attacks_iou", "converged", "tail_drop", "apgd_steps",
               *by} - set(robust.columns)
    if missing:
        raise ValueError(f"robust: no column(s) {sorted(missing)} (rows of fmlib.evaluation.robust_table)")
    columns = [*by, "attack", "eps_255", "image", "iou"]
    every = pd.concat([attacks[columns], robust.assign(attack="ensemble")[columns]], ignore_index=True)
    checks = diagnose(every, white_box="ensemble", single_step="fgsm", iterative=("ifgsm", "pgd"), by=by, tol=tol,
                      n_boot=n_boot, seed=seed)
    summary = robust.groupby(by).agg(apgd_converged=("converged", "all"), apgd_tail_drop=("tail_drop", "max"),
                                     apgd_steps=("apgd_steps", "max")).reset_index()
    gains = bootstrap_scores(robust.assign(gain=robust.paper_attacks_iou - robust.iou), "gain", by, n_boot=n_boot,
                             seed=seed)
    summary = summary.merge(gains.drop(columns="n").rename(columns={
        "mean": "ensemble_gain", "ci_low": "ensemble_gain_low", "ci_high": "ensemble_gain_high"}), on=by)
    checks = checks.merge(summary, on=by)
    if (attacks.attack == "pgd").any():
        pgd = diagnose(every, white_box="pgd", single_step="fgsm", iterative=("ifgsm",), by=by, tol=tol,
                       n_boot=n_boot, seed=seed)
        checks = checks.merge(pgd[[*by, "verdict"]].rename(columns={"verdict": "pgd_verdict"}), on=by, how="left")
    else:
        checks["pgd_verdict"] = None
    clean = robust.groupby(by).clean_iou.mean().rename("clean_iou").reset_index()
    checks = checks.merge(clean, on=by).merge(_square_check(robust, by, tol), on=by, how="left")
    checks.loc[checks.beats_square.eq(False), "verdict"] = MASKING
    return checks


def square_wins(robust: pd.DataFrame, *, by: Sequence[str] = ("model", "structure"), tol: float = 0.01) -> pd.DataFrame:
    """The images on which the ensemble's gradient-free Square member beat every gradient member by
    more than `tol` (IoU), in `robust` (`fmlib.evaluation.robust_table` rows with the `by` columns:
    ``gradient_iou``, the worst case of the gradient members, and ``square_iou``, NaN where Square did
    not run). One row per won image: the `by` columns, ``eps_255``, ``image``, ``gradient_iou``,
    ``square_iou`` and ``margin`` (``gradient_iou - square_iou``), largest margin first.

    Examples
    --------
    >>> robust = pd.DataFrame({"model": "m", "eps_255": 16.0, "image": [0, 1, 2],
    ...                        "gradient_iou": [0.7, 0.5, 0.0], "square_iou": [0.65, 0.6, np.nan]})
    >>> wins = square_wins(robust, by=["model"])
    >>> wins.image.tolist(), wins.margin.round(3).tolist()
    ([0], [0.05])
    """
    by, tol = list(by), check_real("tol", tol, low=0.0)
    missing = {*by, "eps_255", "image", "gradient_iou", "square_iou"} - set(robust.columns)
    if missing:
        raise ValueError(f"robust: no column(s) {sorted(missing)} (rows of fmlib.evaluation.robust_table)")
    table = robust[[*by, "eps_255", "image", "gradient_iou", "square_iou"]]
    table = table.assign(margin=table.gradient_iou - table.square_iou)
    return table[table.margin > tol].sort_values("margin", ascending=False).reset_index(drop=True)


def _square_check(robust: pd.DataFrame, by: Sequence[str], tol: float) -> pd.DataFrame:
    """Per group of `by`, the Square columns of `ensemble_checks`."""
    by = list(by)
    robust = robust.assign(**{c: np.nan for c in ("gradient_iou", "square_iou") if c not in robust})
    rows = []
    for key, part in robust.groupby(by):
        won, ran = square_wins(part, by=by, tol=tol), bool(part.square_iou.notna().any())
        rows.append({**dict(zip(by, key if isinstance(key, tuple) else (key,))),
                     "beats_square": won.empty if ran else None, "square_wins": len(won),
                     "square_margin": won.margin.max() if len(won) else np.nan, "square_images": ", ".join(
                         f"{int(r.image)} at {r.eps_255:g} ({r.margin:.3f})" for r in won.itertuples())})
    return pd.DataFrame(rows)


def constant_prediction_iou(masks) -> float:
    """The mean IoU over `masks` (N, H, W) of the best constant prediction: every pixel foreground
    (IoU = the foreground fraction of each mask) or none (IoU 0). A model whose clean IoU is no
    better has learnt nothing an attack could take away, so its robust IoU measures nothing.

    Examples
    --------
    >>> masks = np.zeros((2, 4, 4), bool); masks[0, :2] = True; masks[1, :1] = True
    >>> constant_prediction_iou(masks)
    0.375
    """
    masks = np.asarray(masks)
    if masks.ndim != 3 or not len(masks):
        raise ValueError(f"masks: expected a non-empty (N, H, W) array, got shape {masks.shape}")
    return float(masks.astype(bool).reshape(len(masks), -1).mean(axis=1).mean())


def degenerate(clean_iou, constant_iou, *, margin: float = DEGENERATE_MARGIN):
    """Elementwise: whether a clean IoU beats the constant prediction's (`constant_prediction_iou`) by
    no more than `margin` (a model that predicts every pixel foreground, or none)."""
    margin = check_real("margin", margin, low=0.0)
    return np.asarray(clean_iou, dtype=float) <= np.asarray(constant_iou, dtype=float) + margin


def attack_check(checks: pd.DataFrame, *, by: Sequence[str] = ("model",)) -> pd.DataFrame:
    """One verdict per group of `by` (default: per model, over its structures) from the rows of
    `diagnose` with an ``apgd_converged`` column: `DEGENERATE` where a row's ``degenerate`` column
    (optional: the clean IoU no better than `constant_prediction_iou`) holds, else `MASKING` where any
    row is suspected of gradient masking, else `NOT_CONVERGED` where the attack had not converged on
    any row, else `PASSES`. Only a model that passes has a robust IoU that measures it; the others'
    is an upper bound, or meaningless.

    Examples
    --------
    >>> rows = pd.DataFrame({"model": ["a", "a", "b", "c"], "verdict": [PASSES, PASSES, PASSES, MASKING],
    ...                      "apgd_converged": [True, False, True, True]})
    >>> attack_check(rows).attack_check.tolist()
    ['not converged (upper bound)', 'passes', 'gradient masking suspected']
    """
    missing = {"verdict", "apgd_converged", *by} - set(checks.columns)
    if missing:
        raise ValueError(f"checks: no column(s) {sorted(missing)} (rows of diagnose with apgd_converged)")

    def worst(part: pd.DataFrame) -> str:
        if "degenerate" in part and part.degenerate.astype(bool).any():
            return DEGENERATE
        if (part.verdict == MASKING).any():
            return MASKING
        return PASSES if part.apgd_converged.astype(bool).all() else NOT_CONVERGED

    groups = checks.groupby(list(by), sort=True)
    return pd.DataFrame([{**dict(zip(by, key if isinstance(key, tuple) else (key,))), "attack_check": worst(part)}
                         for key, part in groups])


def _curve(means: pd.Series, attack: str) -> pd.Series | None:
    """Mean IoU against the budget of `attack`, or None when it was not run."""
    return means.loc[attack] if attack in means.index.get_level_values("attack") else None


def _no_better_than(white_box: pd.Series, other: pd.Series | None, tol: float) -> bool | None:
    """True when `other` never lowers the IoU more than the white-box attack (None: not run)."""
    if other is None:
        return None
    common = white_box.index.intersection(other.index)
    return bool((white_box.loc[common] <= other.loc[common] + tol).all())
