"""Has an iterative attack converged? Read from its IoU-against-iteration curve.

An attack that was still lowering the IoU when it stopped gives an upper bound on the robust IoU,
not a measurement (Carlini et al. 2019). The ensemble (`fmlib.attacks.worst_case`) uses this test to
run an APGD attack on until it has flattened, and `fmlib.strength` to label what it reports; the study's
tables keep each curve at a dozen points (`trace_points`), which `iteration_curves` reads back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .._checks import check_int, check_real

#: The share of the iterations at the end of a curve that `converged` looks at, and how far (IoU)
#: the curve may still fall over them.
TAIL = 0.25
TOL = 0.01


def tail_drop(trace: Sequence[float], *, tail: float = TAIL) -> float:
    """How much an attack's IoU-against-iteration curve (`trace`, the mean best IoU after each
    iteration) still fell over its last `tail` of the iterations, in IoU: roughly what as many
    iterations again would still take off an attack that has not converged (0 when flat; NaN for a
    trace of fewer than two points).

    >>> round(tail_drop([0.9, 0.6, 0.5, 0.45, 0.44]), 3)
    0.01
    """
    trace = np.asarray(trace, dtype=float)
    check_real("tail", tail, low=0.0, high=1.0, low_inclusive=False)
    if len(trace) < 2:
        return float("nan")
    start = trace[min(len(trace) - 1, int(np.floor((1 - tail) * (len(trace) - 1))))]
    return float(start - trace[-1])


def converged(trace: Sequence[float], *, tail: float = TAIL, tol: float = TOL) -> bool:
    """Whether an attack's IoU-against-iteration curve (`trace`, the mean best IoU after each
    iteration) has flattened: the last `tail` of the iterations lowered it by at most `tol`
    (`tail_drop`).

    >>> converged([0.9, 0.5, 0.3, 0.3, 0.3]), converged([0.9, 0.8, 0.7, 0.6, 0.5])
    (True, False)
    """
    drop = tail_drop(trace, tail=tail)
    return bool(np.isfinite(drop) and drop <= tol)


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
