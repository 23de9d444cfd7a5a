"""Datasets of synthetic fluorescence images: structure -> optics -> camera, with exact masks.

``make_dataset`` draws `n` fields of view; ``iter_images`` streams the same images one at a time
(image ``i`` of a stream equals image ``i`` of a dataset with the same arguments), for training
on fresh images every epoch. `fmlib.synthesis.tiff` writes and reads them as TIFF files.

Display mapping (raw counts -> float image in [0, 1])
------------------------------------------------------
``image = clip(DISPLAY_BLACK + DISPLAY_SIGNAL * electrons / S, 0, 1)``, with ``electrons`` the
measured photo-electrons ``(raw - offset) / gain`` and ``S`` the mean expected foreground signal.
Zero electrons map to 0.1 and the mean foreground signal to 0.45, whatever the photon budget, the
way a microscopist sets the display range for an acquisition. So an intensity means the same at
every SNR (as in the paper, where noise is added to images of fixed brightness) and an attack
budget of 8/255 is 8 grey levels of that display. Values pushed out of [0, 1] by noise are clipped
as on an 8-bit display; the fraction is recorded per image (``clipped_fraction``). The raw uint16
counts keep the full, unclipped statistics.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from .._checks import check_choice, check_int, check_range, check_real
from . import structures
from .camera import (
    Camera,
    expose,
    get_camera,
    signal_for_snr,
    snr_from_levels,
    to_electrons,
)
from .optics import MODALITIES, Optics, bin_pixels, blur
from .registry import STRUCTURES, StructureSpec

DISPLAY_BLACK = 0.1
DISPLAY_SIGNAL = 0.35

#: Physics parameters shared by all structures, with their defaults (None: the structure's default).
PHYSICS_DEFAULTS: dict = dict(
    pixel_size_um=None, wavelength_nm=None, numerical_aperture=None, refractive_index=None,
    modality="widefield", defocus_um=0.0, camera="scmos", background_ratio=0.1,
    autofluorescence_ratio=0.05, autofluorescence_scale_um=3.0, supersample=2,
)


@dataclass
class Dataset:
    """Synthetic images with ground truth.

    Attributes
    ----------
    images : ndarray of float32, shape (N, H, W)
        Display-mapped images in [0, 1] (see module docstring).
    raw : ndarray of uint16, shape (N, H, W)
        Camera counts in ADU.
    masks : ndarray of uint8, shape (N, H, W)
        Semantic ground truth, 1 = structure.
    labels : ndarray of int32, shape (N, H, W), or None
        Instance labels (nuclei, mitochondria); None for the ER network.
    metadata : list of dict
        Per image: seed, photon budget, signal and background in electrons, SNR, objects drawn.
    params : dict
        Every parameter of the simulation (structure, physics, camera, optics), JSON-serializable.
    """

    structure: str
    images: np.ndarray
    raw: np.ndarray
    masks: np.ndarray
    labels: np.ndarray | None
    metadata: list[dict]
    params: dict

    def __len__(self) -> int:
        return len(self.images)

    @property
    def pixel_size_um(self) -> float:
        return float(self.params["physics"]["pixel_size_um"])

    @property
    def camera(self) -> Camera:
        return Camera(**self.params["camera"])

    def electrons(self) -> np.ndarray:
        """Raw counts converted to photo-electrons, float64 (N, H, W)."""
        return to_electrons(self.raw, self.camera)


def _resolve(structure: str, size, snr, physics: dict):
    """Validate every argument; split `physics` into physics and structure parameters.

    Returns (spec, size, physics, structure parameters, optics, camera)."""
    spec = STRUCTURES[check_choice("structure", structure, STRUCTURES)]
    size = _check_size(size)
    check_real("snr", snr, low=0.0, low_inclusive=False, high=1000.0)
    valid = set(PHYSICS_DEFAULTS) | set(spec.params)
    unknown = sorted(set(physics) - valid)
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown parameter for structure {structure!r}; "
                         f"expected one of {', '.join(sorted(valid))}")
    phys = {**PHYSICS_DEFAULTS, **{k: v for k, v in physics.items() if k in PHYSICS_DEFAULTS}}
    for key in ("pixel_size_um", "wavelength_nm", "numerical_aperture", "refractive_index"):
        if phys[key] is None:
            phys[key] = getattr(spec, key)
    check_real("pixel_size_um", phys["pixel_size_um"], low=0.01, high=10.0)
    check_choice("modality", phys["modality"], MODALITIES)
    check_real("background_ratio", phys["background_ratio"], low=0.0, high=100.0)
    check_real("autofluorescence_ratio", phys["autofluorescence_ratio"], low=0.0, high=100.0)
    check_real("autofluorescence_scale_um", phys["autofluorescence_scale_um"], low=0.01, high=1000.0)
    check_int("supersample", phys["supersample"], low=1, high=8)
    optics = Optics(phys["wavelength_nm"], phys["numerical_aperture"], phys["refractive_index"],
                    phys["modality"], phys["defocus_um"])
    camera = get_camera(phys["camera"])
    phys["camera"] = camera.name
    sparams = {**spec.params, **{k: v for k, v in physics.items() if k in spec.params}}
    for key, default in spec.params.items():
        value = sparams[key]
        if isinstance(default, tuple):
            sparams[key] = check_range(key, value, low=0.0, low_inclusive=True)
            if isinstance(default[0], int):
                sparams[key] = tuple(check_int(f"{key}[{i}]", v, low=0) for i, v in enumerate(value))
        else:
            sparams[key] = check_real(key, value, low=0.0)
    return spec, size, phys, sparams, optics, camera


def _check_size(size) -> tuple[int, int]:
    pair = (size, size) if not isinstance(size, (tuple, list)) else tuple(size)
    if len(pair) != 2:
        raise ValueError(f"size: expected an int or an (H, W) pair, got {size!r}")
    return tuple(check_int("size", v, low=32, high=4096) for v in pair)


def _seeds(seed: int, index: int, noise_seed: int | None) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent scene and noise streams for image `index`.

    The scene depends only on (seed, index), so the same field can be imaged at several SNRs or
    with several noise realizations (`noise_seed`).
    """
    scene_seq, noise_seq = np.random.SeedSequence(seed, spawn_key=(index,)).spawn(2)
    if noise_seed is not None:
        noise_seq = np.random.SeedSequence(noise_seed, spawn_key=(index, 1))
    return np.random.default_rng(scene_seq), np.random.default_rng(noise_seq)


def _simulate(spec: StructureSpec, size: tuple[int, int], snr: float, phys: dict, sparams: dict,
              optics: Optics, camera: Camera, seed: int, index: int, noise_seed: int | None) -> dict:
    scene_rng, noise_rng = _seeds(seed, index, noise_seed)
    s = int(phys["supersample"])
    px = float(phys["pixel_size_um"])
    scene = spec.generate(size, px, s, scene_rng, **sparams)
    # Optics on the supersampled grid, then integrate over each camera pixel.
    density = bin_pixels(blur(scene.density, optics.psf_sigma_um / px * s), s)
    mask = bin_pixels(scene.occupancy.astype(np.float32), s) >= 0.5
    labels = None
    if scene.labels is not None:
        labels = scene.labels.reshape(size[0], s, size[1], s).max(axis=(1, 3)) * mask
    if not mask.any():
        raise RuntimeError(f"structure {spec.name!r}: empty mask for seed {seed}, image {index}; "
                           "enlarge `size` or the object density")
    # Background: uniform plus smooth autofluorescence, both proportional to the photon budget.
    auto = 1.0 + 0.5 * structures._smooth_noise(size, phys["autofluorescence_scale_um"] / px, scene_rng)
    background_rel = phys["background_ratio"] + phys["autofluorescence_ratio"] * np.maximum(auto, 0.0)
    beta = float(background_rel[mask].mean())
    signal_e = signal_for_snr(snr, beta, camera)
    expected_e = signal_e * (density / density[mask].mean() + background_rel)
    raw = expose(expected_e, camera, noise_rng)
    electrons = (raw.astype(np.float64) - camera.offset_adu) / camera.gain_adu_per_e
    display = DISPLAY_BLACK + DISPLAY_SIGNAL * electrons / signal_e
    image = np.clip(display, 0.0, 1.0).astype(np.float32)
    meta = {
        "index": index, "seed": seed, "noise_seed": noise_seed, "snr": float(snr),
        "snr_expected": snr_from_levels(signal_e, beta * signal_e, camera),
        "signal_e": signal_e, "background_e": beta * signal_e,
        "photons_per_foreground_pixel": signal_e / camera.quantum_efficiency,
        "foreground_fraction": float(mask.mean()),
        "clipped_fraction": float(((display < 0) | (display > 1)).mean()),
        "saturated_fraction": float((raw >= camera.max_adu).mean()),
        "n_objects": len(scene.objects), "objects": scene.objects,
    }
    return {"image": image, "raw": raw, "mask": mask.astype(np.uint8),
            "labels": None if labels is None else labels.astype(np.int32), "meta": meta}


def _params(spec, size, snr, seed, phys, sparams, optics, camera) -> dict:
    return {"structure": spec.name, "size": list(size), "snr": float(snr), "seed": int(seed),
            "physics": {k: v for k, v in phys.items()}, "structure_params": {k: list(v) if isinstance(v, tuple) else v
                                                                          for k, v in sparams.items()},
            "optics": optics.to_dict(), "psf_sigma_um": optics.psf_sigma_um, "camera": camera.to_dict(),
            "display": {"black": DISPLAY_BLACK, "signal": DISPLAY_SIGNAL}}


def make_dataset(structure: str, n: int, size: int | tuple[int, int] = 128, snr: float = 8.0, seed: int = 0,
                 *, noise_seed: int | None = None, progress: bool = False, **physics) -> Dataset:
    """Simulate `n` fluorescence images of `structure` with exact ground truth at a given SNR.

    Parameters
    ----------
    structure : {"nuclei", "mitochondria", "er"}
    n : int
        Number of images, >= 1.
    size : int or (int, int)
        Image size in pixels (each side >= 32).
    snr : float
        Signal-to-noise ratio ``S / sqrt(F^2 (S + B) + read^2 + quantization)`` over the
        foreground (see `fmlib.synthesis.camera`); the photon budget is solved to give it exactly.
    seed : int
        Seed of the scenes and the noise; the same arguments give the same bytes.
    noise_seed : int, optional
        Seed of the noise alone: the same scenes imaged again with new noise.
    progress : bool
        Show a tqdm progress bar.
    **physics
        Physics: ``pixel_size_um``, ``wavelength_nm``, ``numerical_aperture``, ``refractive_index``,
        ``modality`` ("widefield", "confocal"), ``defocus_um``, ``camera`` ("scmos", "emccd" or a
        `Camera`), ``background_ratio`` and ``autofluorescence_ratio`` (background electrons per
        foreground signal electron), ``autofluorescence_scale_um``, ``supersample``; and any
        parameter of the structure generator (``STRUCTURES[structure].params``).

    Returns
    -------
    Dataset

    Raises
    ------
    ValueError
        For an unknown structure or parameter, ``snr <= 0``, ``size < 32``, ``n < 1`` or a
        non-finite or out-of-range physics parameter; the message names the argument.

    Examples
    --------
    >>> ds = make_dataset("nuclei", n=2, size=64, snr=4.0, seed=1)
    >>> ds.images.shape, ds.images.dtype, ds.raw.dtype, ds.masks.dtype
    ((2, 64, 64), dtype('float32'), dtype('uint16'), dtype('uint8'))
    """
    check_int("n", n, low=1)
    check_int("seed", seed, low=0)
    if noise_seed is not None:
        check_int("noise_seed", noise_seed, low=0)
    spec, size, phys, sparams, optics, camera = _resolve(structure, size, snr, physics)
    indices = range(n)
    if progress:
        indices = tqdm(indices, desc=f"simulating {structure}", unit="img")
    samples = [_simulate(spec, size, snr, phys, sparams, optics, camera, seed, i, noise_seed) for i in indices]
    labels = np.stack([s["labels"] for s in samples]) if spec.has_instances else None
    return Dataset(structure=spec.name, images=np.stack([s["image"] for s in samples]),
                   raw=np.stack([s["raw"] for s in samples]), masks=np.stack([s["mask"] for s in samples]),
                   labels=labels, metadata=[s["meta"] for s in samples],
                   params=_params(spec, size, snr, seed, phys, sparams, optics, camera))


def iter_images(structure: str, size: int | tuple[int, int] = 128, snr: float = 8.0, seed: int = 0, *,
                start: int = 0, stop: int | None = None, noise_seed: int | None = None,
                **physics) -> Iterator[dict]:
    """Stream images one at a time: fresh training images without holding a dataset in memory.

    Yields dicts with ``image``, ``raw``, ``mask``, ``labels`` and ``meta`` for indices
    ``start, start + 1, ...`` (forever if `stop` is None). Image ``i`` equals image ``i`` of
    ``make_dataset`` with the same arguments, so an epoch ``e`` of ``k`` images can be
    ``iter_images(..., start=e * k, stop=(e + 1) * k)``.
    """
    check_int("seed", seed, low=0)
    check_int("start", start, low=0)
    if stop is not None:
        check_int("stop", stop, low=start)
    spec, size, phys, sparams, optics, camera = _resolve(structure, size, snr, physics)
    index = start
    while stop is None or index < stop:
        yield _simulate(spec, size, snr, phys, sparams, optics, camera, seed, index, noise_seed)
        index += 1


def display_from_raw(raw: np.ndarray, signal_e: float, camera: Camera) -> np.ndarray:
    """Apply the display mapping (module docstring) to raw counts of one image."""
    electrons = (raw.astype(np.float64) - camera.offset_adu) / camera.gain_adu_per_e
    return np.clip(DISPLAY_BLACK + DISPLAY_SIGNAL * electrons / signal_e, 0.0, 1.0).astype(np.float32)
