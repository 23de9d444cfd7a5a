"""The acquisition behind unlabelled fluorescence images, estimated from the images alone.

A user who asks which model suits *their* microscope has images, not labels and not a camera
calibration. This module reads from raw images (counts as the camera wrote them, any bit depth) what
the simulator needs to imitate them (`fmlib.synthesis`), each estimate with a 95 % bootstrap interval
over the images:

- the noise model, ``variance = slope * mean + intercept`` in counts (`noise_model`): a photon-transfer
  curve from each image alone, from the high-pass residual in flat patches (`fmlib.realism.noise_curve`,
  in the manner of Foi et al. 2008). For a camera with shot and read noise the slope is the gain times
  the excess noise factor (counts per electron; 2 for an EMCCD), and the intercept is the read
  variance less ``slope * offset``;
- the SNR as `fmlib.synthesis` defines it (`snr`): the foreground's mean step over the background,
  over the noise at the foreground level, the foreground being an Otsu threshold of the smoothed image;
- the background (`background`): its level above the camera offset (the zero of the noise model,
  `zero_level`) and its unevenness, the relative range of a quadratic surface fitted to the
  background pixels;
- the blur (`blur_sigma_px`): the Gaussian PSF width that turns the objects' step edges into the edge
  slopes measured (for a step of height h blurred by sigma, the steepest slope is h / (sigma sqrt(2 pi)));
  an edge cannot be resolved below about half a pixel, so smaller values read as "at most" that;
- the object diameter in pixels (`fmlib.sizing.estimate_diameter_px`).

`estimate` gathers them in one table. Every estimator is tested on simulated images whose physics are
known, across the study's ranges, with a stated tolerance (``tests/test_acquisition.py``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy import ndimage
from skimage.filters import threshold_otsu

from ._checks import as_rng, check_array, check_int
from .realism import noise_curve
from .sizing import estimate_diameter_px

#: Gaussian smoothing (px) before thresholding the foreground and before measuring edge slopes.
SMOOTH_PX = 1.0
#: Below this PSF width (px) an edge is set by the pixel grid, not the optics: reported as at most this.
MIN_RESOLVED_SIGMA_PX = 0.5


def _stack(images) -> np.ndarray:
    x = check_array("images", images, ndim=(2, 3)).astype(np.float64)
    return x[None] if x.ndim == 2 else x


def _interval(values: np.ndarray, statistic: Callable[[np.ndarray], float], n_boot: int, seed: int) -> tuple:
    """The statistic of the per-image `values` and its 95 % bootstrap interval over images (a single
    image has no interval: NaN)."""
    values = np.asarray(values, dtype=np.float64)
    with warnings.catch_warnings():  # a quantity no image could give (all NaN) is NaN, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        estimate = float(statistic(values))
        if len(values) < 2 or not np.isfinite(values).any():
            return estimate, float("nan"), float("nan")
        rng = as_rng(seed)
        boots = [statistic(values[rng.integers(0, len(values), len(values))]) for _ in range(n_boot)]
        low, high = np.nanquantile(boots, [0.025, 0.975])
    return estimate, float(low), float(high)


def foreground(image: np.ndarray) -> np.ndarray:
    """The foreground of one image: its Gaussian-smoothed (`SMOOTH_PX`) intensities above Otsu's threshold."""
    smooth = ndimage.gaussian_filter(np.asarray(image, dtype=np.float64), SMOOTH_PX)
    return smooth > threshold_otsu(smooth)


def noise_model(images, *, patch: int = 8, n_bins: int = 8) -> pd.DataFrame:
    """Per image, ``slope`` and ``intercept`` of its noise variance against its local mean, in counts
    (NaN for an image with too few flat patches; an error when no image has enough).

    Examples
    --------
    >>> from fmlib.synthesis import make_dataset
    >>> raw = make_dataset("nuclei", 2, 128, snr=8, seed=0).raw
    >>> model = noise_model(raw)
    >>> bool(abs(model.slope.median() - 2.0) < 0.5)  # the sCMOS camera: 2 counts per electron
    True
    """
    x = _stack(images)
    rows = []
    for k, image in enumerate(x):
        try:
            _, fit = noise_curve(image, patch=patch, n_bins=n_bins, normalize=False)
        except ValueError:  # too few flat patches in this image (crowded or textured): the others decide
            fit = {"slope": float("nan"), "intercept": float("nan")}
        rows.append({"image": k, **fit})
    table = pd.DataFrame(rows)
    if table.slope.isna().all():
        raise ValueError(f"images: no image has {n_bins} flat {patch} x {patch} patches to measure its noise in; "
                         "give larger or less crowded images")
    return table


def _levels(image: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Mean foreground and background intensity; the background leaves a ring of 3 px around the objects."""
    near = ndimage.binary_dilation(mask, iterations=3)
    return float(image[mask].mean()), float(image[~near].mean()) if (~near).any() else float("nan")


def snr(images, noise: pd.DataFrame) -> np.ndarray:
    """Per image, ``(mean foreground - mean background) / sqrt(slope * mean foreground + intercept)``:
    the SNR of `fmlib.synthesis` (the step over the noise on the foreground), from the images alone."""
    x = _stack(images)
    out = []
    for image, fit in zip(x, noise.itertuples()):
        fg, bg = _levels(image, foreground(image))
        variance = fit.slope * fg + fit.intercept
        out.append((fg - bg) / np.sqrt(variance) if variance > 0 else float("nan"))
    return np.asarray(out)


def zero_level(noise: pd.DataFrame) -> np.ndarray:
    """Per image, the intensity at which its noise model's shot noise vanishes, ``-intercept / slope``:
    the camera offset, up to the read variance over the slope (a few counts on the study's cameras)."""
    return -noise.intercept.to_numpy() / noise.slope.to_numpy()


def background(images, noise: pd.DataFrame) -> pd.DataFrame:
    """Per image, the background ``level`` above the noise model's zero level (`zero_level`: the offset),
    relative to the foreground's step (``ratio``, the simulator's ``background_ratio`` plus its
    autofluorescence), and its ``unevenness``: the range (5th to 95th percentile) of a quadratic
    surface fitted to the background pixels, over the surface's mean above the zero level."""
    x = _stack(images)
    rows = []
    for image, zero in zip(x, zero_level(noise)):
        mask = foreground(image)
        near = ndimage.binary_dilation(mask, iterations=3)
        fg, bg = _levels(image, mask)
        yy, xx = np.nonzero(~near)
        h, w = image.shape
        u, v = yy / h - 0.5, xx / w - 0.5
        design = np.stack([np.ones_like(u), u, v, u * u, u * v, v * v], axis=1)
        coef, *_ = np.linalg.lstsq(design, image[~near] - zero, rcond=None)
        gu, gv = (g - 0.5 for g in np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None])
        surface = coef[0] + coef[1] * gu + coef[2] * gv + coef[3] * gu * gu + coef[4] * gu * gv + coef[5] * gv * gv
        low, high = np.quantile(surface, [0.05, 0.95])
        level = bg - zero
        rows.append({"level": level, "ratio": level / (fg - bg) if fg > bg else float("nan"),
                     "unevenness": float((high - low) / max(surface.mean(), 1e-12))})
    return pd.DataFrame(rows)


def blur_sigma_px(images) -> np.ndarray:
    """Per image, the Gaussian PSF width in pixels that matches its objects' steepest edge slopes.

    On the boundary of the foreground, the gradient magnitude (Gaussian derivative of `SMOOTH_PX`) is
    compared with the step from background to foreground: ``sigma_total = step / (sqrt(2 pi) * slope)``,
    and the smoothing is taken out in quadrature. Objects with soft or textured edges read wider than
    the PSF; a value under `MIN_RESOLVED_SIGMA_PX` is reported as that bound."""
    x = _stack(images)
    out = []
    for image in x:
        mask = foreground(image)
        fg, bg = _levels(image, mask)
        slope = ndimage.gaussian_gradient_magnitude(image, SMOOTH_PX)
        edge = mask ^ ndimage.binary_erosion(mask)
        if not edge.any() or not fg > bg:
            out.append(float("nan"))
            continue
        # the steepest slope near each edge pixel: the edge is where the slope peaks, within a pixel
        peak = ndimage.maximum_filter(slope, size=3)[edge]
        total = (fg - bg) / (np.sqrt(2 * np.pi) * np.median(peak))
        out.append(float(np.sqrt(max(total**2 - SMOOTH_PX**2, MIN_RESOLVED_SIGMA_PX**2))))
    return np.asarray(out)


def _diameter(image: np.ndarray) -> float:
    """`fmlib.sizing.estimate_diameter_px` of one image; NaN where no object can be measured (a blurred
    or crowded field), so that the other images still give the estimate."""
    try:
        return estimate_diameter_px(image)
    except ValueError:
        return float("nan")


def estimate(images, *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Every estimate of the acquisition of `images` (raw counts, shape (N, H, W) or (H, W)), one row
    each: ``quantity``, ``estimate``, ``low``, ``high`` (95 % bootstrap over images; the median of the
    per-image values), ``unit``.

    Examples
    --------
    >>> from fmlib.synthesis import make_dataset
    >>> table = estimate(make_dataset("nuclei", 4, 128, snr=4, seed=1).raw, n_boot=200)
    >>> table.quantity.tolist()[:4]
    ['noise_slope', 'noise_intercept', 'snr', 'zero_level']
    """
    x = _stack(images)
    n_boot = check_int("n_boot", n_boot, low=10)
    noise = noise_model(x)
    back = background(x, noise)
    per_image = {
        "noise_slope": (noise.slope.to_numpy(), "counts per electron x F^2"),
        "noise_intercept": (noise.intercept.to_numpy(), "counts^2"),
        "snr": (snr(x, noise), ""),
        "zero_level": (zero_level(noise), "counts (the camera offset)"),
        "background_level": (back.level.to_numpy(), "counts above the zero level"),
        "background_ratio": (back.ratio.to_numpy(), "of the foreground step"),
        "background_unevenness": (back.unevenness.to_numpy(), "relative range"),
        "blur_sigma_px": (blur_sigma_px(x), "px"),
        "diameter_px": (np.array([_diameter(image) for image in x]), "px"),
    }
    rows = []
    for quantity, (values, unit) in per_image.items():
        est, low, high = _interval(values, np.nanmedian, n_boot, seed)
        rows.append({"quantity": quantity, "estimate": est, "low": low, "high": high, "unit": unit})
    return pd.DataFrame(rows)
