"""Tiles of real images: subsets, evenly spread picks, synthetic sets as tiles, validation splits."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._checks import check_int
from ..realdata import Tiles
from ..synthesis import Dataset


def tile_subset(tiles: Tiles, indices: Sequence[int] | np.ndarray) -> Tiles:
    """The tiles of `tiles` at `indices`, in that order, with their names."""
    return _part(tiles, np.asarray(indices, dtype=int))


def _part(tiles: Tiles, index) -> Tiles:
    """The tiles at `index` (an index array or a slice), labels included where there are labels."""
    names = [tiles.names[k] for k in range(len(tiles.names))[index]] if isinstance(index, slice) else [
        tiles.names[k] for k in index]
    return Tiles(tiles.images[index], tiles.masks[index], names,
                 tiles.labels[index] if tiles.labels is not None else None)


def spread_indices(n_tiles: int, n: int) -> np.ndarray:
    """`n` indices spread evenly over ``range(n_tiles)``, first and last included (at most `n_tiles`).

    Examples
    --------
    >>> spread_indices(10, 4).tolist()
    [0, 3, 6, 9]
    >>> spread_indices(3, 8).tolist()
    [0, 1, 2]
    """
    n_tiles = check_int("n_tiles", n_tiles, low=0)
    n = check_int("n", n, low=0)
    return np.linspace(0, n_tiles - 1, min(n, n_tiles)).round().astype(int)


def spread_tiles(tiles: Tiles, n: int) -> Tiles:
    """`n` tiles of `tiles` spread evenly over them (`spread_indices`): tiles cut from one image in
    reading order then come from all over the image, not from its top rows only."""
    return tile_subset(tiles, spread_indices(len(tiles.images), n))


def as_tiles(dataset: Dataset, prefix: str = "synthetic") -> Tiles:
    """A synthetic `Dataset` as `Tiles` named ``"<prefix>/<index>"``, to score beside real tiles."""
    return Tiles(dataset.images, dataset.masks, [f"{prefix}/{k}" for k in range(len(dataset.images))],
                 dataset.labels)


def validation_split(tiles: Tiles) -> tuple[Tiles, Tiles]:
    """(training, validation) tiles of `tiles`: the first fifth (at least one tile) validates.

    Examples
    --------
    >>> t = Tiles(np.zeros((7, 32, 32)), np.ones((7, 32, 32), bool), [str(k) for k in range(7)])
    >>> [part.names for part in validation_split(t)]
    [['1', '2', '3', '4', '5', '6'], ['0']]
    """
    if len(tiles.images) < 2:
        raise ValueError(f"tiles: expected at least 2 tiles to split, got {len(tiles.images)}")
    split = max(1, len(tiles.images) // 5)
    return _part(tiles, slice(split, None)), _part(tiles, slice(0, split))
