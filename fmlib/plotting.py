"""Small helpers for the book's figures (no analysis here: only how things are drawn)."""

from __future__ import annotations

import numpy as np
from skimage.segmentation import find_boundaries


def outline(image: np.ndarray, mask: np.ndarray, color: tuple[float, float, float] = (1.0, 0.2, 0.2)) -> np.ndarray:
    """An RGB copy of a grey image in [0, 1] with the boundary of `mask` drawn in `color`."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 2 or np.shape(mask) != image.shape:
        raise ValueError(f"mask: expected a 2D mask of the image's shape {image.shape}, got {np.shape(mask)}")
    rgb = np.repeat(np.clip(image, 0, 1)[..., None], 3, axis=-1)
    rgb[find_boundaries(np.asarray(mask), mode="inner")] = color
    return rgb


def scale_bar(ax, pixel_size_um: float, length_um: float, image_height_px: int, *, color: str = "w") -> None:
    """Draw a `length_um` scale bar in the lower left corner of an image axis."""
    ax.plot([4, 4 + length_um / pixel_size_um], [image_height_px - 5] * 2, color=color, lw=3)
    ax.text(4, image_height_px - 8, f"{length_um:g} µm", color=color, fontsize=8)
