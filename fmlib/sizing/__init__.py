"""Object size at inference: bring a real image to the nucleus diameter a model was trained on.

A segmentation network learns objects at the sizes in pixels that its training images show. Real
nuclei come at other sizes (another objective, another camera, another cell type), and a model
meeting nuclei twice as wide as any it saw splits or hollows them. The field's answer is to measure
the objects first and resample the image to the training diameter, as Cellpose does with its size
model (Stringer et al. 2021) before it segments. Here the measurement needs no labels: the median
equivalent diameter of the convex objects above an Otsu threshold, away from the image border
(`estimate_diameter_px`). The target is measured the same way on wide simulated fields of the
model's training physics (`wide_fields`), not on its training tiles: in a tile a few nuclei wide,
the nuclei cut by the border, which every size measurement leaves out, are the large ones, so a
tile's median reads low (96 px tiles of the standard profile read 14 px by their exact labels, wide
fields of the same physics 17 px). The model then runs on the resampled image, and its logits are
resampled back, so that predictions are scored on the native grid against the native labels (nothing
about the reference changes).

This module is a step *before* a model, not a model: it never reads reference labels.
"""

from .diameters import (
    checked_factor,
    diameter_estimates,
    estimate_diameter_px,
    size_factor,
    trained_diameter_range,
    weighted_median,
    wide_fields,
)
from .prediction import (
    SIDE_MULTIPLE,
    SizeNormalizer,
    instances_at_scale,
    predict_at_diameter,
    predict_logits_at_scale,
    rescaled_predictions,
    scaled_logits,
    tile_predictions,
)

__all__ = [
    "SIDE_MULTIPLE",
    "SizeNormalizer",
    "checked_factor",
    "diameter_estimates",
    "estimate_diameter_px",
    "instances_at_scale",
    "predict_at_diameter",
    "predict_logits_at_scale",
    "rescaled_predictions",
    "scaled_logits",
    "size_factor",
    "tile_predictions",
    "trained_diameter_range",
    "weighted_median",
    "wide_fields",
]
