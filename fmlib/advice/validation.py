"""Is the advice right? `advise` on the repository's labelled real nuclei, without their labels,
against the ranking by the labels.

For each labelled source of `data/real/` (`SOURCES`), the advice ranks the candidates on images
simulated like the source; the labels rank the same candidates on the source's own images (per-tile
IoU on fields of the matched images' size, `fmlib.simtoreal.source_scores`). `validation_table` compares them:
Spearman's r with its bootstrap CI and permutation p (`fmlib.simtoreal.agreement_table`, Holm over
the sources), the true rank of the advised first candidate, and whether it is among the three best by
the labels. Expert labels measure accuracy; the ndev labels are automatic, so there the comparison
measures agreement with another method (`fmlib.realdata.labelling`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import tifffile

from .._checks import check_int
from ..paths import data_dir
from ..realdata import (
    NDEV_CHANNELS,
    NDEV_FILE,
    Tiles,
    labelling,
    load_bbbc007,
    load_dsb2018,
    load_ndev_scratch,
    nuclei_tiles,
)
from ..simtoreal import agreement_table, source_scores
from ..stats import hierarchical_ci
from ..synthesis import make_dataset
from .ranking import FIELD_PX
from .realism_check import MARGIN, REALISM_SIZE_PX, evenly_spaced, matched_distances

#: The labelled real sources and how their raw frames are loaded (every image of each).
SOURCES: dict[str, Callable[[], list[np.ndarray]]] = {
    "dsb2018": lambda: [load_dsb2018().raw],
    "bbbc007": lambda: [item.raw for item in load_bbbc007()],
    "ndev_scratch": lambda: [item.raw for item in load_ndev_scratch()],
}
#: A real image the simulator cannot imitate: the ndev file's oblique-illumination (transmitted light)
#: channel. The advice must refuse it.
NEGATIVE = "ndev_oblique"


def negative_frames() -> list[np.ndarray]:
    """The frames of `NEGATIVE`."""
    stack = tifffile.imread(data_dir() / NDEV_FILE)
    return [stack[NDEV_CHANNELS["oblique"], t].astype(np.float64) for t in range(stack.shape[1])]


#: Simulated positive controls of the realism check (name: SNR): the simulator's own nuclei at the
#: study's SNR range, matched from their own estimate. A threshold tighter than the simulator's
#: agreement with itself would refuse images it could imitate.
SIMULATED = {"simulated SNR 2": 2.0, "simulated SNR 5": 5.0, "simulated SNR 10": 10.0}


def threshold_basis(seeds: Sequence[int] = (0, 1, 2)) -> pd.DataFrame:
    """The realism distances (`fmlib.advice.realism_check.matched_distances`) of every labelled source,
    of the simulated controls (`SIMULATED`) and of `NEGATIVE` to their matched sets, per seed of the
    matched images: ``source``, ``kind`` ("real", "simulated" or "negative"), ``fluorescence`` (False
    for the negative), ``seed``, ``key``, ``statistic``, ``distance``."""
    rows = []
    for seed in seeds:
        sets = {**{s: ("real", source_frames(s)) for s in SOURCES}, NEGATIVE: ("negative", negative_frames())}
        for name, snr in SIMULATED.items():
            raw = make_dataset("nuclei", 4, REALISM_SIZE_PX, snr=snr, seed=1000 + seed).raw
            sets[name] = ("simulated", list(raw.astype(np.float64)))
        for source, (kind, frames) in sets.items():
            _, table = matched_distances(frames, "nuclei", seed=seed)
            rows.append(table[["key", "statistic", "distance"]].assign(source=source, kind=kind,
                                                                       fluorescence=kind != "negative", seed=seed))
    columns = ["source", "kind", "fluorescence", "seed", "key", "statistic", "distance"]
    return pd.concat(rows, ignore_index=True)[columns]


def derived_thresholds(basis: pd.DataFrame, margin: float = MARGIN) -> dict[str, float]:
    """`margin` times the largest distance of the fluorescence sets of `basis` (`threshold_basis`: the
    real sources and the simulated controls), per statistic: the rule behind
    `fmlib.advice.realism_check.THRESHOLDS`."""
    return (margin * basis[basis.fluorescence].groupby("key", sort=False).distance.max()).to_dict()


#: The advised first candidate is a hit when the labels put it among this many best.
TOP_K = 3


def source_frames(source: str) -> list[np.ndarray]:
    """The raw frames of a labelled real source (`SOURCES`), as the advice reads a user's images."""
    if source not in SOURCES:
        raise ValueError(f"source: expected one of {sorted(SOURCES)}, got {source!r}")
    return [np.asarray(frame, dtype=np.float64) for frame in SOURCES[source]()]


def source_tiles(tile: int = FIELD_PX, *, limit: int | None = None) -> dict[str, Tiles]:
    """Every labelled real source cut into `tile` px tiles at its own scale (BBBC007's two splits
    joined): by default fields as large as the advice's matched images; at most `limit` tiles per
    source, evenly spaced over its tiles, where it is set."""
    parts = nuclei_tiles(tile)
    bbbc = [parts["bbbc007_train"], parts["bbbc007_test"]]
    joined = Tiles(np.concatenate([t.images for t in bbbc]), np.concatenate([t.masks for t in bbbc]),
                   [n for t in bbbc for n in t.names], np.concatenate([t.labels for t in bbbc]))
    sources = {"dsb2018": parts["dsb2018"], "bbbc007": joined, "ndev_scratch": parts["ndev_scratch"]}
    if limit is None:
        return sources
    limit = check_int("limit", limit, low=1)
    kept = {name: evenly_spaced(len(t.images), limit) for name, t in sources.items()}
    return {name: Tiles(t.images[kept[name]], t.masks[kept[name]], [t.names[i] for i in kept[name]],
                        None if t.labels is None else t.labels[kept[name]]) for name, t in sources.items()}


def true_ranking(candidates: Sequence[tuple[str, str, int]], load: Callable[[str, str, int], object],
                 tiles: Tiles, *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """The candidates (model, regime, seed) ranked by their IoU on the labelled `tiles`: ``model``,
    ``regime``, ``iou`` with its 95 % CI (``low``, ``high``; seeds, then tiles) and ``true_rank``."""
    per_tile = pd.concat([source_scores(load(m, r, s), {"source": tiles}, ["source"], model=m, regime=r, seed=s)
                          for m, r, s in candidates], ignore_index=True)
    rows = []
    for (m, r), group in per_tile.groupby(["model", "regime"], sort=True):
        est, low, high = hierarchical_ci(group, "iou", unit="tile", n_boot=n_boot, seed=seed)
        rows.append({"model": m, "regime": r, "iou": est, "low": low, "high": high})
    table = pd.DataFrame(rows).sort_values("iou", ascending=False, ignore_index=True)
    table["true_rank"] = np.arange(1, len(table) + 1)
    return table


def validation_table(advised: Mapping[str, pd.DataFrame], truth: Mapping[str, pd.DataFrame], *,
                     refused: Mapping[str, str] | None = None, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per source: the advised ranking (`fmlib.advice.ranking.ranking`) against the true one
    (`true_ranking`).

    Columns: ``source``, ``labelling`` (expert or automatic), ``n`` (candidates), ``r``, ``low``,
    ``high``, ``p``, ``p_holm``, ``verdict`` (`fmlib.simtoreal.agreement_table`), ``advised_first``,
    ``its_true_rank``, ``in_top_3`` and ``refused`` (the advice's refusal, "" where it advised).
    """
    refused = dict(refused or {})
    pairs, rows = {}, []
    for source, ranked in advised.items():
        paired = ranked[["model", "regime", "score"]].merge(truth[source][["model", "regime", "iou", "true_rank"]],
                                                            on=["model", "regime"])
        pairs[source] = paired.rename(columns={"score": "synthetic", "iou": "real"})
        first = ranked.iloc[0]
        match = (paired.model == first.model) & (paired.regime == first.regime)
        true_rank = int(paired.loc[match, "true_rank"].iloc[0])
        rows.append({"source": source, "labelling": labelling(source).kind,
                     "advised_first": f"{first.model} ({first.regime})", "its_true_rank": true_rank,
                     f"in_top_{TOP_K}": true_rank <= TOP_K, "refused": refused.get(source, "")})
    agreement = agreement_table(pairs, n_boot=n_boot, seed=seed).rename(columns={"agreement": "source"})
    columns = ["source", "n", "r", "low", "high", "p", "p_holm", "verdict"]
    table = agreement[columns].merge(pd.DataFrame(rows), on="source")
    first = ["source", "labelling"]
    return table[first + [c for c in table.columns if c not in first]]
