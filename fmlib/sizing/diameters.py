"""Nucleus diameters without labels, and the resampling factor that brings them to the training range
(`fmlib.sizing` says why)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu
from skimage.measure import label, regionprops_table
from skimage.morphology import remove_small_objects
from skimage.segmentation import clear_border

from .._checks import check_array, check_int, check_range, check_real


def estimate_diameter_px(image: np.ndarray, *, min_size_px: int = 16, min_solidity: float = 0.9) -> float:
    """Label-free estimate of the typical nucleus diameter of an image (or of a stack), in pixels.

    The median equivalent diameter (of the disc of equal area) of the convex objects of the Otsu
    foreground (holes filled, specks removed), leaving out objects cut by the image border, whose
    size depends on the field of view. Clumps of touching nuclei are not convex, and are left out
    rather than split: a watershed would split them, but it also cuts large textured nuclei in
    pieces, which biases the estimate low exactly where it matters (on the simulator's nuclei at
    twice their size, the median from the watershed's pieces read 15 % low, from convex objects 3 %).

    Parameters
    ----------
    image : ndarray, shape (H, W) or (N, H, W)
        One fluorescence image, or a stack of images of one acquisition whose objects are pooled;
        any finite intensity scale (each image is thresholded on its own).
    min_size_px : int
        Objects smaller than this many pixels are noise, not nuclei.
    min_solidity : float
        An object counts when its area over the area of its convex hull is at least this.

    Returns
    -------
    float
        The median diameter in pixels.

    Raises
    ------
    ValueError
        If `image` is not a finite 2D or 3D array, or no convex object lies away from the border.

    Notes
    -----
    It needs fields with several isolated nuclei. Real images of a few hundred pixels read within a
    few per cent of their reference labels (BBBC007); simulated fields of 96 px read about 8 % high;
    in crowded fields of 64 px, where most nuclei touch each other or the border, the few convex
    objects left read far low.

    Examples
    --------
    >>> from skimage.draw import disk
    >>> image = np.zeros((96, 96))
    >>> for center in [(24, 24), (24, 70), (70, 40)]:
    ...     image[disk(center, 8)] = 1.0
    >>> round(estimate_diameter_px(image))   # discs of radius 8
    16
    """
    image = check_array("image", image, ndim=(2, 3))
    min_size_px = check_int("min_size_px", min_size_px, low=1)
    min_solidity = check_real("min_solidity", min_solidity, low=0.0, high=1.0)
    diameters, weights = [], []
    for plane in image.reshape(-1, *image.shape[-2:]).astype(np.float64):
        if np.ptp(plane) == 0:
            continue
        foreground = remove_small_objects(plane > threshold_otsu(plane), max_size=min_size_px - 1)
        objects = clear_border(label(ndimage.binary_fill_holes(foreground)))
        table = regionprops_table(objects, properties=["equivalent_diameter_area", "solidity", "bbox"])
        keep = table["solidity"] >= min_solidity
        height = (table["bbox-2"] - table["bbox-0"])[keep]
        width = (table["bbox-3"] - table["bbox-1"])[keep]
        # Miles-Lantuejoul: an object of this extent stays clear of the border of an H x W field only
        # in (H - h)(W - w) of its H W positions; weighting by the inverse keeps small fields from
        # under-counting large objects.
        rows, cols = plane.shape
        weights.append(rows * cols / np.maximum((rows - height) * (cols - width), 1))
        diameters.append(table["equivalent_diameter_area"][keep])
    diameters = np.concatenate(diameters) if diameters else np.zeros(0)
    if diameters.size == 0:
        raise ValueError("image: no convex object above the Otsu threshold lies away from the border to measure")
    return weighted_median(diameters, np.concatenate(weights))


def weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """The smallest value at which the cumulative weight reaches half of the total.

    >>> weighted_median(np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0, 5.0]))
    3.0
    """
    values = check_array("values", values, ndim=(1,))
    weights = check_array("weights", weights, ndim=(1,), nonnegative=True)
    if values.size == 0 or values.shape != weights.shape:
        raise ValueError(f"values, weights: expected two non-empty arrays of one length, got {values.shape} and "
                         f"{weights.shape}")
    if weights.sum() <= 0:
        raise ValueError("weights: expected a positive total weight")
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order].astype(float))
    return float(values[order][np.searchsorted(cumulative, cumulative[-1] / 2)])


def size_factor(diameter_px: float, target_diameter_px: float | tuple[float, float]) -> float:
    """The resampling factor that brings a median nucleus diameter to `target_diameter_px`.

    A target range ``(low, high)`` moves the diameter only as far as the range: a factor of 1 inside
    it. This is the rule for models trained over a range of pixel sizes (`fmlib.domain`), which
    have seen every diameter in that range; resampling inside it would only cost resolution.

    >>> size_factor(20.0, 10.0), size_factor(20.0, (8.0, 16.0)), size_factor(12.0, (8.0, 16.0))
    (0.5, 0.8, 1.0)
    """
    diameter_px = check_real("diameter_px", diameter_px, low=1.0, high=1000.0)
    if np.ndim(target_diameter_px) == 1:  # a (low, high) pair, as a tuple, list or array
        low, high = check_range("target_diameter_px", target_diameter_px, low=1.0, low_inclusive=True)
        return float(np.clip(diameter_px, low, high) / diameter_px)
    return check_real("target_diameter_px", target_diameter_px, low=1.0, high=1000.0) / diameter_px


def checked_factor(diameter_px: float, target_diameter_px: float | tuple[float, float],
                   max_factor: float = 4.0) -> float:
    """`size_factor`, refused when it lies outside ``[1 / max_factor, max_factor]``: a factor that
    large means that the estimate failed, and is an error rather than silently clipped."""
    max_factor = check_real("max_factor", max_factor, low=1.0, high=20.0)
    factor = size_factor(diameter_px, target_diameter_px)
    if not 1 / max_factor <= factor <= max_factor:
        raise ValueError(f"diameter_px: {diameter_px:.1f} px against the target {target_diameter_px} px needs a "
                         f"resampling factor of {factor:.2f}, outside [1/{max_factor:g}, {max_factor:g}]")
    return factor


def trained_diameter_range(diameter_px: float, pixel_size_scale: tuple[float, float]) -> tuple[float, float]:
    """The median nucleus diameters, in pixels, that a model trained over `pixel_size_scale` saw.

    `diameter_px` is the median over images of all its training physics (`estimate_diameter_px` of
    `wide_fields`), which sits about at the geometric centre of the log-uniform pixel-size range
    (`fmlib.domain.PhysicsRanges.pixel_size_scale`; about, since the pooled median also weighs the
    spread of nucleus sizes); an image at pixel-size multiple ``s`` shows nuclei at ``centre / s``
    times that diameter.

    >>> [round(d, 1) for d in trained_diameter_range(15.0, (0.8, 1.25))]
    [12.0, 18.8]
    """
    diameter_px = check_real("diameter_px", diameter_px, low=1.0, high=1000.0)
    low, high = check_range("pixel_size_scale", pixel_size_scale, low=0.0)
    centre = float(np.sqrt(low * high))
    return diameter_px * centre / high, diameter_px * centre / low


def wide_fields(spec, *, size: int = 384, n_images: int = 8):
    """Simulated fields `size` px wide of the physics of a training set (`fmlib.checkpoints.DataSpec`
    `spec`: the same structure, acquisition randomization and seed), on which nucleus sizes are
    measured: a training tile a few nuclei wide leaves its large nuclei cut by the border, and every
    size measurement leaves those out. Returns the synthesis `Dataset` of the `n_images` fields."""
    size = check_int("size", size, low=32)
    n_images = check_int("n_images", n_images, low=1)
    return replace(spec, size=size, n_train=n_images, n_val=1).make()[0]


def diameter_estimates(images: Mapping[str, np.ndarray]) -> dict[str, float]:
    """`estimate_diameter_px` of each named image."""
    return {name: estimate_diameter_px(image) for name, image in images.items()}
