"""Assess your own model: the study's assay applied to any segmentation network.

`assess` runs a model through the same test set, corruptions (every severity) and attacks (every
budget) as the study's notebooks at a profile, and returns the same tidy tables. `compare` ranks it
among the study's reference models (``results/<profile>/``), and `findings` applies the book's
rules to it. The contract of a model:

    float images (N, 1, H, W) in [0, 1]  ->  foreground logits (N, 1, H, W), H and W multiples of 32,
    differentiable with respect to the input (the attacks need its gradient).

`resolution` says whether the model's output grid (its output stride) limits it on the structure.
`Adapter` (`fmlib.assay.adapters`) wraps models with other conventions: two-channel softmax outputs
(``output="softmax2"``),
sigmoid probabilities (``output="probabilities"``), three-channel input (``in_channels=3``) and their
own input normalization (``normalization="zscore"``, ``"imagenet"`` or ``(mean, std)``).

**Safety.** A TorchScript file or an import path (``package.module:factory``) runs its author's code
when loaded: load only models you trust. State dicts load with ``torch.load(weights_only=True)``.

Examples
--------
>>> from fmlib.models import create_model
>>> result = assess(create_model("sim_unet"), "nuclei", profile="smoke", progress=False)  # doctest: +SKIP
>>> result.summary[["clean_iou", "corruption_robustness", "adversarial_robustness"]]  # doctest: +SKIP
"""

from ..evaluation import with_robustness  # the notebook's name for the study's ratio column
from .adapters import (
    CONTRACT,
    IMAGENET_MEAN_STD,
    NORMALIZATIONS,
    OUTPUTS,
    Adapter,
    check_contract,
    load_user_model,
)
from .assess import (
    AssayResult,
    assess,
    demo_model,
    headline_attack,
    images_of,
    real_scores,
    worst_failures,
)
from .compare import compare, findings, reference_tables, resolution

__all__ = ["CONTRACT", "IMAGENET_MEAN_STD", "NORMALIZATIONS", "OUTPUTS", "Adapter", "AssayResult", "assess",
           "check_contract", "compare", "demo_model", "findings", "headline_attack", "images_of", "load_user_model",
           "real_scores", "reference_tables", "resolution", "with_robustness", "worst_failures"]
