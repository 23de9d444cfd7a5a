"""The display mapping of images whose intensity range is not set by the simulator.

Real images, and synthetic images whose acquisition is randomized (`fmlib.domain`), are mapped to
[0, 1] by their own percentiles: the ``LOW_PERCENTILE`` of the image goes to ``LOW_LEVEL`` and the
``HIGH_PERCENTILE`` to ``HIGH_LEVEL``, the levels of the simulator's fixed display of the clean
synthetic images, linearly, and what falls outside [0, 1] is clipped and counted.
"""

from __future__ import annotations

import numpy as np

LOW_PERCENTILE, HIGH_PERCENTILE = 0.5, 99.8
LOW_LEVEL, HIGH_LEVEL = 0.1, 0.9


def normalize(raw: np.ndarray) -> tuple[np.ndarray, float]:
    """Percentile normalization of an image (module docstring); returns (image, clipped fraction).

    Examples
    --------
    >>> image, clipped = normalize(np.arange(1000.0).reshape(20, 50))
    >>> round(float(image.min()), 3), round(float(image.max()), 3), clipped > 0
    (0.096, 0.902, False)
    """
    raw = np.asarray(raw, dtype=np.float64)
    lo, hi = np.percentile(raw, [LOW_PERCENTILE, HIGH_PERCENTILE])
    scaled = LOW_LEVEL + (HIGH_LEVEL - LOW_LEVEL) * (raw - lo) / max(hi - lo, 1e-12)
    clipped = float(((scaled < 0) | (scaled > 1)).mean())
    return np.clip(scaled, 0, 1).astype(np.float32), clipped
