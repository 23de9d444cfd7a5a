"""Fluorescence-microscopy corruptions at graded severities.

A registry of degradations that happen at the microscope, in five families (noise, optics,
illumination, sampling, artifacts). Each has severities 1-5 defined by one physical or
image-processing parameter (``CORRUPTIONS[name].severities``), and severity 0 is the identity.

``corrupt(image, name, severity, rng)`` takes float images in [0, 1], (H, W) or (N, H, W), and
returns the same shape and dtype. Results are clipped to [0, 1] like the display of the synthetic
images (`fmlib.synthesis`): a corruption that pushes values out of range saturates, as an 8-bit
display would.

Physical corruptions work in photo-electrons. Given a synthesis `Dataset` (``dataset=``), they
start from its raw counts and camera; otherwise the image is read as a display-mapped image of the
reference acquisition: an sCMOS camera at SNR 8 with a background of 0.15 of the signal, imaged
with a 1.4 NA oil objective at 0.1 µm pixels. Fewer photons are simulated by thinning: keeping a
fraction ``f`` of the detected electrons and topping up the read noise gives exactly the mean and
variance of a fresh acquisition with ``f`` times the photons.

Randomness: image ``i`` of a batch uses the ``i``-th generator spawned from `rng`, so a batch
equals the stack of its images corrupted one by one with the same generator object.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import fft as sp_fft
from scipy import ndimage

from ._checks import as_rng, check_choice, check_int
from .synthesis import CAMERAS, DISPLAY_BLACK, DISPLAY_SIGNAL, Camera, Optics, signal_for_snr
from .synthesis.optics import depth_of_field_um, pupil_psf

FAMILIES = ("noise", "optics", "illumination", "sampling", "artifacts")
SEVERITIES = (1, 2, 3, 4, 5)

#: The acquisition assumed for a plain float image (see module docstring).
REFERENCE_SNR = 8.0
REFERENCE_BACKGROUND_RATIO = 0.15
REFERENCE_CAMERA = CAMERAS["scmos"]
REFERENCE_OPTICS = Optics(wavelength_nm=520.0, numerical_aperture=1.4, refractive_index=1.518)
REFERENCE_PIXEL_UM = 0.1


@dataclass(frozen=True)
class Corruption:
    """A registered corruption: its function and the metadata the book's tables come from."""

    name: str
    family: str
    parameter: str
    unit: str
    severities: tuple
    description: str
    fn: Callable
    physical: bool = False

    def value(self, severity: int):
        """The parameter value at `severity` (1-5)."""
        return self.severities[severity - 1]


CORRUPTIONS: dict[str, Corruption] = {}


def _register(name: str, family: str, parameter: str, unit: str, severities: tuple, description: str,
              physical: bool = False):
    assert family in FAMILIES and len(severities) == 5

    def decorate(fn):
        CORRUPTIONS[name] = Corruption(name, family, parameter, unit, tuple(severities), description, fn, physical)
        return fn

    return decorate


def list_corruptions(family: str | None = None) -> list[str]:
    """Names of the registered corruptions, optionally of one family."""
    if family is not None:
        check_choice("family", family, FAMILIES)
    return [n for n, c in CORRUPTIONS.items() if family is None or c.family == family]


def corruption_table():
    """The registry as a pandas DataFrame: one row per corruption, one column per severity."""
    import pandas as pd

    rows = [{"corruption": c.name, "family": c.family, "parameter": c.parameter, "unit": c.unit,
             **{f"severity {s}": c.value(s) for s in SEVERITIES}, "description": c.description}
            for c in CORRUPTIONS.values()]
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------
# The acquisition behind an image: electrons <-> display
# ----------------------------------------------------------------------------------------------

@dataclass
class _Acquisition:
    camera: Camera
    signal_e: np.ndarray            # (N,) mean foreground signal, electrons
    background_ratio: np.ndarray    # (N,) background / signal
    optics: Optics
    pixel_size_um: float
    electrons_in: np.ndarray | None = None  # (N, H, W) measured electrons, when counts are known

    def electrons(self, x: np.ndarray) -> np.ndarray:
        if self.electrons_in is not None:
            return self.electrons_in.astype(np.float64)
        return (x - DISPLAY_BLACK) / DISPLAY_SIGNAL * self.signal_e[:, None, None]

    @staticmethod
    def display(electrons: np.ndarray, signal_e: np.ndarray) -> np.ndarray:
        return DISPLAY_BLACK + DISPLAY_SIGNAL * electrons / np.asarray(signal_e, float)[:, None, None]


def _reference(n: int) -> _Acquisition:
    s = signal_for_snr(REFERENCE_SNR, REFERENCE_BACKGROUND_RATIO, REFERENCE_CAMERA)
    return _Acquisition(REFERENCE_CAMERA, np.full(n, s), np.full(n, REFERENCE_BACKGROUND_RATIO), REFERENCE_OPTICS,
                        REFERENCE_PIXEL_UM)


def _from_dataset(dataset, shape: tuple) -> _Acquisition:
    if tuple(dataset.images.shape) != tuple(shape):
        raise ValueError(f"dataset: its images have shape {dataset.images.shape}, but image has shape {shape}; "
                         "pass dataset.images (or a matching slice of the dataset)")
    signal_e = np.array([m["signal_e"] for m in dataset.metadata], float)
    background = np.array([m["background_e"] for m in dataset.metadata], float) / signal_e
    o = dataset.params["optics"]
    return _Acquisition(dataset.camera, signal_e, background, Optics(**o), dataset.pixel_size_um,
                        electrons_in=dataset.electrons())


def _thin(electrons: np.ndarray, fraction: np.ndarray, camera: Camera, rngs) -> np.ndarray:
    """Keep `fraction` of the photons: the mean and variance of a fresh acquisition with fewer photons.

    Scaling by f leaves shot variance f^2 F^2 E and read variance f^2 sigma^2; adding a centred
    Poisson term of variance F^2 f (1 - f) E and read noise of variance (1 - f^2) sigma^2 restores
    F^2 f E + sigma^2, the camera's noise at the reduced budget.
    """
    out = np.empty_like(electrons)
    for i, rng in enumerate(rngs):
        f = float(fraction[i])
        if not 0 < f <= 1:
            raise ValueError(f"severity: needs {1 / f:.2f} times the photons the image has; corruptions can only "
                             "remove photons (is the input already noisier than the requested level?)")
        lam = camera.excess_noise_factor_sq * f * (1 - f) * np.maximum(electrons[i], 0)
        shot = rng.poisson(lam) - lam
        read = rng.normal(0.0, camera.read_noise_e * math.sqrt(max(1 - f * f, 0.0)), size=lam.shape)
        out[i] = f * electrons[i] + shot + read
    return out


def _each(x: np.ndarray, rngs, fn) -> np.ndarray:
    """Apply fn(image, rng) to each image of a batch."""
    return np.stack([fn(image, rng) for image, rng in zip(x, rngs)])


@functools.lru_cache(maxsize=32)
def _kernel_spectrum(kernel_bytes: bytes, kernel_shape: tuple, fft_shape: tuple) -> np.ndarray:
    kernel = np.frombuffer(kernel_bytes, dtype=np.float64).reshape(kernel_shape).astype(np.float32)
    return sp_fft.rfft2(kernel, fft_shape)


def _convolve(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve each image with `kernel` (FFT), mirroring the borders so no intensity is lost.

    The kernel's spectrum is cached, so a batch, or a sweep over images, pays for it once.
    """
    kh, kw = kernel.shape
    ph, pw = kh // 2, kw // 2
    # Single precision halves the FFT cost; its ~1e-7 relative error is far below a grey level.
    padded = np.pad(x.astype(np.float32), ((0, 0), (ph, ph), (pw, pw)), mode="reflect")
    fft_shape = tuple(sp_fft.next_fast_len(n, real=True) for n in padded.shape[1:])
    kernel = np.ascontiguousarray(kernel, dtype=np.float64)
    spectrum = _kernel_spectrum(kernel.tobytes(), kernel.shape, fft_shape)
    full = sp_fft.irfft2(sp_fft.rfft2(padded, fft_shape, axes=(1, 2)) * spectrum, fft_shape, axes=(1, 2))
    h, w = x.shape[1:]
    return full[:, kh - 1:kh - 1 + h, kw - 1:kw - 1 + w]


# ----------------------------------------------------------------------------------------------
# Noise
# ----------------------------------------------------------------------------------------------

@_register("photon_noise", "noise", "SNR", "S / noise over the foreground", (6.0, 4.0, 3.0, 2.0, 1.0),
           "Fewer photons: the paper's SNR ladder below the clean SNR 8, by photon thinning.", physical=True)
def _photon_noise(x, snr, rngs, acq):
    target = np.array([signal_for_snr(snr, b, acq.camera) for b in acq.background_ratio])
    electrons = _thin(acq.electrons(x), target / acq.signal_e, acq.camera, rngs)
    return electrons, target  # display set for the new budget, as in make_dataset


@_register("read_noise", "noise", "read noise", "e- rms", (4.0, 8.0, 16.0, 32.0, 64.0),
           "Gaussian camera read noise of the given total rms, in electrons.", physical=True)
def _read_noise(x, sigma_e, rngs, acq):
    extra = math.sqrt(max(sigma_e**2 - acq.camera.read_noise_e**2, 0.0))
    electrons = acq.electrons(x)
    noisy = electrons + np.stack([rng.normal(0.0, extra, size=x.shape[1:]) for rng in rngs])
    return noisy, acq.signal_e


@_register("poisson_gaussian", "noise", "(a, sigma)", "grey level (image in [0, 1])",
           ((0.0025, 0.01), (0.005, 0.02), (0.01, 0.03), (0.02, 0.05), (0.04, 0.08)),
           "Mixed Poisson-Gaussian noise a * Poisson(x / a) + N(0, sigma^2), as in the paper's updated release.")
def _poisson_gaussian(x, params, rngs, acq):
    a, sigma = params

    def one(image, rng):
        return a * rng.poisson(np.maximum(image, 0) / a) + rng.normal(0.0, sigma, size=image.shape)

    return _each(x, rngs, one)


@_register("hot_pixels", "noise", "fraction of pixels", "", (0.002, 0.005, 0.01, 0.02, 0.05),
           "Impulse noise: hot (white) and dead (black) pixels, half each.")
def _hot_pixels(x, fraction, rngs, acq):
    out = x.copy()
    for image, rng in zip(out, rngs):
        u = rng.random(image.shape)
        image[u < fraction / 2] = 0.0
        image[u > 1 - fraction / 2] = 1.0
    return out


@_register("em_gain_noise", "noise", "photo-electrons per foreground pixel", "e-", (50.0, 25.0, 12.0, 6.0, 3.0),
           "EMCCD acquisition at a low photon budget: shot noise doubled by the electron-multiplying register.")
def _em_gain_noise(x, electrons_fg, rngs, acq):
    camera = CAMERAS["emccd"]
    relative = np.maximum((x - DISPLAY_BLACK) / DISPLAY_SIGNAL, 0.0)

    def one(image, rng):
        counts = rng.poisson(image * electrons_fg)
        multiplied = rng.gamma(np.maximum(counts, 1e-12), 1.0) * (counts > 0)
        return multiplied + rng.normal(0.0, camera.read_noise_e, size=image.shape)

    return acq.display(_each(relative, rngs, one), np.full(len(x), electrons_fg))


# ----------------------------------------------------------------------------------------------
# Optics
# ----------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=64)
def _pupil_kernel(optics: Optics, pixel_size_um: float, defocus_um: float = 0.0, astigmatism_waves: float = 0.0):
    # Half-width: the geometric blur radius plus a few in-focus PSF widths, in pixels.
    half_angle = math.asin(optics.numerical_aperture / optics.refractive_index)
    radius_um = abs(defocus_um) * math.tan(half_angle) + 4 * optics.psf_sigma_um * (1 + 4 * abs(astigmatism_waves))
    half = int(min(max(math.ceil(radius_um / pixel_size_um), 3), 48))
    return pupil_psf(optics, pixel_size_um, 2 * half + 1, defocus_um=defocus_um, astigmatism_waves=astigmatism_waves)


@_register("defocus", "optics", "defocus", "depths of field (lambda n / NA^2)", (0.5, 1.0, 1.5, 2.0, 3.0),
           "Out-of-focus imaging: convolution with the scalar pupil-function PSF at the given defocus.")
def _defocus(x, dof, rngs, acq):
    z = dof * depth_of_field_um(acq.optics)
    return _convolve(x, _pupil_kernel(acq.optics, acq.pixel_size_um, defocus_um=z))


@_register("gaussian_blur", "optics", "sigma", "pixels", (0.5, 1.0, 1.5, 2.0, 3.0),
           "Gaussian blur (a wider in-focus PSF).")
def _gaussian_blur(x, sigma, rngs, acq):
    return ndimage.gaussian_filter(x, (0, sigma, sigma), mode="reflect", truncate=3.0)


def _line_kernel(length: float, angle: float) -> np.ndarray:
    half = int(math.ceil(length / 2)) + 1
    kernel = np.zeros((2 * half + 1, 2 * half + 1))
    t = np.linspace(-length / 2, length / 2, max(int(length * 8), 2))
    ys, xs = half + t * math.sin(angle), half + t * math.cos(angle)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    wy, wx = ys - y0, xs - x0
    for dy, dx, w in ((0, 0, (1 - wy) * (1 - wx)), (1, 0, wy * (1 - wx)), (0, 1, (1 - wy) * wx), (1, 1, wy * wx)):
        np.add.at(kernel, (y0 + dy, x0 + dx), w)
    return kernel / kernel.sum()


@_register("motion_blur", "optics", "drift during the exposure", "pixels", (2.0, 4.0, 6.0, 9.0, 12.0),
           "Stage drift during the exposure: a straight blur of the given length in a random direction.")
def _motion_blur(x, length, rngs, acq):
    return _each(x, rngs, lambda image, rng: _convolve(image[None], _line_kernel(length, rng.uniform(0, np.pi)))[0])


@_register("astigmatism", "optics", "astigmatism Z(2,2)", "waves rms", (0.1, 0.2, 0.3, 0.45, 0.6),
           "Astigmatic PSF from a Zernike Z(2,2) pupil aberration (e.g. a tilted cover glass).")
def _astigmatism(x, waves, rngs, acq):
    return _convolve(x, _pupil_kernel(acq.optics, acq.pixel_size_um, astigmatism_waves=waves))


# ----------------------------------------------------------------------------------------------
# Illumination
# ----------------------------------------------------------------------------------------------

@_register("low_contrast", "illumination", "contrast factor", "", (0.75, 0.5, 0.35, 0.25, 0.15),
           "Contrast reduced around the image mean.")
def _low_contrast(x, factor, rngs, acq):
    mean = x.mean(axis=(1, 2), keepdims=True)
    return mean + (x - mean) * factor


@_register("brightness", "illumination", "offset", "grey level (image in [0, 1])", (0.05, 0.1, 0.2, 0.3, 0.4),
           "A constant offset (camera bias or dark-level change).")
def _brightness(x, offset, rngs, acq):
    return x + offset


@_register("uneven_illumination", "illumination", "intensity lost at the far corner", "", (0.1, 0.2, 0.35, 0.5, 0.7),
           "Vignetting / flat-field error: a radial fall-off of the excitation around a random centre.")
def _uneven_illumination(x, falloff, rngs, acq):
    h, w = x.shape[1:]
    yy, xx = np.mgrid[:h, :w]

    def one(image, rng):
        cy, cx = (0.5 + rng.uniform(-0.2, 0.2, 2)) * (h, w)
        r2 = (yy - cy) ** 2 + (xx - cx) ** 2
        profile = 1 - falloff * r2 / r2.max()
        return DISPLAY_BLACK + (image - DISPLAY_BLACK) * profile  # the camera offset is not illuminated

    return _each(x, rngs, one)


@_register("background_haze", "illumination", "haze", "fraction of the foreground signal", (0.05, 0.1, 0.2, 0.3, 0.45),
           "Out-of-focus light and autofluorescence: smooth extra background, with its shot noise.", physical=True)
def _background_haze(x, level, rngs, acq):
    electrons = acq.electrons(x)
    h, w = x.shape[1:]
    out = np.empty_like(electrons)
    for i, rng in enumerate(rngs):
        # A smooth random field on the scale of an eighth of the image: cubic interpolation of a
        # coarse random grid (a Gaussian filter that wide would cost more than the rest together).
        coarse = rng.standard_normal((9, 9))
        field = ndimage.zoom(coarse, (h / 9, w / 9), order=3, mode="grid-mirror", grid_mode=True)
        field = np.maximum(1 + 0.5 * (field - field.mean()) / (field.std() + 1e-12), 0)
        haze = level * acq.signal_e[i] * field
        lam = acq.camera.excess_noise_factor_sq * haze
        out[i] = electrons[i] + haze + (rng.poisson(lam) - lam)
    return out, acq.signal_e


@_register("photobleaching", "illumination", "fluorescence left", "fraction", (0.8, 0.6, 0.45, 0.3, 0.2),
           "Photobleaching: fewer emitted photons, so a darker and relatively noisier image.", physical=True)
def _photobleaching(x, left, rngs, acq):
    # Only the fluorophores bleach; to first order the background bleaches alike.
    electrons = _thin(acq.electrons(x), np.full(len(x), left), acq.camera, rngs)
    return electrons, acq.signal_e  # display unchanged: the image gets darker


@_register("saturation", "illumination", "full well", "fraction of the brightest signal", (0.9, 0.75, 0.6, 0.45, 0.3),
           "Clipping at the full-well capacity (or a too-high gain): the brightest signal saturates at a fraction "
           "of its level (99.9th percentile above the camera offset).")
def _saturation(x, level, rngs, acq):
    top = np.percentile(x, 99.9, axis=(1, 2), keepdims=True)
    return np.minimum(x, DISPLAY_BLACK + level * np.maximum(top - DISPLAY_BLACK, 0))


# ----------------------------------------------------------------------------------------------
# Sampling
# ----------------------------------------------------------------------------------------------

@_register("undersampling", "sampling", "binning factor", "pixels", (2, 3, 4, 5, 6),
           "Pixelation: k x k binning (or a k-times larger camera pixel), shown at the original size.")
def _undersampling(x, k, rngs, acq):
    n, h, w = x.shape
    hp, wp = -(-h // k) * k, -(-w // k) * k
    padded = np.pad(x, ((0, 0), (0, hp - h), (0, wp - w)), mode="edge")
    binned = padded.reshape(n, hp // k, k, wp // k, k).mean(axis=(2, 4))
    blocks = np.broadcast_to(binned[:, :, None, :, None], (n, hp // k, k, wp // k, k))
    return blocks.reshape(n, hp, wp)[:, :h, :w]


@_register("bit_depth", "sampling", "bits", "bits", (6, 5, 4, 3, 2),
           "Quantization of the display image to fewer bits.")
def _bit_depth(x, bits, rngs, acq):
    levels = 2**bits - 1
    return np.round(np.clip(x, 0, 1) * levels) / levels


@_register("jpeg_compression", "sampling", "JPEG quality", "", (80, 60, 40, 20, 10),
           "Lossy JPEG compression of the 8-bit display image.")
def _jpeg(x, quality, rngs, acq):
    from PIL import Image

    grey = np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)
    out = np.empty(x.shape, np.uint8)
    for i, image in enumerate(grey):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=quality)
        out[i] = np.asarray(Image.open(buffer))
    return out / 255.0


# ----------------------------------------------------------------------------------------------
# Artifacts
# ----------------------------------------------------------------------------------------------

@_register("stripes", "artifacts", "column offset sigma", "grey level (image in [0, 1])",
           (0.01, 0.02, 0.04, 0.06, 0.1),
           "sCMOS column fixed-pattern noise plus scan-line (row) offsets of half that size.")
def _stripes(x, sigma, rngs, acq):
    h, w = x.shape[1:]

    def one(image, rng):
        offsets = rng.normal(0.0, sigma, size=w + h)
        return image + offsets[None, :w] + 0.5 * offsets[w:, None]

    return _each(x, rngs, one)


# ----------------------------------------------------------------------------------------------
# Public entry point
# ----------------------------------------------------------------------------------------------

def corrupt(image: np.ndarray, name: str, severity: int, rng: int | np.random.Generator | None = None, *,
            dataset=None) -> np.ndarray:
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


def corrupt_dataset(dataset, name: str, severity: int, rng: int | np.random.Generator | None = None):
    """Apply a physical corruption to a synthesis `Dataset` in photo-electrons; returns a new Dataset.

    The new raw counts go through the dataset's camera gain, offset, quantization and saturation,
    and the images through the same display mapping as `make_dataset` (for ``photon_noise``, set for
    the new photon budget), so the result is what the camera would have recorded.
    Only corruptions with ``CORRUPTIONS[name].physical`` are accepted.
    """
    import copy

    from .synthesis import display_from_raw

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
    out.raw = np.clip(np.rint(electrons * camera.gain_adu_per_e + camera.offset_adu), 0, camera.max_adu).astype(np.uint16)
    out.images = np.stack([display_from_raw(r, s, camera) for r, s in zip(out.raw, signal_e)])
    for meta, s in zip(out.metadata, signal_e):
        meta.update({"corruption": name, "severity": severity, "display_signal_e": float(s)})
    return out
