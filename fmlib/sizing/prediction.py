"""A model's predictions for a real image brought to the training diameters, back on the native grid
(`fmlib.sizing` says why)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch
from skimage.transform import rescale, resize

from .._checks import check_array, check_int, check_real
from ..inference import predict_logits
from ..instances import split_touching
from ..realdata import Tiles, tiles
from .diameters import checked_factor, diameter_estimates, estimate_diameter_px

#: Models take sides that are a multiple of this (five 2x downsamplings).
SIDE_MULTIPLE = 32


def scaled_logits(model: torch.nn.Module, image: np.ndarray, factor: float, *, tile: int | None = None,
                  batch_size: int = 16) -> np.ndarray:
    """`model`'s logits for `image` (H, W) in [0, 1] resampled by `factor`, on the resampled grid.

    The image is resampled with linear interpolation (anti-aliased when shrinking) and padded by
    reflection to sides that are a multiple of `tile` (or of `SIDE_MULTIPLE` when `tile` is None). With
    `tile`, the model sees non-overlapping ``tile x tile`` windows, the size it was trained on: models
    with global context (pyramid pooling, a transformer's position embeddings) read a larger field
    differently. The padding is cropped off again. A factor of 1 runs the model on the image as it is.

    Returns
    -------
    ndarray of float32, shape about ``factor`` times (H, W)
    """
    image = check_array("image", image, ndim=(2,))
    factor = check_real("factor", factor, low=0.05, high=20.0)
    multiple = SIDE_MULTIPLE if tile is None else check_int("tile", tile, low=SIDE_MULTIPLE)
    if multiple % SIDE_MULTIPLE:
        raise ValueError(f"tile: expected a multiple of {SIDE_MULTIPLE}, got {tile}")
    if factor == 1.0:
        scaled = image.astype(np.float32)
    else:
        scaled = rescale(image.astype(np.float64), factor, order=1, anti_aliasing=factor < 1,
                         preserve_range=True).astype(np.float32)
    if min(scaled.shape) < 2:
        raise ValueError(f"factor: {factor} shrinks the image {image.shape} to {scaled.shape}")
    pad = [(0, (-side) % multiple) for side in scaled.shape]
    # Reflection, not zeros: a band of black would change the per-image z-score and add edges.
    padded = np.pad(scaled, pad, mode="symmetric")
    if tile is None:
        logits = predict_logits(model, padded[None], batch_size=batch_size)[0, 0].numpy()
    else:
        rows, cols = padded.shape[0] // tile, padded.shape[1] // tile
        windows = predict_logits(model, tiles(padded, tile), batch_size=batch_size)[:, 0].numpy()
        logits = windows.reshape(rows, cols, tile, tile).swapaxes(1, 2).reshape(padded.shape)
    return logits[: scaled.shape[0], : scaled.shape[1]]


def predict_logits_at_scale(model: torch.nn.Module, image: np.ndarray, factor: float, *,
                            tile: int | None = None, batch_size: int = 16) -> np.ndarray:
    """`scaled_logits` resampled back to the native grid (H, W) with linear interpolation.

    Returns
    -------
    ndarray of float32, shape (H, W)
        Logits on the native grid; foreground where they are positive.
    """
    logits = scaled_logits(model, image, factor, tile=tile, batch_size=batch_size)
    if logits.shape != image.shape:
        logits = resize(logits, image.shape, order=1, anti_aliasing=factor > 1, preserve_range=True)
    return logits.astype(np.float32)


def instances_at_scale(model: torch.nn.Module, image: np.ndarray, factor: float, *, tile: int | None = None,
                       min_size_px: int = 16) -> np.ndarray:
    """Instance labels (H, W) of `image`: the model's foreground at `factor` (`scaled_logits`) split
    into nuclei there (`fmlib.instances.split_touching`, whose sizes in pixels are the training
    scale's), then brought back to the native grid by nearest neighbour."""
    labels = split_touching(scaled_logits(model, image, factor, tile=tile) > 0, min_size_px=min_size_px)
    if labels.shape != np.shape(image):
        labels = resize(labels, np.shape(image), order=0, anti_aliasing=False, preserve_range=True)
    return labels.astype(np.int32)


def predict_at_diameter(model: torch.nn.Module, image: np.ndarray, *,
                        target_diameter_px: float | tuple[float, float], diameter_px: float | None = None,
                        tile: int | None = None, max_factor: float = 4.0) -> tuple[np.ndarray, float]:
    """A model's foreground for `image` with its nuclei brought to `target_diameter_px`.

    Parameters
    ----------
    model : torch.nn.Module
        A segmentation model mapping (N, 1, H, W) images in [0, 1] to one logit per pixel.
    image : ndarray, shape (H, W)
        One image in [0, 1].
    target_diameter_px : float or (float, float)
        The nucleus diameter the model was trained on, in pixels, measured as `estimate_diameter_px`
        measures (on its training images), or the range of diameters it was trained on
        (`size_factor`).
    diameter_px : float, optional
        The image's nucleus diameter in pixels; estimated without labels (`estimate_diameter_px`)
        when not given.
    tile : int, optional
        Run the model on windows of this side (its training size), see `predict_logits_at_scale`.
    max_factor : float
        The largest resampling factor, either way (``1 / max_factor`` to ``max_factor``); a factor
        outside is an error rather than silently clipped, since it means the estimate failed.

    Returns
    -------
    mask : ndarray of bool, shape (H, W)
        The foreground on the native grid.
    factor : float
        The resampling factor used (`size_factor`).
    """
    image = check_array("image", image, ndim=(2,))
    if diameter_px is None:
        diameter_px = estimate_diameter_px(image)
    factor = checked_factor(diameter_px, target_diameter_px, max_factor)
    return predict_logits_at_scale(model, image, factor, tile=tile) > 0, float(factor)


def tile_predictions(masks: Mapping[str, np.ndarray], reference: Tiles, tile: int) -> np.ndarray:
    """Whole-image predictions (foreground or instance labels) cut into the tiles of `reference`,
    aligned with its names.

    `masks` maps an image name (``"dsb2018"``, ``"bbbc007/A9/A9 p7d"`` ...) to its (H, W) foreground;
    the tiles of `reference` are named ``"<image>/<index>"`` as `fmlib.realdata.nuclei_tiles` names
    them (tile `index` of the image cut by `fmlib.realdata.tiles`, empty tiles left out), so the
    result is (N, tile, tile) in the order of ``reference.names``.
    """
    tile = check_int("tile", tile, low=SIDE_MULTIPLE)
    if reference.masks.shape[1:] != (tile, tile):
        raise ValueError(f"reference: expected tiles of {tile} x {tile} px, got {reference.masks.shape[1:]}")
    cut: dict[str, np.ndarray] = {}
    dtype = np.asarray(next(iter(masks.values()))).dtype if masks else bool
    out = np.zeros(reference.masks.shape, dtype=dtype)
    for k, name in enumerate(reference.names):
        image_name, _, index = name.rpartition("/")
        if image_name not in masks:
            raise ValueError(f"masks: no prediction for image {image_name!r} (tile {name!r}); "
                             f"have {sorted(masks)[:5]}")
        if image_name not in cut:
            cut[image_name] = tiles(np.asarray(masks[image_name]), tile)
        out[k] = cut[image_name][int(index)]
    return out


def rescaled_predictions(model: torch.nn.Module, images: Mapping[str, np.ndarray], *,
                         target_diameter_px: float | tuple[float, float],
                         diameters_px: Mapping[str, float] | None = None,
                         tile: int | None = None) -> dict[str, np.ndarray]:
    """`predict_at_diameter` of each named image (diameters estimated without labels unless given):
    ``{name: foreground (H, W)}``."""
    diameters_px = diameter_estimates(images) if diameters_px is None else diameters_px
    return {name: predict_at_diameter(model, image, target_diameter_px=target_diameter_px,
                                      diameter_px=diameters_px[name], tile=tile)[0] for name, image in images.items()}


@dataclass(frozen=True)
class SizeNormalizer:
    """Predictions for tiles of real images, made on their whole images brought to the training diameters.

    A callable ``(model, tiles) -> foreground (N, H, W)`` that stands in for a plain prediction on
    the tiles (`fmlib.inference.predict`): for each image the tiles come from, the model runs on the
    whole image resampled by its `factors` (in windows of `tile`), and the native-grid foreground
    is cut into the tiles (`tile_predictions`); `instances` does the same for nuclei split at the
    training scale. Build it with `from_images`.

    Attributes
    ----------
    images : dict of str to ndarray
        Whole images (H, W) in [0, 1], by the names their tiles carry (``"<image>/<index>"``).
    diameters_px : dict of str to float
        Each image's label-free median nucleus diameter (`estimate_diameter_px`).
    target_diameter_px : float or (float, float)
        The training diameter, or range of diameters (`size_factor`).
    tile : int
        The side of the windows the model sees, and of the tiles.
    """

    images: Mapping[str, np.ndarray]
    diameters_px: Mapping[str, float]
    target_diameter_px: float | tuple[float, float]
    tile: int

    @classmethod
    def from_images(cls, images: Mapping[str, np.ndarray], *, target_diameter_px: float | tuple[float, float],
                    tile: int) -> SizeNormalizer:
        """Estimate each image's diameter (without labels) and check that its factor is usable."""
        if check_int("tile", tile, low=SIDE_MULTIPLE) % SIDE_MULTIPLE:
            raise ValueError(f"tile: expected a multiple of {SIDE_MULTIPLE}, got {tile}")
        normalizer = cls(dict(images), diameter_estimates(images), target_diameter_px, tile)
        normalizer.factors()  # validates the target and every factor now, not at the first model
        return normalizer

    def factors(self) -> dict[str, float]:
        """The resampling factor of each image (`checked_factor`)."""
        return {name: checked_factor(d, self.target_diameter_px) for name, d in self.diameters_px.items()}

    def table(self) -> pd.DataFrame:
        """One row per image: ``image``, ``diameter_px`` (estimated), ``factor``."""
        factors = self.factors()
        return pd.DataFrame({"image": list(self.diameters_px), "diameter_px": list(self.diameters_px.values()),
                             "factor": [factors[name] for name in self.diameters_px]})

    def __call__(self, model: torch.nn.Module, reference: Tiles) -> np.ndarray:
        needed = self._images_of(reference)
        masks = rescaled_predictions(model, {name: self.images[name] for name in needed},
                                     target_diameter_px=self.target_diameter_px, diameters_px=self.diameters_px,
                                     tile=self.tile)
        return tile_predictions(masks, reference, self.tile)

    def instances(self, model: torch.nn.Module, reference: Tiles) -> np.ndarray:
        """Instance labels (N, H, W) for the tiles of `reference`: each whole image's nuclei split at
        the training scale (`instances_at_scale`), cut into the tiles."""
        factors = self.factors()
        labels = {name: instances_at_scale(model, self.images[name], factors[name], tile=self.tile)
                  for name in self._images_of(reference)}
        return tile_predictions(labels, reference, self.tile)

    def at_native_size(self) -> SizeNormalizer:
        """The same whole-image prediction with every factor 1: it separates what resampling changes
        from what predicting whole images (and splitting nuclei on them) changes."""
        return replace(self, target_diameter_px=(1.0, 1000.0))

    def _images_of(self, reference: Tiles) -> list[str]:
        """The images the tiles of `reference` come from, checked to be these images cut the same way
        (a `Tiles` resampled by `fmlib.realdata.nuclei_tiles` carries the same names on another grid)."""
        needed = sorted({name.rpartition("/")[0] for name in reference.names})
        missing = [name for name in needed if name not in self.images]
        if missing:
            raise ValueError(f"reference: tiles of images this normalizer does not hold: {missing[:3]}")
        cut = tile_predictions({name: self.images[name] for name in needed}, reference, self.tile)
        if not np.allclose(cut, reference.images, atol=1e-6):
            raise ValueError("reference: its tiles are not the tiles of this normalizer's images (resampled?)")
        return needed
