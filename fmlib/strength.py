"""Evidence of an attack's strength, per model: is the robust IoU a worst case or an artefact?

A robust score means something only if the attack behind it is strong. Reviewers check first
(Carlini et al. 2019, "On evaluating adversarial robustness"; Croce & Hein 2020):

- the attack has converged: more iterations no longer lower the IoU (`converged`);
- the damage grows with the budget (`monotone in eps`);
- iterative attacks do at least as well as a single step, and every attack better than random noise
  of the same budget;
- a white-box attack does at least as well as examples transferred from another model.

Budgets mean little without a scale: `fmlib.threat_models.budget_units` gives each one as a multiple
of the images' own noise and of their standard deviation (the paper's "/std" units).

A model on which a weaker attack (one step, noise, or a transfer) lowers the IoU more than the
white-box attack has gradients that mislead the attack: "gradient masking suspected". A model on
which the attack was still gaining when it stopped is "not converged". Either way its robust IoU is
an upper bound, not a measurement, and the book does not call it robust (`attack_check`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ._checks import check_int, check_real
from .attacks.convergence import converged, tail_drop  # noqa: F401 (part of this module's API)
from .metrics import bootstrap_ci, bootstrap_scores

MASKING = "gradient masking suspected"
DEGENERATE = "no better than a constant prediction on a structure"
NOT_CONVERGED = "not converged (upper bound)"
PASSES = "passes"
DEGENERATE_MARGIN = 0.02  # IoU: a clean score within this of a constant prediction's has learnt nothing


def trace_points(steps: int) -> list[int]:
    """The iterations at which an attack's IoU curve is kept in the study's tables (0: before the first
    step): a dozen points, denser early, where the IoU falls fastest, and always the last.

    >>> trace_points(100)
    [0, 1, 2, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    """
    steps = check_int("steps", steps, low=1)
    fractions = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    return sorted({0, *(max(1, round(f * steps)) for f in fractions)})


def sample_trace(trace: Sequence[float], steps: int) -> list[float]:
    """`trace` (the mean best IoU after each iteration, from iteration 0; an attack that stopped early,
    every image fooled, keeps its last value) at `trace_points`.

    >>> sample_trace([0.9, 0.5, 0.2], 4)
    [0.9, 0.5, 0.2, 0.2, 0.2]
    """
    trace = list(trace)
    if not trace:
        raise ValueError("trace: expected at least the IoU before the first iteration")
    return [float(trace[min(k, len(trace) - 1)]) for k in trace_points(steps)]


def iteration_curves(robust: pd.DataFrame, *, by: Sequence[str] = ("model", "structure")) -> pd.DataFrame:
    """IoU against the iteration count of each APGD member of the ensemble, from the ``apgd_trace``
    column of `fmlib.evaluation.robust_table` rows (a JSON map member -> IoU at `trace_points`, one per
    batch of images): one row per group of `by`, budget, member and iteration, with the mean over
    batches (each batch weighs the same). Each member's curve is the mean best IoU of the images it
    attacked, those that the members before it had not fully fooled. Has the attack converged? The
    curve says it, beside the single number of `tail_drop`. Pass every column that tells batches
    apart (a ``seed``, a ``regime``) in `by`.
    """
    missing = {"apgd_trace", "eps_255", *by} - set(robust.columns)
    if missing:
        raise ValueError(f"robust: no column(s) {sorted(missing)} (rows of fmlib.evaluation.robust_table)")
    rows = []
    keys = [*by, "eps_255", "apgd_trace"]
    for values in robust[keys].drop_duplicates().itertuples(index=False):
        group = dict(zip(keys[:-1], values[:-1]))
        payload = json.loads(values[-1])
        for member, curve in payload["traces"].items():
            rows += [{**group, "member": member, "iteration": k, "iou": v}
                     for k, v in zip(payload["iterations"], curve)]
    table = pd.DataFrame(rows, columns=[*by, "eps_255", "member", "iteration", "iou"])
    return table.groupby([*by, "eps_255", "member", "iteration"], as_index=False).iou.mean()


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
        (the same checks of PGD alone; None where PGD was not run) and ``clean_iou``.

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
    return checks.merge(clean, on=by)


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
