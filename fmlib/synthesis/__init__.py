"""Physics-based synthesis of fluorescence microscopy images with exact ground truth.

structures (masks and fluorophore density) -> optics (PSF) -> camera (photons, noise, ADU).

`registry` names the structures and their microscopes, `datasets` simulates them (`make_dataset`,
`iter_images`) and maps raw counts to display images, `tiff` writes and reads datasets, `snr`
measures the SNR of images.
"""

from .camera import (
    CAMERAS,
    Camera,
    expose,
    fit_photon_transfer,
    flat_field_pairs,
    get_camera,
    photon_transfer,
    photon_transfer_table,
    signal_for_snr,
    snr_from_levels,
    to_electrons,
)
from .datasets import (
    DISPLAY_BLACK,
    DISPLAY_SIGNAL,
    PHYSICS_DEFAULTS,
    Dataset,
    display_from_raw,
    iter_images,
    make_dataset,
)
from .optics import MODALITIES, Optics, depth_of_field_um, gaussian_psf_sigma_px, psf_image, pupil_psf
from .registry import STRUCTURES, list_structures
from .snr import estimate_snr, measure_snr
from .tiff import load_tiff, save_tiff

__all__ = [
    "CAMERAS", "Camera", "DISPLAY_BLACK", "DISPLAY_SIGNAL", "Dataset", "MODALITIES", "Optics",
    "PHYSICS_DEFAULTS", "STRUCTURES", "depth_of_field_um", "display_from_raw", "estimate_snr", "expose",
    "fit_photon_transfer", "flat_field_pairs", "gaussian_psf_sigma_px", "get_camera", "iter_images",
    "list_structures", "load_tiff", "make_dataset", "measure_snr", "photon_transfer", "photon_transfer_table",
    "psf_image", "pupil_psf", "save_tiff", "signal_for_snr", "snr_from_levels", "to_electrons",
]
