"""Can the simulator imitate the user's images? The label-free realism distances of `fmlib.realism`
between the user's frames and their matched synthetic set, against thresholds.

Only the statistics that need no labels enter: the intensity distribution after the models' z-score,
the radial power spectrum, and the noise curve's slope and intercept. The advice refuses to recommend
when any of them is above its threshold (`THRESHOLDS`).

The thresholds were chosen on the repository's real nuclei sources and on the simulator's own images,
and the book's page *Which model for my images?* recomputes their basis
(`fmlib.advice.validation.threshold_basis`): each is 1.5 times the largest distance that a
fluorescence set reached to its own matched simulation, over three seeds of the matched images. The
fluorescence sets are the real sources of `data/real/` (DSB 2018, BBBC007, the ndev Hoechst channel)
and simulated nuclei at SNR 2, 5 and 10 (a threshold tighter than the simulator's agreement with
itself would refuse images it can imitate). The oblique-illumination (transmitted light) channel of
the ndev file, which the simulator cannot imitate, is refused by its intensity distribution (0.21
against 0.11 at most for the fluorescence sets). Three real sources make a thin basis: the
thresholds are judged again on microscopes beyond this repository, and a user can pass their own.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .. import acquisition, realism
from ..cache import array_digest
from ..matching import matched_physics
from ..realdata import tiles
from ..synthesis import make_dataset
from .ranking import scene_parameters

#: At most this many tiles of the user's frames enter the realism check (evenly spaced).
MAX_TILES = 64
#: Matched images simulated for the realism check.
MATCHED_IMAGES = 16
#: Side (px) of the fields compared: the user's frames are cut into tiles of this size and the matched
#: images simulated at it (smaller where the frames are smaller). The statistics after a per-image
#: z-score depend on the field of view, and on 64 px fields they are too noisy to tell a fluorescence
#: source from transmitted light; at 192 px they do (the book's advice page).
REALISM_SIZE_PX = 192

#: Largest accepted distance per statistic (`fmlib.realism.report` ``key``): `MARGIN` x the largest
#: distance among the fluorescence sets over matched seeds 0-2 (intensity 0.106, spectrum 0.394,
#: noise slope 0.159, noise intercept 0.075, at 192 px; measured at commit 45f9f3b plus the density
#: matching of `fmlib.advice.ranking.scene_parameters`), rounded up to two decimals.
MARGIN = 1.5
THRESHOLDS = {"intensity": 0.16, "spectrum": 0.60, "noise_slope": 0.24, "noise_intercept": 0.12}


def common_crop(frames: Sequence[np.ndarray]) -> np.ndarray:
    """`frames` as one (N, H, W) stack, each cropped about its centre to the smallest height and width
    among them (the realism and acquisition statistics need one shape)."""
    h = min(f.shape[0] for f in frames)
    w = min(f.shape[1] for f in frames)
    crops = []
    for frame in frames:
        top, left = (frame.shape[0] - h) // 2, (frame.shape[1] - w) // 2
        crops.append(frame[top:top + h, left:left + w])
    return np.stack(crops)


def evenly_spaced(n: int, limit: int) -> np.ndarray:
    """Indices of at most `limit` of `n` items, evenly spaced, the first and the last among them.

    Examples
    --------
    >>> evenly_spaced(10, 4).tolist(), evenly_spaced(3, 4).tolist()
    ([0, 3, 6, 9], [0, 1, 2])
    """
    return np.unique(np.linspace(0, n - 1, min(limit, n)).round().astype(int))


def frame_tiles(frames: Sequence[np.ndarray], size: int, *, limit: int = MAX_TILES) -> np.ndarray:
    """The user's frames cut into non-overlapping `size` px tiles, at most `limit` of them (evenly
    spaced): the field the models see, and the field of the matched images, so that statistics that
    depend on the field of view (the intensity distribution after the per-image z-score) compare like
    with like."""
    stack = np.concatenate([tiles(np.asarray(frame, dtype=np.float64), size) for frame in frames])
    return stack[evenly_spaced(len(stack), limit)]


def check_thresholds(thresholds: Mapping[str, float] | None) -> dict[str, float]:
    """`THRESHOLDS` updated with `thresholds`, checked: known statistics, positive values."""
    merged = dict(THRESHOLDS)
    for key, value in (thresholds or {}).items():
        if key not in THRESHOLDS:
            raise ValueError(f"thresholds: unknown statistic {key!r}; expected some of {sorted(THRESHOLDS)}")
        if not (isinstance(value, (int, float)) and value > 0):
            raise ValueError(f"thresholds: {key} must be a positive number, got {value!r}")
        merged[key] = float(value)
    return merged


def distances(user: np.ndarray, matched: np.ndarray, thresholds: Mapping[str, float] | None = None) -> pd.DataFrame:
    """The label-free realism rows (`fmlib.realism.report`) of the user's stack against the matched
    raw images, with ``threshold`` and ``within`` (distance at most the threshold)."""
    limits = check_thresholds(thresholds)
    table = realism.report({"your images": realism.profile(user)}, realism.profile(matched))
    table = table[table.key.isin(limits)].reset_index(drop=True)
    table["threshold"] = table.key.map(limits)
    table["within"] = table.distance <= table.threshold
    return table


def realism_size(frames: Sequence[np.ndarray]) -> int:
    """The side of the compared fields: `REALISM_SIZE_PX`, or the largest multiple of 32 that fits
    in the smallest frame."""
    side = min(min(frame.shape) for frame in frames)
    return int(min(REALISM_SIZE_PX, side // 32 * 32))


#: The last results of `matched_distances`, by the frames' content and the arguments: the book's advice
#: page measures each labelled source twice (for the thresholds' basis, 7 sets x 3 seeds at standard,
#: and for its advice), and a user may advise on the same images again with other options; the
#: simulation is the costly part, an entry two small tables.
_MATCHED_MEMO: OrderedDict[str, tuple[pd.DataFrame, pd.DataFrame]] = OrderedDict()
_MATCHED_MEMO_SIZE = 32


def _matched_key(frames: Sequence[np.ndarray], structure: str, limits: Mapping[str, float], seed: int) -> str:
    return repr((structure, sorted(limits.items()), seed, array_digest(*frames)))


def matched_distances(frames: Sequence[np.ndarray], structure: str, *, thresholds: Mapping[str, float] | None = None,
                      seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The acquisition estimate of `frames` (`fmlib.acquisition.estimate` on their common crop) and the
    `distances` of their tiles to `MATCHED_IMAGES` images simulated at that estimate, both fields of
    `realism_size` px. The same frames and arguments give the same tables (copies), computed once
    among the last few calls."""
    limits = check_thresholds(thresholds)
    key = _matched_key(frames, structure, limits, seed)
    if key not in _MATCHED_MEMO:
        estimate = acquisition.estimate(common_crop(frames), seed=seed)
        size = realism_size(frames)
        physics = {**matched_physics(estimate, structure), **scene_parameters(estimate, frames, structure, size)}
        snr = physics.pop("snr")
        matched = make_dataset(structure, MATCHED_IMAGES, size, snr=snr, seed=seed + 1, **physics)
        _MATCHED_MEMO[key] = estimate, distances(frame_tiles(frames, size), matched.raw, limits)
        while len(_MATCHED_MEMO) > _MATCHED_MEMO_SIZE:
            _MATCHED_MEMO.popitem(last=False)
    _MATCHED_MEMO.move_to_end(key)
    estimate, table = _MATCHED_MEMO[key]
    return estimate.copy(), table.copy()
