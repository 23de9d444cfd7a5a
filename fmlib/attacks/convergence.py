"""Has an iterative attack converged? Read from its IoU-against-iteration curve.

An attack that was still lowering the IoU when it stopped gives an upper bound on the robust IoU,
not a measurement (Carlini et al. 2019). The ensemble (`fmlib.attacks.worst_case`) uses this test to
run an APGD attack on until it has flattened, and `fmlib.strength` to label what it reports.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._checks import check_real

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
