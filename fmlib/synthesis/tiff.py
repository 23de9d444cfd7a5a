"""TIFF I/O: a `Dataset` as one file per image, readable in Fiji and napari.

Raw counts, masks and labels each go to their own folder; every image carries its pixel size
and, as JSON, every simulation parameter and its own metadata, so `load_tiff` rebuilds the
dataset, float images included, from the files alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import tifffile

from .camera import Camera
from .datasets import Dataset, display_from_raw


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def save_tiff(dataset: Dataset, folder: str | Path) -> Path:
    """Write a dataset as TIFF files: ``images/NNNN.tif`` (uint16 raw counts), ``masks/NNNN.tif``
    (uint8) and, where the structure has instances, ``labels/NNNN.tif`` (uint16 or int32).

    Every image carries the pixel size in its resolution tags (pixels per cm, which Fiji and
    napari read as µm) and, as JSON in its ImageDescription, all simulation parameters and its own
    metadata, so each file stands alone. Returns the folder.
    """
    folder = Path(folder)
    for sub in ("images", "masks") + (("labels",) if dataset.labels is not None else ()):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    px_per_cm = 1e4 / dataset.pixel_size_um
    for i in range(len(dataset)):
        description = json.dumps({"fmrobust": {"params": dataset.params, "meta": dataset.metadata[i]}},
                                 default=_json_default)
        common = dict(resolution=(px_per_cm, px_per_cm), resolutionunit="CENTIMETER", metadata=None)
        tifffile.imwrite(folder / "images" / f"{i:04d}.tif", dataset.raw[i], description=description, **common)
        tifffile.imwrite(folder / "masks" / f"{i:04d}.tif", dataset.masks[i], **common)
        if dataset.labels is not None:
            tifffile.imwrite(folder / "labels" / f"{i:04d}.tif", dataset.labels[i], **common)
    return folder


def load_tiff(folder: str | Path) -> Dataset:
    """Read a dataset written by `save_tiff`; the float images are rebuilt from the raw counts."""
    folder = Path(folder)
    files = sorted((folder / "images").glob("*.tif"))
    if not files:
        raise ValueError(f"folder: no images/*.tif in {folder}")
    raws, masks, labels, metas, params = [], [], [], [], None
    for f in files:
        with tifffile.TiffFile(f) as tif:
            raws.append(tif.pages[0].asarray())
            info = json.loads(tif.pages[0].description)["fmrobust"]
        params = info["params"]
        metas.append(info["meta"])
        masks.append(tifffile.imread(folder / "masks" / f.name))
        if (folder / "labels" / f.name).exists():
            labels.append(tifffile.imread(folder / "labels" / f.name))
    camera = Camera(**params["camera"])
    images = np.stack([display_from_raw(r, m["signal_e"], camera) for r, m in zip(raws, metas)])
    return Dataset(structure=params["structure"], images=images, raw=np.stack(raws), masks=np.stack(masks),
                   labels=np.stack(labels).astype(np.int32) if labels else None, metadata=metas, params=params)
