"""Shared timing helper of the benchmarks."""

from __future__ import annotations

import time


def best_of(fn, repeat: int, warmup: bool = True) -> float:
    """Best wall time of `repeat` calls of `fn` (seconds), after one untimed warm-up call."""
    if warmup:
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)
