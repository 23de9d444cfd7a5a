"""A user's images as the advice reads them: 2D frames of one structure, raw counts, any bit depth.

`read_images` accepts TIFF files, folders of them and numpy arrays, and turns them into a list of
2D float64 frames without rescaling (the acquisition estimate needs the counts as the camera wrote
them). A 3D stack counts as a set of 2D frames; a multi-channel one needs ``channel``. Frames may
differ in shape. Every refusal names the argument and what was expected.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import tifffile

#: File name endings read as TIFF.
TIFF_SUFFIXES = (".tif", ".tiff")
#: Frames smaller than this on a side are refused: the acquisition estimate and the models' inputs
#: (fully convolutional, sides in multiples of 32) need at least this much of an image.
MIN_SIDE_PX = 64


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in TIFF_SUFFIXES)
        if not files:
            raise ValueError(f"images: the folder {path} holds no TIFF file (*.tif, *.tiff)")
        return files
    if not path.exists():
        raise FileNotFoundError(f"images: no such file or folder {path}")
    if path.suffix.lower() not in TIFF_SUFFIXES:
        raise ValueError(f"images: {path} is not a TIFF file; expected *.tif or *.tiff (or a folder of them)")
    return [path]


def _read_tiff(path: Path) -> tuple[np.ndarray, str]:
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            return series.asarray(), series.axes
    except (tifffile.TiffFileError, ValueError, IndexError) as err:
        raise ValueError(f"images: {path} cannot be read as a TIFF image ({err})") from None


def _frames(array: np.ndarray, name: str, axes: str | None, channel: int | None) -> list[np.ndarray]:
    """The 2D frames of one array: (H, W), (N, H, W), or (C, N, H, W) / (N, C, H, W) with `channel`."""
    if array.dtype.kind not in "uif":
        raise ValueError(f"images: {name} has dtype {array.dtype}; expected integer or floating-point intensities")
    if axes and axes[-1] == "S" and array.shape[-1] in (3, 4):
        raise ValueError(f"images: {name} is an RGB image (shape {array.shape}); expected one fluorescence channel: "
                         "save the channel of the structure as a grayscale TIFF")
    if axes and "C" in axes and array.ndim >= 3:
        axis = axes.index("C")
        if channel is None:
            raise ValueError(f"images: {name} has {array.shape[axis]} channels (axes {axes}); pass channel= "
                             "(--channel) to say which one shows the structure")
        if not 0 <= channel < array.shape[axis]:
            raise ValueError(f"channel: {channel} is not a channel of {name}, which has {array.shape[axis]}")
        array = np.take(array, channel, axis=axis)
    elif array.ndim == 4:
        if channel is None:
            raise ValueError(f"images: {name} is a 4D stack (shape {array.shape}); pass channel= (--channel) to "
                             "say which channel (first axis) shows the structure")
        if not 0 <= channel < array.shape[0]:
            raise ValueError(f"channel: {channel} is not a channel of {name}, whose first axis has {array.shape[0]}")
        array = array[channel]
    elif channel is not None and array.ndim == 3 and not axes:
        pass  # a plain (N, H, W) array: the channel does not apply to it
    if array.ndim == 3 and array.shape[-1] in (3, 4) and min(array.shape[:2]) > 4:
        raise ValueError(f"images: {name} looks like an RGB image (shape {array.shape}); expected one fluorescence "
                         "channel as a grayscale image")
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise ValueError(f"images: {name} has shape {array.shape}; expected a 2D image (H, W) or a stack of them")
    return [np.asarray(frame, dtype=np.float64) for frame in array]


def _check_frame(frame: np.ndarray, name: str, min_side_px: int) -> np.ndarray:
    if not np.isfinite(frame).all():
        raise ValueError(f"images: {name} contains NaN or infinite values; expected finite intensities")
    if min(frame.shape) < min_side_px:
        raise ValueError(f"images: {name} is {frame.shape[0]} x {frame.shape[1]} px; the advice needs frames of "
                         f"at least {min_side_px} x {min_side_px} px (smaller images are refused, not tiled)")
    if frame.max() == frame.min():
        raise ValueError(f"images: {name} is constant ({frame.min()}); expected a fluorescence image")
    return frame


def read_images(images, *, channel: int | None = None,
                min_side_px: int = MIN_SIDE_PX) -> tuple[list[np.ndarray], list[str]]:
    """The 2D frames of `images` and a name for each.

    Parameters
    ----------
    images : str, Path, ndarray or a sequence of them
        TIFF files, folders of TIFF files, or numpy arrays: 2D images (H, W) of one structure in raw
        counts (any bit depth), or stacks (N, H, W) whose frames count as images. A multi-channel
        stack needs `channel`.
    channel : int, optional
        The channel that shows the structure, for multi-channel stacks.
    min_side_px : int
        Smallest accepted side of a frame (`MIN_SIDE_PX`).

    Returns
    -------
    frames : list of ndarray of float64, shape (H, W)
        Unscaled intensities; frames may differ in shape.
    names : list of str
        ``"<file>"``, or ``"<file>[<index>]"`` for the frames of a stack.

    Examples
    --------
    >>> frames, names = read_images(np.zeros((2, 64, 64)) + np.eye(64))
    >>> len(frames), names
    (2, ['array 0[0]', 'array 0[1]'])
    """
    items: Iterable = [images] if isinstance(images, (str, Path, np.ndarray)) else images
    if not isinstance(items, Sequence) or isinstance(items, (bytes, str)):
        items = list(items)
    frames, names = [], []
    for index, item in enumerate(items):
        if isinstance(item, np.ndarray):
            found = [(item, f"array {index}", None)]
        elif isinstance(item, (str, Path)):
            found = [(array, str(path), axes) for path in _files(Path(item)) for array, axes in [_read_tiff(path)]]
        else:
            raise ValueError(f"images: item {index} is a {type(item).__name__}; expected a TIFF path, a folder or "
                             "a numpy array")
        for array, name, axes in found:
            stack = _frames(np.asarray(array), name, axes, channel)
            for k, frame in enumerate(stack):
                label = name if len(stack) == 1 and np.asarray(array).ndim == 2 else f"{name}[{k}]"
                frames.append(_check_frame(frame, label, min_side_px))
                names.append(label)
    if not frames:
        raise ValueError("images: no image given; expected TIFF files, folders of them or numpy arrays")
    return frames, names
