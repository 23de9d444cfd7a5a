"""Artifact corruptions: fixed-pattern stripes of the sensor and the scan."""

from __future__ import annotations

from .acquisition import _each
from .registry import register_corruption


@register_corruption("stripes", "artifacts", "column offset sigma", "grey level (image in [0, 1])",
                     (0.01, 0.02, 0.04, 0.06, 0.1),
                     "sCMOS column fixed-pattern noise plus scan-line (row) offsets of half that size.")
def _stripes(x, sigma, rngs, acq):
    h, w = x.shape[1:]

    def one(image, rng):
        offsets = rng.normal(0.0, sigma, size=w + h)
        return image + offsets[None, :w] + 0.5 * offsets[w:, None]

    return _each(x, rngs, one)
