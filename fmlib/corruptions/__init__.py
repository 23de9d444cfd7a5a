"""Fluorescence-microscopy corruptions at graded severities.

A registry of degradations that happen at the microscope, in five families (noise, optics,
illumination, sampling, artifacts). Each has severities 1-5 defined by one physical or
image-processing parameter (``CORRUPTIONS[name].severities``), and severity 0 is the identity.

``corrupt(image, name, severity, rng)`` takes float images in [0, 1], (H, W) or (N, H, W), and
returns the same shape and dtype. Results are clipped to [0, 1] like the display of the synthetic
images (`fmlib.synthesis`): a corruption that pushes values out of range saturates, as an 8-bit
display would.

Physical corruptions work in photo-electrons. Given a synthesis `Dataset` (``dataset=``), they
start from its raw counts and camera; otherwise the image is read as a display-mapped image of the
reference acquisition: an sCMOS camera at SNR 8 with a background of 0.15 of the signal, imaged
with a 1.4 NA oil objective at 0.1 µm pixels. Fewer photons are simulated by thinning: keeping a
fraction ``f`` of the detected electrons and topping up the read noise gives exactly the mean and
variance of a fresh acquisition with ``f`` times the photons.

Randomness: image ``i`` of a batch uses the ``i``-th generator spawned from `rng`, so a batch
equals the stack of its images corrupted one by one with the same generator object.

Layout: `registry` (the `Corruption` records, in registration order), `acquisition` (the
reference acquisition, electrons <-> display, photon thinning), one module per family (`noise`,
`optics`, `illumination`, `sampling`, `artifacts`) and `apply` (`corrupt`, `corrupt_dataset`).
"""

from .acquisition import (
    REFERENCE_BACKGROUND_RATIO,
    REFERENCE_CAMERA,
    REFERENCE_OPTICS,
    REFERENCE_PIXEL_UM,
    REFERENCE_SNR,
)
from .apply import corrupt, corrupt_dataset
from .quality import cancelled_corruptions, normalization_change, quality_table
from .registry import (
    CORRUPTIONS,
    FAMILIES,
    SEVERITIES,
    Corruption,
    describe_corruptions,
    list_corruptions,
)

# Importing the family modules registers their corruptions, in the order of FAMILIES and of the
# book's tables (the order of `list_corruptions`).
from . import noise, optics, illumination, sampling, artifacts  # noqa: E402,F401  isort: skip

__all__ = [
    "CORRUPTIONS", "Corruption", "FAMILIES", "REFERENCE_BACKGROUND_RATIO", "REFERENCE_CAMERA", "REFERENCE_OPTICS",
    "REFERENCE_PIXEL_UM", "REFERENCE_SNR", "SEVERITIES", "corrupt", "corrupt_dataset", "describe_corruptions",
    "list_corruptions", "quality_table", "cancelled_corruptions",
    "normalization_change",
]
