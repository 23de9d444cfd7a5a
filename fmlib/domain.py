"""Domain randomization: synthetic training sets whose acquisition physics vary from image to image.

A model trained at one simulated acquisition (one SNR, background, focus and pixel size) meets real
images taken with other settings. Drawing those settings per image from wide ranges, as
sim-to-real work does (Tobin et al. 2017), asks the model for what holds across acquisitions, the
object, rather than for one acquisition's look. Every image keeps its exact ground truth; only the
physics of `fmlib.synthesis.make_dataset` varies.

The study's models train on randomized acquisitions when the profile's ``training_randomization``
is above zero (`fmlib.checkpoints.DataSpec`); the sim-to-real experiments of `fmlib.simtoreal` also
train the best architecture at several strengths.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from tqdm.auto import tqdm

from ._checks import check_int, check_range, check_real
from .display import normalize
from .synthesis import STRUCTURES, Dataset, make_dataset

#: Physics drawn log-uniformly (they act multiplicatively); the others are drawn uniformly.
LOG_UNIFORM = ("snr", "background_ratio", "pixel_size_scale")

#: The acquisition the study trains at (`fmlib.grid.data_spec`, the simulator's defaults): what
#: `PhysicsRanges.scaled` shrinks the ranges towards.
REFERENCE = {"snr": 8.0, "background_ratio": 0.1, "autofluorescence_ratio": 0.05, "defocus_um": 0.0,
             "pixel_size_scale": 1.0}


@dataclass(frozen=True)
class PhysicsRanges:
    """Ranges from which each image's acquisition physics is drawn.

    Attributes
    ----------
    snr : (float, float)
        Signal-to-noise ratio (log-uniform); the study's training SNR is 8.
    background_ratio : (float, float)
        Uniform background, in electrons per foreground signal electron (log-uniform); the
        simulator's default is 0.1. Real widefield images often carry out-of-focus haze of the
        order of the signal itself.
    autofluorescence_ratio : (float, float)
        Smooth autofluorescence, per foreground signal electron (uniform); default 0.05.
    defocus_um : (float, float)
        Defocus of the focal plane, in µm (uniform); the simulator's default is 0. Up to 6 µm (3 µm
        at the study's strength 0.5): the depth of field of the nuclei objective (20x/0.75 air,
        about lambda / NA^2 = 0.8 µm) is a fraction of a 3-6 µm thick nucleus and of the focus
        drift across a plate, so real widefield nuclei are rarely sharp. The realism report of the
        standard run of commit d673727 found every real source poorer in high spatial frequencies
        than the simulator, with the 0-1 µm range of before; the wider range was chosen on the
        selection source (`fmlib.realdata.SELECTION_SOURCE`), not on a test image (issue #20).
    pixel_size_scale : (float, float)
        Pixel size as a multiple of the structure's default (log-uniform): objects at 1/scale
        times their default size in pixels.
    """

    snr: tuple[float, float] = (2.0, 20.0)
    background_ratio: tuple[float, float] = (0.05, 2.0)
    autofluorescence_ratio: tuple[float, float] = (0.0, 0.5)
    defocus_um: tuple[float, float] = (0.0, 6.0)
    pixel_size_scale: tuple[float, float] = (0.7, 1.6)

    def __post_init__(self):
        for name, (low, high) in asdict(self).items():
            check_range(name, (low, high), low=0.0, low_inclusive=name not in LOG_UNIFORM)

    def scaled(self, strength: float) -> PhysicsRanges:
        """These ranges shrunk towards the study's acquisition (`REFERENCE`): each bound moves from
        the reference value towards itself by the fraction `strength` (geometrically for the
        log-uniform physics). 0 gives the reference acquisition alone, 1 these ranges.

        >>> PhysicsRanges(snr=(2.0, 32.0)).scaled(0.5).snr
        (4.0, 16.0)
        """
        strength = check_real("strength", strength, low=0.0, high=1.0)
        bounds = {}
        for name, pair in asdict(self).items():
            ref = REFERENCE[name]
            if name in LOG_UNIFORM:
                bounds[name] = tuple(float(ref * (b / ref) ** strength) for b in pair)
            else:
                bounds[name] = tuple(float(ref + strength * (b - ref)) for b in pair)
        return PhysicsRanges(**bounds)

    def draw(self, rng: np.random.Generator, default_pixel_size_um: float) -> dict:
        """One image's physics, as keyword arguments of `make_dataset`."""
        values = {}
        for name, (low, high) in asdict(self).items():
            if name in LOG_UNIFORM:
                values[name] = float(math.exp(rng.uniform(math.log(low), math.log(high))))
            else:
                values[name] = float(rng.uniform(low, high))
        values["pixel_size_um"] = default_pixel_size_um * values.pop("pixel_size_scale")
        return values


def randomized_dataset(structure: str, n: int, size: int = 128, *, seed: int = 0,
                       ranges: PhysicsRanges = PhysicsRanges(), progress: bool = False):
    """Simulate `n` images of `structure`, each at physics drawn from `ranges`.

    Parameters
    ----------
    structure : {"nuclei", "mitochondria", "er"}
    n : int
        Number of images, >= 1.
    size : int
        Image side in pixels (>= 32).
    seed : int
        Seed of the physics draws, the scenes and the noise; the same arguments give the same bytes.
    ranges : PhysicsRanges
        Where the physics are drawn from.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    fmlib.synthesis.Dataset
        As from `make_dataset`, but each image is mapped to [0, 1] like a real image
        (`fmlib.display.normalize`: percentiles to fixed levels) rather than with the simulator's
        fixed display range, which would clip images whose background rivals the signal;
        ``metadata[i]["physics"]`` holds image ``i``'s drawn physics and
        ``params["randomized"]`` the ranges (so ``params["physics"]`` lacks the drawn ones, and
        ``Dataset.pixel_size_um`` is undefined).

    Examples
    --------
    >>> ds = randomized_dataset("nuclei", 2, 64, seed=1)
    >>> ds.images.shape, sorted(ds.metadata[0]["physics"])[:2]
    ((2, 64, 64), ['autofluorescence_ratio', 'background_ratio'])
    """
    check_int("n", n, low=1)
    check_int("seed", seed, low=0)
    if not isinstance(ranges, PhysicsRanges):
        raise TypeError(f"ranges: expected a PhysicsRanges, got {type(ranges).__name__}")
    if structure not in STRUCTURES:  # make_dataset names the valid ones
        make_dataset(structure, 1, size)
    default_px = STRUCTURES[structure].pixel_size_um
    physics_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    indices = range(n)
    if progress:
        indices = tqdm(indices, desc=f"simulating randomized {structure}", unit="img")
    parts = []
    for i in indices:
        physics = ranges.draw(physics_rng, default_px)
        # One scene seed per image: distinct fields of view, reproducible one by one.
        image_seed = int(np.random.SeedSequence(seed, spawn_key=(1, i)).generate_state(1)[0])
        part = make_dataset(structure, 1, size, seed=image_seed, **physics)
        # The display range follows the image, as for real images: make_dataset's fixed range (zero
        # electrons at 0.1, the signal at 0.45) would clip every image whose background is of the
        # order of the signal.
        image, clipped = normalize(part.raw[0])
        part.images[0] = image
        part.metadata[0].update(physics=physics, clipped_fraction=clipped, display="fmlib.display.normalize")
        parts.append(part)
    labels = None if parts[0].labels is None else np.concatenate([p.labels for p in parts])
    drawn = set(parts[0].metadata[0]["physics"])
    # What differs per image is in the metadata, not in the dataset's parameters.
    params = {**{k: v for k, v in parts[0].params.items() if k not in ("snr", "optics", "psf_sigma_um")},
              "physics": {k: v for k, v in parts[0].params["physics"].items() if k not in drawn},
              "randomized": {k: list(v) for k, v in asdict(ranges).items()}, "seed": seed}
    return Dataset(structure=parts[0].structure, images=np.concatenate([p.images for p in parts]),
                   raw=np.concatenate([p.raw for p in parts]), masks=np.concatenate([p.masks for p in parts]),
                   labels=labels, metadata=[p.metadata[0] for p in parts], params=params)
