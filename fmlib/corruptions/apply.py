"""The entry points: `corrupt` for images (any corruption), `corrupt_dataset` for a synthesis
`Dataset` in photo-electrons (physical corruptions)."""

from __future__ import annotations

import copy
import math

import numpy as np

from .._checks import as_rng, check_int
from ..synthesis import Dataset, display_from_raw
from .acquisition import _from_dataset, _reference
from .registry import CORRUPTIONS


def corrupt(image: np.ndarray, name: str, severity: int, rng: int | np.random.Generator | None = None, *,
            dataset: Dataset | None = None) -> np.ndarray:
    """Apply corruption `name` at `severity` to an image or a batch.

    Parameters
    ----------
    image : ndarray of float, shape (H, W) or (N, H, W)
        Images in [0, 1] (the display-mapped images of `fmlib.synthesis`).
    name : str
        A registered corruption (`list_corruptions()`).
    severity : int
        0 (identity) to 5; the parameter of each level is ``CORRUPTIONS[name].severities``.
    rng : int or numpy.random.Generator, optional
        Seed or generator. Image ``i`` of a batch uses the ``i``-th generator spawned from it.
    dataset : fmlib.synthesis.Dataset, optional
        The dataset `image` comes from (its ``images``): physical corruptions then work on its raw
        counts, camera and photon budget instead of the reference acquisition.

    Returns
    -------
    ndarray of the same shape and dtype, in [0, 1].

    Raises
    ------
    ValueError
        Unknown name (the message lists the valid ones), severity outside 0-5, an image that is
        not 2D or 3D, not floating point, non-finite or outside [0, 1].

    Examples
    --------
    >>> from fmlib.synthesis import make_dataset
    >>> ds = make_dataset("nuclei", 2, 64, seed=0)
    >>> corrupt(ds.images, "defocus", 3, rng=0).shape
    (2, 64, 64)
    """
    spec = CORRUPTIONS.get(name)
    if spec is None:
        raise ValueError(f"name: unknown corruption {name!r}; expected one of {', '.join(CORRUPTIONS)}")
    severity = check_int("severity", severity, low=0, high=5)
    x = np.asarray(image)
    if x.ndim not in (2, 3):
        raise ValueError(f"image: expected shape (H, W) or (N, H, W), got {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"image: expected a float array in [0, 1], got dtype {x.dtype}")
    low, high = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
    if not (math.isfinite(low) and math.isfinite(high)):  # NaN propagates into min and max
        raise ValueError("image: expected finite values, found NaN or infinity")
    if low < 0 or high > 1:
        raise ValueError(f"image: expected values in [0, 1], got [{low:.3g}, {high:.3g}]")
    if severity == 0:
        return x.copy()
    batch = x[None] if x.ndim == 2 else x
    acquisition = _from_dataset(dataset, batch.shape) if dataset is not None else _reference(len(batch))
    rngs = as_rng(rng).spawn(len(batch))
    # Photon statistics want double precision; the other corruptions work in the input's precision.
    # Corruption functions never modify their input in place.
    work = batch.astype(np.float64) if spec.physical else batch
    out = spec.fn(work, spec.value(severity), rngs, acquisition)
    if spec.physical:
        out = acquisition.display(*out)
    out = np.clip(out, 0.0, 1.0, out=out if out is not batch else None).astype(x.dtype, copy=False)
    return out[0] if x.ndim == 2 else out


def corrupt_dataset(dataset: Dataset, name: str, severity: int,
                    rng: int | np.random.Generator | None = None) -> Dataset:
    """Apply a physical corruption to a synthesis `Dataset` in photo-electrons; returns a new Dataset.

    The new raw counts go through the dataset's camera gain, offset, quantization and saturation,
    and the images through the same display mapping as `make_dataset` (for ``photon_noise``, set for
    the new photon budget), so the result is what the camera would have recorded.
    Only corruptions with ``CORRUPTIONS[name].physical`` are accepted.

    Parameters
    ----------
    dataset : fmlib.synthesis.Dataset
        The clean dataset; it is not modified.
    name : str
        A physical corruption (``[n for n, c in CORRUPTIONS.items() if c.physical]``).
    severity : int
        0 (an unchanged copy) to 5.
    rng : int or numpy.random.Generator, optional
        Seed or generator. Image ``i`` uses the ``i``-th generator spawned from it, as in `corrupt`.

    Returns
    -------
    Dataset
        A copy with new ``raw`` and ``images``; each image's metadata records the corruption, the
        severity and the signal its display is set for (``display_signal_e``).

    Raises
    ------
    ValueError
        A name that is not a physical corruption (the message lists those), severity outside 0-5.
    """
    spec = CORRUPTIONS.get(name)
    if spec is None or not spec.physical:
        physical = [n for n, c in CORRUPTIONS.items() if c.physical]
        raise ValueError(f"name: {name!r} is not a physical corruption; expected one of {', '.join(physical)} "
                         "(use corrupt() on dataset.images for the others)")
    severity = check_int("severity", severity, low=0, high=5)
    out = copy.deepcopy(dataset)
    if severity == 0:
        return out
    acquisition = _from_dataset(dataset, dataset.images.shape)
    rngs = as_rng(rng).spawn(len(dataset))
    electrons, signal_e = spec.fn(dataset.images.astype(np.float64), spec.value(severity), rngs, acquisition)
    camera = dataset.camera
    counts = np.rint(electrons * camera.gain_adu_per_e + camera.offset_adu)
    out.raw = np.clip(counts, 0, camera.max_adu).astype(np.uint16)
    out.images = np.stack([display_from_raw(r, s, camera) for r, s in zip(out.raw, signal_e)])
    for meta, s in zip(out.metadata, signal_e):
        meta.update({"corruption": name, "severity": severity, "display_signal_e": float(s)})
    return out
