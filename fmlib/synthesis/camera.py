"""Camera: photons -> electrons -> ADU, with shot noise, read noise, gain, offset and bit depth.

The noise chain, per pixel, for an expected number of photo-electrons ``e`` (photons times the
quantum efficiency):

1. shot noise: ``n ~ Poisson(e)`` (detecting each of Poisson(photons) photons with probability QE
   is again Poisson, with mean ``QE * photons``, so one draw does both steps exactly);
2. EMCCD only: electron multiplication, ``m ~ Gamma(n, 1)`` (input-referred), which doubles the
   variance (excess noise factor ``F^2 = 2``);
3. read noise: ``+ Normal(0, read_noise_e)``, input-referred electrons;
4. gain and offset: ``adu = gain_adu_per_e * electrons + offset_adu``;
5. quantization to integers and saturation at ``2**bit_depth - 1``.

Signal-to-noise ratio (used everywhere in fmrobust)
---------------------------------------------------
``SNR = S / sqrt(F^2 * (S + B) + sigma_read^2 + 1 / (12 * gain^2))``

where ``S`` is the mean expected signal above background over the ground-truth foreground, ``B``
the mean expected background over the same pixels (both in photo-electrons), ``sigma_read`` the
read noise in electrons and the last term the quantization noise of the ADC. Because the noise
variance is linear in the expected signal, the denominator is exactly the root of the mean noise
variance over the foreground.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from .._checks import as_rng, check_array, check_int, check_real


@dataclass(frozen=True)
class Camera:
    """A scientific camera.

    Parameters
    ----------
    name : str
        Label stored in metadata.
    quantum_efficiency : float
        Fraction of photons detected, in (0, 1].
    read_noise_e : float
        Read noise standard deviation in electrons, referred to the input (for an EMCCD, the
        output read noise divided by the EM gain).
    gain_adu_per_e : float
        Conversion gain in ADU per photo-electron (for an EMCCD, including the EM gain).
    offset_adu : float
        Constant offset (bias) added by the electronics, in ADU.
    bit_depth : int
        ADC bit depth; values saturate at ``2**bit_depth - 1`` (at most 16, stored as uint16).
    em_gain : float or None
        EM gain of an EMCCD; None for cameras without electron multiplication.
    """

    name: str = "scmos"
    quantum_efficiency: float = 0.82
    read_noise_e: float = 1.6
    gain_adu_per_e: float = 2.0
    offset_adu: float = 100.0
    bit_depth: int = 16
    em_gain: float | None = None

    def __post_init__(self) -> None:
        check_real("quantum_efficiency", self.quantum_efficiency, low=0.0, low_inclusive=False, high=1.0)
        check_real("read_noise_e", self.read_noise_e, low=0.0, high=1000.0)
        check_real("gain_adu_per_e", self.gain_adu_per_e, low=0.0, low_inclusive=False, high=1e4)
        check_int("bit_depth", self.bit_depth, low=8, high=16)
        check_real("offset_adu", self.offset_adu, low=0.0, high=float(self.max_adu) / 2)
        if self.em_gain is not None:
            check_real("em_gain", self.em_gain, low=1.0, high=10000.0)

    @property
    def max_adu(self) -> int:
        return 2 ** int(self.bit_depth) - 1

    @property
    def excess_noise_factor_sq(self) -> float:
        """``F^2``: 2 for an EMCCD at high EM gain, 1 otherwise."""
        return 2.0 if self.em_gain is not None else 1.0

    @property
    def effective_read_variance_e2(self) -> float:
        """Read noise plus ADC quantization noise (uniform, 1/12 ADU^2), in electrons^2."""
        return self.read_noise_e**2 + 1.0 / (12.0 * self.gain_adu_per_e**2)

    def to_dict(self) -> dict:
        return asdict(self)


#: Typical cameras. sCMOS: back-illuminated, 0.5 e-/ADU; EMCCD: EM gain 300, 60 e- output read noise.
CAMERAS: dict[str, Camera] = {
    "scmos": Camera(name="scmos", quantum_efficiency=0.82, read_noise_e=1.6, gain_adu_per_e=2.0,
                    offset_adu=100.0, bit_depth=16),
    "emccd": Camera(name="emccd", quantum_efficiency=0.95, read_noise_e=60.0 / 300.0,
                    gain_adu_per_e=30.0, offset_adu=100.0, bit_depth=16, em_gain=300.0),
}


def get_camera(camera: str | Camera) -> Camera:
    """A camera preset by name (``"scmos"``, ``"emccd"``) or a `Camera` passed through."""
    if isinstance(camera, Camera):
        return camera
    if camera not in CAMERAS:
        raise ValueError(f"camera: unknown preset {camera!r}; expected one of {', '.join(map(repr, CAMERAS))} "
                         "or a fmlib.synthesis.Camera")
    return CAMERAS[camera]


def snr_from_levels(signal_e: float, background_e: float, camera: Camera) -> float:
    """SNR of a mean signal `signal_e` over a background `background_e` (electrons), see module doc."""
    noise = math.sqrt(camera.excess_noise_factor_sq * (signal_e + background_e) + camera.effective_read_variance_e2)
    return signal_e / noise


def signal_for_snr(snr: float, background_ratio: float, camera: Camera) -> float:
    """Mean foreground signal ``S`` (electrons) that gives exactly `snr`.

    The background scales with the photon budget (longer exposure or stronger illumination raise
    signal and background alike), ``B = background_ratio * S``, so ``S`` solves
    ``S^2 = snr^2 * (F^2 (1 + background_ratio) S + sigma_eff^2)``, a quadratic with one positive root.

    Examples
    --------
    >>> cam = CAMERAS["scmos"]
    >>> s = signal_for_snr(8.0, 0.1, cam)
    >>> round(snr_from_levels(s, 0.1 * s, cam), 10)
    8.0
    """
    check_real("snr", snr, low=0.0, low_inclusive=False, high=1000.0)
    check_real("background_ratio", background_ratio, low=0.0)
    a = snr**2 * camera.excess_noise_factor_sq * (1.0 + background_ratio)
    return 0.5 * (a + math.sqrt(a * a + 4.0 * snr**2 * camera.effective_read_variance_e2))


def expose(expected_e: np.ndarray, camera: Camera, rng=None) -> np.ndarray:
    """Record an image of expected photo-electrons with `camera`: returns raw counts, uint16.

    Parameters
    ----------
    expected_e : ndarray of float, shape (H, W) or (N, H, W)
        Expected photo-electrons per pixel (photons times quantum efficiency), >= 0.
    camera : Camera
    rng : int or numpy.random.Generator, optional
        Seed or generator; the same seed gives the same bytes.

    Returns
    -------
    ndarray of uint16, same shape, in ADU (offset included, saturated at ``camera.max_adu``).

    Examples
    --------
    >>> raw = expose(np.full((64, 64), 100.0), CAMERAS["scmos"], rng=0)
    >>> raw.dtype, abs(raw.mean() - (100 * 2.0 + 100)) < 2
    (dtype('uint16'), True)
    """
    expected_e = check_array("expected_e", expected_e, ndim=(2, 3), nonnegative=True)
    rng = as_rng(rng)
    electrons = rng.poisson(expected_e).astype(np.float64)
    if camera.em_gain is not None:
        # Gamma(n, 1) is the standard model of the EM register (input-referred): mean n, variance n.
        electrons = rng.gamma(np.maximum(electrons, 1e-12), 1.0) * (electrons > 0)
    if camera.read_noise_e > 0:
        electrons += rng.normal(0.0, camera.read_noise_e, size=electrons.shape)
    adu = np.rint(electrons * camera.gain_adu_per_e + camera.offset_adu)
    return np.clip(adu, 0, camera.max_adu).astype(np.uint16)


def to_electrons(raw_adu: np.ndarray, camera: Camera) -> np.ndarray:
    """Convert raw ADU back to (input-referred) photo-electrons: ``(raw - offset) / gain``."""
    raw_adu = check_array("raw_adu", raw_adu, ndim=(2, 3))
    return (raw_adu.astype(np.float64) - camera.offset_adu) / camera.gain_adu_per_e


def photon_transfer(frames_a: np.ndarray, frames_b: np.ndarray, offset_adu: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean signal and temporal variance from pairs of flat-field frames (photon-transfer curve).

    Each pair ``(frames_a[k], frames_b[k])`` images the same flat field twice. The variance is
    ``var(a - b) / 2``, which removes any fixed pattern, and the mean is taken above `offset_adu`.

    Returns
    -------
    mean_adu, variance_adu2 : ndarray of float, shape (K,)
    """
    frames_a = check_array("frames_a", frames_a, ndim=(3,))
    frames_b = check_array("frames_b", frames_b, ndim=(3,))
    if frames_a.shape != frames_b.shape:
        raise ValueError(f"frames_b: expected shape {frames_a.shape} like frames_a, got {frames_b.shape}")
    a = frames_a.astype(np.float64)
    b = frames_b.astype(np.float64)
    mean = 0.5 * (a + b).mean(axis=(1, 2)) - offset_adu
    variance = (a - b).var(axis=(1, 2)) / 2.0
    return mean, variance


def fit_photon_transfer(mean_adu: np.ndarray, variance_adu2: np.ndarray, *,
                        excess_noise_factor_sq: float = 1.0) -> dict[str, float]:
    """Fit the photon-transfer curve ``variance = F^2 g mean + g^2 read^2 + 1/12``.

    Parameters
    ----------
    mean_adu, variance_adu2 : ndarray of float, shape (K,)
        From `photon_transfer`.
    excess_noise_factor_sq : float
        ``F^2`` of the camera (2 for an EMCCD): the slope is ``F^2 * g``.

    Returns
    -------
    dict with ``slope``, ``intercept_adu2``, ``gain_adu_per_e`` (slope / F^2) and ``read_noise_e``
    (from the intercept, quantization noise removed).
    """
    mean_adu = check_array("mean_adu", mean_adu, ndim=(1,))
    variance_adu2 = check_array("variance_adu2", variance_adu2, ndim=(1,))
    if mean_adu.shape != variance_adu2.shape or mean_adu.size < 2:
        raise ValueError("mean_adu, variance_adu2: expected two 1D arrays of the same length >= 2")
    check_real("excess_noise_factor_sq", excess_noise_factor_sq, low=1.0)
    # Weighted least squares: a sample variance's standard error is proportional to the variance, so
    # an unweighted fit lets the brightest levels swamp the intercept (the read noise).
    weights = 1.0 / np.maximum(variance_adu2, 1e-12)
    slope, intercept = np.polyfit(mean_adu, variance_adu2, 1, w=weights)
    gain = slope / excess_noise_factor_sq
    read_var_adu2 = max(intercept - 1.0 / 12.0, 0.0)
    return {"slope": float(slope), "intercept_adu2": float(intercept), "gain_adu_per_e": float(gain),
            "read_noise_e": float(math.sqrt(read_var_adu2) / gain)}


def flat_field_pairs(levels_e: np.ndarray, camera: Camera, size_px: int = 256,
                     rng=None) -> tuple[np.ndarray, np.ndarray]:
    """Two exposures of uniform fields at each level of expected electrons: input for `photon_transfer`."""
    levels_e = check_array("levels_e", levels_e, ndim=(1,), nonnegative=True)
    check_int("size_px", size_px, low=8)
    rng = as_rng(rng)
    fields = np.broadcast_to(levels_e[:, None, None].astype(np.float64), (len(levels_e), size_px, size_px))
    return expose(fields, camera, rng), expose(fields, camera, rng)


def photon_transfer_table(top_levels_e: dict[str, float], n_levels: int, size_px: int = 256,
                          rng=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Photon-transfer curves of named cameras and the gain and read noise they recover.

    For each camera of `top_levels_e` (name -> brightest level in expected electrons), in order,
    `n_levels` flat fields from 0 to that level are exposed twice (`flat_field_pairs`, drawing from
    one generator), measured (`photon_transfer`) and fitted (`fit_photon_transfer`).

    Returns
    -------
    curve : DataFrame with camera, level_e, mean_adu, variance_adu2 (one row per level)
    fits : DataFrame with the set and recovered gain and read noise, slope and intercept per camera

    Examples
    --------
    >>> curve, fits = photon_transfer_table({"scmos": 400.0}, 4, size_px=16, rng=0)
    >>> len(curve), fits.camera.tolist()
    (4, ['scmos'])
    """
    check_int("n_levels", n_levels, low=2)
    rng = as_rng(rng)
    rows, fits = [], []
    for name, top_e in top_levels_e.items():
        camera = get_camera(name)
        levels = np.linspace(0.0, check_real(f"top_levels_e[{name!r}]", top_e, low=0.0), n_levels)
        mean, var = photon_transfer(*flat_field_pairs(levels, camera, size_px, rng=rng), camera.offset_adu)
        fit = fit_photon_transfer(mean, var, excess_noise_factor_sq=camera.excess_noise_factor_sq)
        rows += [{"camera": name, "level_e": e, "mean_adu": m, "variance_adu2": v}
                 for e, m, v in zip(levels, mean, var)]
        fits.append({"camera": name, "gain set (ADU/e-)": camera.gain_adu_per_e,
                     "gain recovered (ADU/e-)": fit["gain_adu_per_e"], "read noise set (e-)": camera.read_noise_e,
                     "read noise recovered (e-)": fit["read_noise_e"], "slope": fit["slope"],
                     "intercept (ADU²)": fit["intercept_adu2"]})
    return pd.DataFrame(rows), pd.DataFrame(fits)
