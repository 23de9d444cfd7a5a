"""Segmentation models: a registry of named constructors in the manner of timm and smp.

``create_model(name, in_channels=1, classes=1, width=1.0)`` returns a `Segmenter`: it takes
(N, 1, H, W) images in [0, 1] (H and W multiples of 32), normalizes each image to zero mean and unit
variance inside the model (as the paper's code did before the network), and returns (N, 1, H, W)
logits. Attacks and corruptions therefore act in image-intensity space whatever the model.

Every model is built from scratch (random weights; nothing is downloaded).
"""

from .bpda import has_straight_through, straight_through
from .registry import (
    MODELS,
    ModelSpec,
    Segmenter,
    count_flops,
    count_parameters,
    create_model,
    list_models,
    zscore,
)

# Importing the modules registers their models, in the order of the book's tables.
from . import unet, vgg, resnet_models, transformers  # noqa: E402,F401  isort: skip

__all__ = ["MODELS", "ModelSpec", "Segmenter", "count_flops", "count_parameters", "create_model", "list_models",
           "zscore", "has_straight_through", "straight_through"]
