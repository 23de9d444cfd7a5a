"""A synthetic acquisition matched to a user's images: the simulator at the physics that
`fmlib.acquisition` estimated from them, with exact masks.

`matched_physics` turns an estimate table into the simulator's parameters:

- ``snr``: the estimated SNR (within the simulator's range);
- the camera: an sCMOS-like camera whose gain is the noise slope, whose offset is the noise model's
  zero level and whose read noise is what remains of the intercept at that level;
- ``background_ratio``: the estimated background over the foreground step, less the simulator's
  autofluorescence (which the estimate contains);
- ``pixel_size_um`` (nuclei): the structure's default, scaled so that the simulated nuclei have the
  estimated diameter in pixels;
- ``defocus_um``: the defocus at which the simulator's images *read* the estimated PSF width, found
  by simulating a ladder of defocus values and measuring them the same way (`calibrated_defocus`):
  the edge-slope estimate reads wide blur low on small objects, and a calibration through the same
  estimator cancels that bias instead of inverting the optics alone; none where the width is at the
  pixel scale (the estimate is then a bound).

`matched_dataset` simulates images at those physics. The realism report (`fmlib.realism`) then says
how far they are from the user's images; a recommendation rests on them only where that distance is
small (the advice's refusal).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pandas as pd

from .acquisition import MIN_RESOLVED_SIGMA_PX, blur_sigma_px
from .sizing import estimate_diameter_px
from .synthesis import STRUCTURES, Camera, Dataset, Optics, make_dataset

#: The simulator's SNR range that a matched set may ask for.
SNR_RANGE = (0.5, 50.0)
#: Autofluorescence per foreground electron in the simulator's default physics (in the estimate's background).
DEFAULT_AUTOFLUORESCENCE = 0.05


def _value(table: pd.DataFrame, quantity: str) -> float:
    rows = table[table.quantity == quantity]
    if rows.empty:
        raise ValueError(f"table: no {quantity!r} row; expected the output of fmlib.acquisition.estimate")
    return float(rows.estimate.iloc[0])


@lru_cache(maxsize=8)
def default_diameter_px(structure: str, size: int = 256, seed: int = 0) -> float:
    """The median object diameter in pixels of the simulator's default physics for `structure`,
    measured label-free as on the user's images (`fmlib.sizing.estimate_diameter_px`) on wide fields."""
    return estimate_diameter_px(make_dataset(structure, 4, size, snr=8.0, seed=seed).images)


def defocus_for_sigma(sigma_um: float, optics: Optics) -> float:
    """The defocus (µm) whose Gaussian PSF under `optics` has standard deviation `sigma_um`; 0 where the
    in-focus PSF is already as wide.

    Examples
    --------
    >>> optics = Optics(461.0, 0.75, 1.0)
    >>> round(defocus_for_sigma(Optics(461.0, 0.75, 1.0, defocus_um=2.0).psf_sigma_um, optics), 6)
    2.0
    """
    in_focus = Optics(optics.wavelength_nm, optics.numerical_aperture, optics.refractive_index, optics.modality)
    extra = sigma_um**2 - in_focus.psf_sigma_um**2
    if extra <= 0:
        return 0.0
    half_angle = math.asin(optics.numerical_aperture / optics.refractive_index)
    return 2.0 * math.sqrt(extra) / math.tan(half_angle)


#: Defocus values (µm) simulated to calibrate the PSF width that the estimator reads.
DEFOCUS_LADDER_UM = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


def calibrated_defocus(sigma_px: float, structure: str, *, pixel_size_um: float, snr: float, size: int = 128,
                       n_images: int = 3, seed: int = 0) -> float:
    """The defocus (µm) whose simulated images of `structure`, at this pixel size and SNR, read a PSF
    width of `sigma_px` with `fmlib.acquisition.blur_sigma_px`: the read widths of `DEFOCUS_LADDER_UM`,
    made monotone, interpolated linearly (clipped to the ladder's ends)."""
    read = np.array([np.nanmedian(blur_sigma_px(make_dataset(structure, n_images, size, snr=snr, seed=seed,
                                                             pixel_size_um=pixel_size_um, defocus_um=d).raw))
                     for d in DEFOCUS_LADDER_UM])
    read = np.maximum.accumulate(read)  # the estimator's noise must not fold the ladder back
    return float(np.interp(sigma_px, read, DEFOCUS_LADDER_UM))


def matched_physics(table: pd.DataFrame, structure: str) -> dict:
    """The simulator's parameters (`fmlib.synthesis.make_dataset` keywords, ``snr`` among them) that
    imitate the acquisition estimated in `table` (`fmlib.acquisition.estimate`)."""
    if structure not in STRUCTURES:
        raise ValueError(f"structure: expected one of {sorted(STRUCTURES)}, got {structure!r}")
    spec = STRUCTURES[structure]
    slope, intercept, zero = (_value(table, q) for q in ("noise_slope", "noise_intercept", "zero_level"))
    if not slope > 0:
        raise ValueError(f"table: a noise slope of {slope} counts per electron cannot be simulated")
    read_variance = max(intercept + slope * zero - 1.0 / 12.0, 0.0)  # counts², at the zero level
    camera = Camera(name="matched", quantum_efficiency=0.82, read_noise_e=math.sqrt(read_variance) / slope,
                    gain_adu_per_e=slope, offset_adu=float(np.clip(zero, 0.0, 30000.0)), bit_depth=16)
    diameter = _value(table, "diameter_px")
    pixel_size = spec.pixel_size_um
    if np.isfinite(diameter) and diameter > 0:
        pixel_size = spec.pixel_size_um * default_diameter_px(structure) / diameter
    sigma_px = _value(table, "blur_sigma_px")
    ratio = _value(table, "background_ratio")
    background = max(ratio - DEFAULT_AUTOFLUORESCENCE, 0.0) if np.isfinite(ratio) else 0.1
    snr = float(np.clip(_value(table, "snr"), *SNR_RANGE))
    resolved = np.isfinite(sigma_px) and sigma_px > MIN_RESOLVED_SIGMA_PX
    defocus = calibrated_defocus(sigma_px, structure, pixel_size_um=pixel_size, snr=snr) if resolved else 0.0
    return {"snr": snr, "camera": camera, "pixel_size_um": float(pixel_size), "defocus_um": float(defocus),
            "background_ratio": float(background)}


def matched_dataset(table: pd.DataFrame, structure: str, n: int, size: int, *, seed: int = 0) -> Dataset:
    """`n` images of `size` px of `structure`, simulated at `matched_physics`, with exact masks."""
    physics = matched_physics(table, structure)
    snr = physics.pop("snr")
    return make_dataset(structure, n, size, snr=snr, seed=seed, **physics)
