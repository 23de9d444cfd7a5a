"""Argument checks shared by the public API.

Every public function validates its arguments at the top and raises ``ValueError`` naming the
argument and what was expected, so a wrong call fails at once with a message a user can act on.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from numbers import Integral, Real

import numpy as np


def as_rng(rng: int | np.random.Generator | np.random.SeedSequence | None) -> np.random.Generator:
    """Return a ``numpy.random.Generator`` from a seed, a generator, a seed sequence or None."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (Integral, np.random.SeedSequence)):
        if isinstance(rng, Integral) and not isinstance(rng, bool) and rng < 0:
            raise ValueError(f"rng: expected a non-negative integer seed, got {rng}")
        return np.random.default_rng(rng)
    raise ValueError(f"rng: expected an int seed, a numpy.random.Generator or None, got {type(rng).__name__}")


def check_real(name: str, value, *, low: float | None = None, high: float | None = None,
               low_inclusive: bool = True, high_inclusive: bool = True) -> float:
    """Check that `value` is a finite real number within the given bounds and return it as float."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{name}: expected a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value}")
    if low is not None and (value < low or (value == low and not low_inclusive)):
        raise ValueError(f"{name}: expected {'>=' if low_inclusive else '>'} {low}, got {value}")
    if high is not None and (value > high or (value == high and not high_inclusive)):
        raise ValueError(f"{name}: expected {'<=' if high_inclusive else '<'} {high}, got {value}")
    return value


def check_int(name: str, value, *, low: int | None = None, high: int | None = None) -> int:
    """Check that `value` is an integer within [low, high] and return it as int."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name}: expected an integer <= {high}, got {value}")
    return value


def check_range(name: str, value, *, low: float = 0.0, low_inclusive: bool = False) -> tuple[float, float]:
    """Check a ``(min, max)`` pair of finite numbers with ``low <= min <= max``."""
    if not isinstance(value, Iterable) or isinstance(value, (str, bytes)):
        raise ValueError(f"{name}: expected a (min, max) pair, got {value!r}")
    pair = tuple(value)
    if len(pair) != 2:
        raise ValueError(f"{name}: expected a (min, max) pair, got {value!r}")
    lo = check_real(f"{name}[0]", pair[0], low=low, low_inclusive=low_inclusive)
    hi = check_real(f"{name}[1]", pair[1], low=low, low_inclusive=low_inclusive)
    if hi < lo:
        raise ValueError(f"{name}: expected min <= max, got {value!r}")
    return lo, hi


def check_choice(name: str, value, choices: Iterable[str]) -> str:
    """Check that `value` is one of `choices`; the message lists the valid names."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"{name}: unknown value {value!r}; expected one of {', '.join(map(repr, choices))}")
    return value


def check_array(name: str, array, *, ndim: tuple[int, ...], finite: bool = True,
                nonnegative: bool = False) -> np.ndarray:
    """Check an array's number of dimensions and values; return it as an ndarray (no copy)."""
    array = np.asarray(array)
    if array.ndim not in ndim:
        dims = " or ".join(str(d) for d in ndim)
        raise ValueError(f"{name}: expected an array with {dims} dimensions, got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ValueError(f"{name}: expected a numeric array, got dtype {array.dtype}")
    if finite and np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise ValueError(f"{name}: expected finite values, found NaN or infinity")
    if nonnegative and array.size and array.min() < 0:
        raise ValueError(f"{name}: expected non-negative values, found minimum {array.min()}")
    return array
