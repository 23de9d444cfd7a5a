"""Realism report: image statistics of real and synthetic sets side by side, each with a distance.

Nothing here runs a model or fits to labels; only the object statistics read masks, where they exist.
Each statistic of a set of images (`profile`) is taken after the models' per-image z-score (`zscore`),
so it is blind to positive affine intensity changes, as the models are. Statistic: distance.
- intensity distribution (`zscore`): Wasserstein-1, in z units;
- radial power spectrum (`radial_spectrum`, cycles/pixel, white noise flat at 1): mean |log10 ratio|;
- noise variance against local mean of each image alone (`noise_curve`): |difference| of fitted
  slopes and of intercepts;
- object area (pixels; µm² where the pixel size is known) and eccentricity (`object_table`), and
  the contrast of object edges (`edge_contrast`): two-sample Kolmogorov-Smirnov statistic.

`report` tabulates the distances of real sets to a synthetic one, `curves` gives the curves to plot.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import ndimage, stats
from skimage.filters import window
from skimage.measure import regionprops_table
from skimage.morphology import disk
from skimage.segmentation import clear_border, expand_labels

from ._checks import check_array, check_int, check_real

#: Added to the standard deviation in `zscore`, as in `fmlib.models.zscore`.
ZSCORE_EPS = 1e-6
#: Quantile levels kept of the z-scored intensities (for the Wasserstein distance).
QUANTILES = np.linspace(0.0, 1.0, 1001)
#: Bin edges of the intensity histogram, in z units.
HISTOGRAM_EDGES = np.linspace(-4.0, 8.0, 97)
#: Frequencies above this (cycles/pixel) are "high" in the spectrum's summary.
HIGH_FREQUENCY = 0.25
#: Axis labels and y scale of each curve of `curves`, for plotting.
CURVES = {
    "intensity histogram": ("intensity after the per-image z-score", "density", "linear"),
    "power spectrum": ("spatial frequency (cycles/pixel)", "power (white noise = 1)", "log"),
    "noise curve": ("local mean (z units)", "noise variance (z units²)", "linear"),
    "area (px)": ("object area (pixels)", "cumulative fraction", "linear"),
    "eccentricity": ("object eccentricity", "cumulative fraction", "linear"),
    "edge contrast": ("edge step / background std", "cumulative fraction", "linear"),
}
#: Short names of the statistics of `report` (its ``key`` column), e.g. for glue names.
KEYS = {"intensity": "intensity", "power spectrum": "spectrum", "noise slope": "noise_slope", "noise intercept":
        "noise_intercept", "area (px)": "area_px", "area (µm²)": "area_um2", "eccentricity": "eccentricity",
        "edge contrast": "edge_contrast"}


def _stack(name: str, images) -> np.ndarray:
    """`images` as float64 (N, H, W), checked: 2 or 3 dimensions, numeric, finite, at least 8 x 8 pixels."""
    array = check_array(name, images, ndim=(2, 3))
    if array.dtype == bool:
        raise ValueError(f"{name}: expected intensities, got a boolean array")
    array = np.asarray(array, dtype=np.float64)
    array = array[None] if array.ndim == 2 else array
    if min(array.shape[1:]) < 8 or len(array) == 0:
        raise ValueError(f"{name}: expected images of at least 8 x 8 pixels, got shape {array.shape}")
    return array


def zscore(images) -> np.ndarray:
    """Per-image z-score ``(x - mean) / (std + 1e-6)``, the models' input normalization.

    `images` (array_like, (H, W) or (N, H, W)): intensities in any linear unit. Returns float64
    (N, H, W); the standard deviation is the unbiased one (``ddof=1``), as ``torch.std`` in
    `fmlib.models.zscore`.
    """
    x = _stack("images", images)
    mean = x.mean(axis=(1, 2), keepdims=True)
    return (x - mean) / (x.std(axis=(1, 2), ddof=1, keepdims=True) + ZSCORE_EPS)


def radial_spectrum(images, *, n_bins: int = 16) -> pd.DataFrame:
    """Radially (azimuthally) averaged power spectrum of z-scored, Hann-windowed images.

    Power is ``|FFT|^2 / (H W)`` of the z-scored image times a Hann window of unit mean square, averaged
    over the images and over rings of `n_bins` equal widths from 0 to 0.5 cycles/pixel (the zero
    frequency and its 8 neighbours left out; empty rings dropped). White noise has power 1 everywhere.

    Returns a DataFrame with ``frequency`` (ring centre, cycles/pixel) and ``power`` (dimensionless).
    """
    n_bins = check_int("n_bins", n_bins, low=2)
    z = zscore(images)
    h, w = z.shape[1:]
    hann = window("hann", (h, w))
    hann = hann / np.sqrt(np.mean(hann**2))
    power = (np.abs(np.fft.fft2(z * hann)) ** 2).mean(axis=0) / (h * w)
    fy, fx = np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij")
    radius = np.hypot(fy, fx)
    edges = np.linspace(0.0, 0.5, n_bins + 1)
    ring = np.digitize(radius, edges)  # 1..n_bins inside 0.5 cycles/pixel
    # The window spreads the removed mean over the 3 x 3 frequencies around zero: left out.
    ring[((np.abs(fy * h) <= 1) & (np.abs(fx * w) <= 1)) | (radius > 0.5)] = 0
    index = np.arange(1, n_bins + 1)
    counts = ndimage.sum_labels(np.ones_like(power), ring, index)
    means = ndimage.sum_labels(power, ring, index) / np.where(counts > 0, counts, np.nan)
    return pd.DataFrame({"frequency": 0.5 * (edges[:-1] + edges[1:]), "power": means}).dropna(ignore_index=True)


def noise_curve(images, *, patch: int = 8, n_bins: int = 8, flatness: float = 2.0,
                normalize: bool = True) -> tuple[pd.DataFrame, dict[str, float]]:
    """Noise variance against the local mean, from each image alone (a photon-transfer curve).

    The noise is the high-pass residual ``x - mean_3x3(x)`` scaled by 9/8 (for white noise its variance
    is then the noise variance). The image is cut into ``patch x patch`` blocks; a block is flat when
    the variance of its 3 x 3 mean is at most `flatness` times what noise alone would give (the
    residual variance / 9), so edges and texture are left out. Flat blocks are binned by their mean
    into `n_bins` bins of equal counts, and ``variance = slope * mean + intercept`` is fitted by
    least squares weighted by 1 / variance (as `fmlib.synthesis.fit_photon_transfer`).

    Parameters
    ----------
    images : array_like, shape (H, W) or (N, H, W)
        Intensities; with ``normalize=False`` raw counts above the camera offset, and the slope is
        then the gain in counts per electron for a shot-noise-limited camera.
    patch, n_bins, flatness : int, int, float
        Block side in pixels (>= 4), number of mean bins (>= 2), structure allowed in a flat block (> 0).
    normalize : bool
        Z-score each image first (`zscore`): means in z units, variances in z units².

    Returns
    -------
    curve : DataFrame with ``mean``, ``variance`` and ``n_patches`` per bin
    fit : dict with ``slope`` (variance per unit mean) and ``intercept`` (variance at mean 0)

    Raises ValueError for bad arguments, or when fewer than `n_bins` flat blocks are found.
    """
    patch, n_bins = check_int("patch", patch, low=4), check_int("n_bins", n_bins, low=2)
    flatness = check_real("flatness", flatness, low=0.0, low_inclusive=False)
    x = zscore(images) if normalize else _stack("images", images)
    smooth = ndimage.uniform_filter(x, size=(1, 3, 3), mode="reflect")
    residual2 = (x - smooth) ** 2 * 9.0 / 8.0
    n, h, w = x.shape
    hb, wb = h // patch, w // patch
    if hb == 0 or wb == 0:
        raise ValueError(f"patch: {patch} is larger than the images {x.shape[1:]}")

    def blocks(a):
        return a[:, : hb * patch, : wb * patch].reshape(n, hb, patch, wb, patch).swapaxes(2, 3).reshape(-1, patch**2)

    means, noise, structure = blocks(x).mean(axis=1), blocks(residual2).mean(axis=1), blocks(smooth).var(axis=1)
    flat = structure <= flatness * noise / 9.0
    if flat.sum() < n_bins:
        raise ValueError(f"images: {int(flat.sum())} flat {patch} x {patch} patches, fewer than n_bins={n_bins}")
    means, noise = means[flat], noise[flat]
    edges = np.quantile(means, np.linspace(0.0, 1.0, n_bins + 1))
    bins = np.clip(np.searchsorted(edges, means, side="right") - 1, 0, n_bins - 1)
    curve = (pd.DataFrame({"mean": means, "variance": noise, "bin": bins}).groupby("bin")
             .agg(mean=("mean", "mean"), variance=("variance", "mean"), n_patches=("mean", "size"))
             .reset_index(drop=True))
    slope, intercept = np.polyfit(curve["mean"], curve["variance"], 1, w=1.0 / np.maximum(curve["variance"], 1e-12))
    return curve, {"slope": float(slope), "intercept": float(intercept)}


def _label_stack(labels, shape: tuple[int, ...] | None = None) -> np.ndarray:
    array = check_array("labels", labels, ndim=(2, 3))
    if not np.issubdtype(array.dtype, np.integer) and array.dtype != bool:
        raise ValueError(f"labels: expected integer instance labels, got dtype {array.dtype}")
    array = (array[None] if array.ndim == 2 else array).astype(np.int64)
    if shape is not None and array.shape != shape:
        raise ValueError(f"labels: expected the shape of images {shape}, got {array.shape}")
    if array.min(initial=0) < 0:
        raise ValueError("labels: expected non-negative labels")
    return array


def object_table(labels, *, pixel_size_um: float | None = None) -> pd.DataFrame:
    """Area and eccentricity of every labelled object away from the image border.

    Objects cut by the border are left out (their shape depends on the field of view, as in
    `fmlib.realdata.diameters_px`).

    Returns
    -------
    DataFrame with ``image``, ``label``, ``area_px``, ``area_um2`` (NaN without `pixel_size_um`) and
    ``eccentricity`` (0 for a disc, towards 1 for elongated objects), one row per object.
    """
    stack = _label_stack(labels)
    if pixel_size_um is not None:
        pixel_size_um = check_real("pixel_size_um", pixel_size_um, low=0.0, low_inclusive=False)
    rows = [pd.DataFrame(regionprops_table(clear_border(image), properties=["label", "area", "eccentricity"]))
            .assign(image=k) for k, image in enumerate(stack)]
    table = pd.concat(rows, ignore_index=True).rename(columns={"area": "area_px"})
    table["area_um2"] = table.area_px * pixel_size_um**2 if pixel_size_um is not None else np.nan
    return table[["image", "label", "area_px", "area_um2", "eccentricity"]]


def edge_contrast(images, labels, *, ring_px: int = 2, margin_px: int = 4) -> np.ndarray:
    """Contrast of each object's edge: the mean intensity in a ring of `ring_px` inside its boundary
    minus the mean in a ring of `ring_px` outside it, divided by the standard deviation of the
    background farther than `margin_px` from every object, in the same image.

    Objects cut by the image border, and objects without an outer ring or whose image has fewer than
    16 background pixels, are left out. Dimensionless and blind to positive affine intensity changes.

    Returns an ndarray of float64, one value per object.
    """
    x = _stack("images", images)
    stack = _label_stack(labels, x.shape)
    ring_px, margin_px = check_int("ring_px", ring_px, low=1), check_int("margin_px", margin_px, low=1)
    footprint = disk(ring_px)
    out = []
    for image, lab in zip(x, stack):
        keep = np.setdiff1d(np.unique(clear_border(lab)), [0])
        background = expand_labels(lab, margin_px) == 0
        if keep.size == 0 or background.sum() < 16:
            continue
        interior = (ndimage.grey_erosion(lab, footprint=footprint) == lab) & (
            ndimage.grey_dilation(lab, footprint=footprint) == lab)
        inner = np.where(interior, 0, lab)
        outer = np.where(lab == 0, expand_labels(lab, ring_px), 0)
        step = np.asarray(ndimage.mean(image, inner, keep)) - np.asarray(ndimage.mean(image, outer, keep))
        out.append(step / max(image[background].std(), 1e-12))
    values = np.concatenate(out) if out else np.empty(0)
    return values[np.isfinite(values)]


class Profile(NamedTuple):
    """The statistics of one set of images (`profile`)."""

    quantiles: np.ndarray
    histogram: pd.DataFrame
    spectrum: pd.DataFrame
    noise: pd.DataFrame
    noise_fit: dict
    objects: pd.DataFrame | None
    contrast: np.ndarray | None


def profile(images, labels=None, *, pixel_size_um: float | None = None) -> Profile:
    """Every statistic of the module docstring for one set of images (the object ones only with
    `labels`), with each function's defaults."""
    z = zscore(images)
    density, edges = np.histogram(z, bins=HISTOGRAM_EDGES, density=True)
    histogram = pd.DataFrame({"intensity": 0.5 * (edges[:-1] + edges[1:]), "density": density})
    curve, fit = noise_curve(images)
    objects = contrast = None
    if labels is not None:
        objects = object_table(labels, pixel_size_um=pixel_size_um)
        contrast = edge_contrast(images, labels)
    return Profile(np.quantile(z, QUANTILES), histogram, radial_spectrum(images), curve, fit, objects, contrast)


def spectrum_distance(a: pd.DataFrame, b: pd.DataFrame) -> float:
    """Mean absolute log10 ratio of two `radial_spectrum` tables over their shared frequencies (decades)."""
    shared = a.merge(b, on="frequency", suffixes=("_a", "_b"))
    shared = shared[(shared.power_a > 0) & (shared.power_b > 0)]
    if shared.empty:
        raise ValueError("a, b: the spectra share no frequency with positive power")
    return float(np.abs(np.log10(shared.power_a / shared.power_b)).mean())


def _rows(real: Profile, synthetic: Profile):
    """(statistic, summary, real value, synthetic value, distance, kind of distance) of two profiles."""
    median = len(QUANTILES) // 2
    yield ("intensity", "median (z)", real.quantiles[median], synthetic.quantiles[median],
           stats.wasserstein_distance(real.quantiles, synthetic.quantiles), "Wasserstein-1 (z units)")
    high = [float(p.spectrum.power[p.spectrum.frequency > HIGH_FREQUENCY].mean()) for p in (real, synthetic)]
    yield ("power spectrum", f"mean power above {HIGH_FREQUENCY} cycles/px", *high,
           spectrum_distance(real.spectrum, synthetic.spectrum), "mean |log10 ratio| (decades)")
    for key in ("slope", "intercept"):
        yield (f"noise {key}", f"fitted {key} (z units)", real.noise_fit[key], synthetic.noise_fit[key],
               abs(real.noise_fit[key] - synthetic.noise_fit[key]), "absolute difference (z units)")
    if real.objects is None or synthetic.objects is None:
        return
    samples = {"area (px)": "area_px", "area (µm²)": "area_um2", "eccentricity": "eccentricity"}
    for name, column in samples.items():
        a, b = real.objects[column].dropna(), synthetic.objects[column].dropna()
        if len(a) and len(b):
            yield name, "median", a.median(), b.median(), stats.ks_2samp(a, b).statistic, "Kolmogorov-Smirnov"
    if len(real.contrast) and len(synthetic.contrast):
        yield ("edge contrast", "median", np.median(real.contrast), np.median(synthetic.contrast),
               stats.ks_2samp(real.contrast, synthetic.contrast).statistic, "Kolmogorov-Smirnov")


def report(real: Mapping[str, Profile], synthetic: Profile) -> pd.DataFrame:
    """The realism table: each statistic of each real set (by source) beside the synthetic set's.

    Returns
    -------
    DataFrame with ``statistic``, ``key`` (`KEYS`), ``source``, ``summary`` (what ``real`` and ``synthetic`` hold),
    ``real``, ``synthetic``, ``distance`` (real to synthetic), ``distance_kind`` and ``direction``
    (``"higher in real"``, ``"lower in real"`` or ``"equal"``), one row per source and statistic.
    """
    if not real:
        raise ValueError("real: expected at least one real Profile")
    columns = ["statistic", "summary", "real", "synthetic", "distance", "distance_kind"]
    table = pd.concat([pd.DataFrame(list(_rows(p, synthetic)), columns=columns).assign(source=source)
                       for source, p in real.items()], ignore_index=True)
    table["direction"] = np.select([table.real > table.synthetic, table.real < table.synthetic],
                                   ["higher in real", "lower in real"], "equal")
    return table.assign(key=table.statistic.map(KEYS))[["statistic", "key", "source", *columns[1:], "direction"]]


def _ecdf(values) -> tuple[np.ndarray, np.ndarray]:
    return np.sort(np.asarray(values, dtype=np.float64)), np.arange(1, len(values) + 1) / max(len(values), 1)


def curves(profiles: Mapping[str, Profile]) -> pd.DataFrame:
    """Every curve of every profile, long: ``curve`` (a key of `CURVES`), ``source``, ``x``, ``y``;
    object statistics as empirical cumulative distributions."""
    parts = []
    for source, p in profiles.items():
        found = {"intensity histogram": (p.histogram.intensity, p.histogram.density),
                 "power spectrum": (p.spectrum.frequency, p.spectrum.power),
                 "noise curve": (p.noise["mean"], p.noise.variance)}
        if p.objects is not None:
            found |= {"area (px)": _ecdf(p.objects.area_px), "eccentricity": _ecdf(p.objects.eccentricity),
                      "edge contrast": _ecdf(p.contrast)}
        parts += [pd.DataFrame({"curve": name, "source": source, "x": np.asarray(x), "y": np.asarray(y)})
                  for name, (x, y) in found.items()]
    return pd.concat(parts, ignore_index=True)
