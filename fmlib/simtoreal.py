"""Sim-to-real: models trained on synthetic images, scored on real nuclei images.

The experiments of the real-images chapter, as functions of models, tiles (`fmlib.realdata.Tiles`)
and plain values:

- score a pool of synthetic-trained models on several real sources, with the Otsu + watershed
  baseline beside them (`pool_scores`, `source_scores`, `baseline_scores`);
- choose models on the selection source only, never on a test source (`best_architecture`,
  `best_strength`; the sources are `fmlib.realdata.SELECTION_SOURCE` and
  `fmlib.realdata.REAL_TEST_SOURCES`);
- train the two comparisons of the chapter: the best architecture on the real training tiles
  (`fit_real_reference`) and on domain-randomized synthetic images at several strengths
  (`randomized_candidates`, `candidate_scores`);
- corruptions and attacks on a few real tiles spread over an image (`spread_tiles`,
  `robustness_tables`);
- the two verdicts: whether the chosen synthetic-trained model clears the sim-to-real bar on the
  DSB image (`sim_to_real_bar`, `bar_verdict`) and whether models rank alike on synthetic and real
  images (`ranking_table`, `rank_agreement`).

Every table is tidy: one row per tile and model (and source, regime or strength), with the
per-tile scores of `fmlib.evaluation.prediction_scores`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ._checks import check_int, check_real
from .domain import PhysicsRanges, randomized_dataset
from .evaluation import attack_table, clean_scores, corruption_table, prediction_scores
from .metrics import correlation_ci, robustness_ratio
from .models import create_model
from .realdata import REAL_TEST_SOURCES, SELECTION_SOURCE, Tiles, otsu_watershed
from .synthesis import Dataset
from .training import TrainConfig, TrainedModel, fit

#: The classic baseline's ``method`` and ``regime`` in the score tables.
BASELINE = "otsu_watershed"
BASELINE_REGIME = "-"
#: Seed offsets, from the study seed, of the randomized training and validation scenes: seeds of
#: their own, so that no randomized scene repeats a training, validation or test scene of the study.
RANDOMIZED_TRAIN_SEED_OFFSET = 7
RANDOMIZED_VAL_SEED_OFFSET = 8
#: The verdicts of `rank_agreement` and what each means for the paper's claim.
RANK_MEANINGS = {
    "supported": "models that do better on synthetic nuclei also do better on real ones, so a synthetic "
                 "benchmark can rank models for real images",
    "contradicted": "models that do better on synthetic nuclei do worse on real ones, so a ranking on synthetic "
                    "images does not carry over: choose a model for real images on annotated real images",
    "inconclusive": "these data cannot tell whether a ranking on synthetic images carries over to real ones; "
                    "more annotated real images would",
    "not testable": "there are too few models at this profile to test it",
}


# ----------------------------------------------------------------------------------------------
# Tiles
# ----------------------------------------------------------------------------------------------

def tile_subset(tiles: Tiles, indices: Sequence[int] | np.ndarray) -> Tiles:
    """The tiles of `tiles` at `indices`, in that order, with their names."""
    indices = np.asarray(indices, dtype=int)
    return Tiles(tiles.images[indices], tiles.masks[indices], [tiles.names[k] for k in indices])


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
    return Tiles(dataset.images, dataset.masks, [f"{prefix}/{k}" for k in range(len(dataset.images))])


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
    train = Tiles(tiles.images[split:], tiles.masks[split:], list(tiles.names[split:]))
    val = Tiles(tiles.images[:split], tiles.masks[:split], list(tiles.names[:split]))
    return train, val


# ----------------------------------------------------------------------------------------------
# Score tables
# ----------------------------------------------------------------------------------------------

def source_scores(model: torch.nn.Module, tiles: Mapping[str, Tiles], sources: Iterable[str], /,
                  **columns) -> pd.DataFrame:
    """Per-tile scores of `model` (`fmlib.evaluation.clean_scores`) on each of `sources` (keys of
    `tiles`), one table: the `columns` (e.g. ``method="unet", regime="standard"``, in that order)
    and then ``source`` are added to every row."""
    return pd.concat([clean_scores(model, tiles[source]).assign(**columns, source=source) for source in sources],
                     ignore_index=True)


def baseline_scores(tiles: Mapping[str, Tiles], sources: Iterable[str]) -> pd.DataFrame:
    """Per-tile scores of the Otsu + watershed baseline (`fmlib.realdata.otsu_watershed`) on each of
    `sources`, with ``method`` `BASELINE`, ``regime`` `BASELINE_REGIME` and ``source``."""
    rows = []
    for source in sources:
        predictions = np.stack([otsu_watershed(image) > 0 for image in tiles[source].images])
        rows.append(prediction_scores(predictions, tiles[source]).assign(method=BASELINE, regime=BASELINE_REGIME,
                                                                          source=source))
    return pd.concat(rows, ignore_index=True)


def pool_scores(models: Iterable[tuple[str, str, torch.nn.Module]], tiles: Mapping[str, Tiles], *,
                sources: Iterable[str] = (SELECTION_SOURCE, *REAL_TEST_SOURCES),
                baseline_sources: Iterable[str] = REAL_TEST_SOURCES) -> pd.DataFrame:
    """Every model of a pool on every source, and the baseline on `baseline_sources`: one table.

    Parameters
    ----------
    models : iterable of (name, regime, model)
        The pool, in the order of the rows; a generator loads one model at a time.
    tiles : dict of str to Tiles
        Tiles by source (`fmlib.realdata.nuclei_tiles`).
    sources : iterable of str
        The sources every model is scored on (by default the selection source and the test sources).
    baseline_sources : iterable of str
        The sources the Otsu + watershed baseline is scored on (`baseline_scores`; rows after the
        models'); empty for none.

    Returns
    -------
    pandas.DataFrame
        One row per tile, model (or baseline) and source: ``image``, ``tile``, ``iou``, ``dice``,
        ``precision``, ``recall``, ``method``, ``regime``, ``source``.
    """
    sources, baseline_sources = list(sources), list(baseline_sources)
    rows = [source_scores(model, tiles, sources, method=name, regime=regime) for name, regime, model in models]
    if baseline_sources:
        rows.append(baseline_scores(tiles, baseline_sources))
    if not rows:
        raise ValueError("models: expected at least one model (or baseline_sources)")
    return pd.concat(rows, ignore_index=True)


# ----------------------------------------------------------------------------------------------
# Choosing on the selection source
# ----------------------------------------------------------------------------------------------

def _check_selection(source: str) -> str:
    if source in REAL_TEST_SOURCES:
        raise ValueError(f"source: {source!r} is a test source ({', '.join(REAL_TEST_SOURCES)}); choose on "
                         f"{SELECTION_SOURCE!r}, which only selects")
    return source


def best_architecture(scores: pd.DataFrame, *, source: str = SELECTION_SOURCE, regime: str = "standard") -> str:
    """The ``method`` of `scores` (a `pool_scores` table) with the highest mean IoU on `source`
    among the rows of `regime`. Raises ValueError for a test source or when no row matches."""
    _check_selection(source)
    rows = scores[(scores.regime == regime) & (scores.source == source)]
    if rows.empty:
        raise ValueError(f"scores: no rows of regime {regime!r} on source {source!r}")
    return rows.groupby("method").iou.mean().idxmax()


def best_strength(summary: pd.DataFrame, *, source: str = SELECTION_SOURCE) -> float:
    """The randomization strength with the highest ``mean`` on `source` in `summary` (a bootstrap
    summary of `candidate_scores` by ``source`` and ``strength``, `fmlib.metrics.bootstrap_scores`)."""
    _check_selection(source)
    by_strength = summary.set_index(["source", "strength"])["mean"]
    if source not in by_strength.index.get_level_values("source"):
        raise ValueError(f"summary: no rows on source {source!r}")
    return float(by_strength.loc[source].idxmax())


# ----------------------------------------------------------------------------------------------
# The comparisons: trained on real tiles, trained on randomized acquisitions
# ----------------------------------------------------------------------------------------------

def fit_real_reference(model_name: str, tiles: Tiles, *, width: float = 1.0, epochs: int, batch_size: int,
                       lr: float, loss: str, seed: int, progress: bool = False) -> TrainedModel:
    """Train `model_name` on real tiles: the real-data reference of the synthetic-trained models.

    The first fifth of `tiles` validates (`validation_split`), the rest trains, with the library's
    default `TrainConfig` (AdamW, cosine schedule) at `epochs`, `batch_size`, `lr`, `loss` and
    `seed`; the weights are initialized after ``torch.manual_seed(seed)``. Pass the selection
    source's tiles, so that no test tile is seen in training.
    """
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, loss=loss, seed=seed)
    torch.manual_seed(seed)
    model = create_model(model_name, width=width)
    train, val = validation_split(tiles)
    return fit(model, train, val, config, progress=progress)


class Candidate(NamedTuple):
    """A model trained at one randomization strength, and the synthetic images it was trained on."""

    model: torch.nn.Module
    train_set: Dataset


def randomized_candidates(model_name: str, strengths: Iterable[float], config: TrainConfig, *, n_train: int,
                          n_val: int, size: int, seed: int, width: float = 1.0, structure: str = "nuclei",
                          ranges: PhysicsRanges | None = None, progress: bool = True) -> dict[float, Candidate]:
    """Train `model_name` on domain-randomized images (`fmlib.domain`) at each of `strengths`.

    Parameters
    ----------
    model_name : str
        The architecture (`fmlib.models.create_model`), at channel width `width`.
    strengths : iterable of float
        Randomization strengths in [0, 1] (`PhysicsRanges.scaled`).
    config : TrainConfig
        How to train (the study's standard configuration, so only the data differ).
    n_train, n_val, size : int
        Number of training and validation images and their side in pixels.
    seed : int
        The study seed: the scenes are drawn with seeds ``seed + RANDOMIZED_TRAIN_SEED_OFFSET`` and
        ``seed + RANDOMIZED_VAL_SEED_OFFSET``, the weights initialized after ``torch.manual_seed(seed)``.
    structure : str
    ranges : PhysicsRanges, optional
        The full-strength ranges (the library's defaults if None).
    progress : bool
        A tqdm bar over the strengths.

    Returns
    -------
    dict of float to Candidate
        By strength, in the order of `strengths`: the trained model and its training images.
    """
    ranges = PhysicsRanges() if ranges is None else ranges
    out = {}
    for strength in tqdm(list(strengths), desc="randomization strengths", disable=not progress):
        part = ranges.scaled(strength)
        train_set = randomized_dataset(structure, n_train, size, seed=seed + RANDOMIZED_TRAIN_SEED_OFFSET, ranges=part)
        val_set = randomized_dataset(structure, n_val, size, seed=seed + RANDOMIZED_VAL_SEED_OFFSET, ranges=part)
        torch.manual_seed(seed)
        fitted = fit(create_model(model_name, width=width), (train_set.images, train_set.masks),
                     (val_set.images, val_set.masks), config, progress=False)
        out[float(strength)] = Candidate(fitted.model, train_set)
    return out


def candidate_scores(candidates: Mapping[float, Candidate], tiles: Mapping[str, Tiles], sources: Iterable[str], *,
                     method: str) -> pd.DataFrame:
    """Per-tile scores of every candidate (by strength, `randomized_candidates`) on every source:
    one table with ``method``, ``strength`` and ``source``."""
    sources = list(sources)
    return pd.concat([source_scores(candidate.model, tiles, sources, method=method, strength=strength)
                      for strength, candidate in candidates.items()], ignore_index=True)


# ----------------------------------------------------------------------------------------------
# Corruptions and attacks on real tiles
# ----------------------------------------------------------------------------------------------

def robustness_tables(cfg: Mapping, models: Iterable[tuple[str, torch.nn.Module]], tiles: Tiles, *,
                      attacks: Sequence[str] = ("pgd",),
                      progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Corruptions (`fmlib.evaluation.corruption_table`) and `attacks` with the noise baseline
    (`fmlib.evaluation.attack_table`) of every (name, model) of `models` on `tiles`, under study
    configuration `cfg`. Returns (corruption, adversarial) tables with a ``model`` column; the
    corruption table also gets the per-image ``robustness`` (corrupted over clean IoU)."""
    corr_rows, adv_rows = [], []
    for name, model in tqdm(models, desc="models", disable=not progress):
        corr_rows.append(corruption_table(cfg, model, tiles).assign(model=name))
        adv_rows.append(attack_table(cfg, model, tiles, attacks=list(attacks)).assign(model=name))
    if not corr_rows:
        raise ValueError("models: expected at least one model")
    corruption = pd.concat(corr_rows, ignore_index=True)
    corruption["robustness"] = robustness_ratio(corruption.iou, corruption.clean_iou)
    return corruption, pd.concat(adv_rows, ignore_index=True)


# ----------------------------------------------------------------------------------------------
# The sim-to-real bar
# ----------------------------------------------------------------------------------------------

def bar_verdict(model_iou: float, baseline_iou: float, *, bar_iou: float) -> str:
    """Whether a model's IoU clears the sim-to-real bar: it must beat the baseline and reach `bar_iou`.

    Examples
    --------
    >>> bar_verdict(0.8, 0.6, bar_iou=0.75)
    'met'
    >>> bar_verdict(0.7, 0.6, bar_iou=0.75)
    'not met: it beats Otsu but stays below the IoU bar'
    >>> bar_verdict(0.8, 0.85, bar_iou=0.75)
    'not met'
    """
    bar_iou = check_real("bar_iou", bar_iou, low=0.0, high=1.0)
    if model_iou > baseline_iou:
        return "met" if model_iou >= bar_iou else "not met: it beats Otsu but stays below the IoU bar"
    return "not met"


def bar_candidates(scores: pd.DataFrame, randomized_scores: pd.DataFrame, *, regimes: Iterable[str],
                   strength: float) -> pd.DataFrame:
    """Mean IoU of every candidate for the bar, one row per candidate and one column per source.

    The candidates are the models of `scores` (a `pool_scores` table) trained in one of `regimes`,
    named ``"<method> (<regime>)"``, and the randomized model of `randomized_scores` (a
    `candidate_scores` table) at `strength`, named ``"<method> (randomized, strength <strength>)"``.
    """
    trained = scores[scores.regime.isin(list(regimes))]
    randomized = randomized_scores[randomized_scores.strength == strength]
    pool = pd.concat([trained.assign(candidate=trained.method + " (" + trained.regime + ")"),
                      randomized.assign(candidate=randomized.method + f" (randomized, strength {strength:g})")])
    if pool.empty:
        raise ValueError("scores, randomized_scores: no candidate in regimes or at strength")
    return pool.groupby(["candidate", "source"]).iou.mean().unstack()


@dataclass(frozen=True)
class SimToRealBar:
    """The outcome of `sim_to_real_bar`.

    Attributes
    ----------
    candidates : pandas.DataFrame
        Mean IoU per candidate (rows) and source (columns), `bar_candidates`.
    model : str
        The candidate chosen on the selection source; ``model_iou`` its mean IoU on the target.
    baseline_iou : float
        The Otsu + watershed baseline's mean IoU on the target.
    bar_iou : float
    verdict : str
        `bar_verdict` of the chosen model.
    best_any_model, best_any_iou : str, float
        The candidate that does best on the target itself, an optimistic choice, and its IoU.
    """

    candidates: pd.DataFrame
    model: str
    model_iou: float
    baseline_iou: float
    bar_iou: float
    verdict: str
    best_any_model: str
    best_any_iou: float


def sim_to_real_bar(scores: pd.DataFrame, randomized_scores: pd.DataFrame, *, regimes: Iterable[str],
                    strength: float, bar_iou: float, source: str = SELECTION_SOURCE,
                    target: str = "dsb2018") -> SimToRealBar:
    """The sim-to-real bar: does the best synthetic-trained model, chosen on `source`, beat the
    baseline on `target` and reach `bar_iou` there?

    Parameters
    ----------
    scores : pandas.DataFrame
        A `pool_scores` table, with the baseline's rows on `target`.
    randomized_scores : pandas.DataFrame
        A `candidate_scores` table; its model at `strength` joins the candidates (`bar_candidates`).
    regimes : iterable of str
        The training regimes whose models are candidates.
    strength : float
        The chosen randomization strength (`best_strength`).
    bar_iou : float
        The IoU the chosen model must reach on `target`.
    source : str
        Where the candidate is chosen (never a test source).
    target : str
        The test source the bar is measured on.
    """
    _check_selection(source)
    candidates = bar_candidates(scores, randomized_scores, regimes=regimes, strength=strength)
    for column in (source, target):
        if column not in candidates.columns:
            raise ValueError(f"scores: no candidate is scored on source {column!r}")
    baseline = scores[(scores.source == target) & (scores.method == BASELINE)]
    if baseline.empty:
        raise ValueError(f"scores: no {BASELINE} rows on {target!r}")
    pick = candidates[source].idxmax()
    pick_iou = float(candidates.loc[pick, target])
    baseline_iou = float(baseline.iou.mean())
    return SimToRealBar(candidates, pick, pick_iou, baseline_iou, float(bar_iou),
                        bar_verdict(pick_iou, baseline_iou, bar_iou=bar_iou),
                        candidates[target].idxmax(), float(candidates[target].max()))


# ----------------------------------------------------------------------------------------------
# Do the rankings agree?
# ----------------------------------------------------------------------------------------------

def ranking_table(synthetic_scores: pd.DataFrame, scores: pd.DataFrame, *, models: Iterable[str],
                  sources: Iterable[str] = REAL_TEST_SOURCES, structure: str = "nuclei",
                  regime: str = "standard") -> pd.DataFrame:
    """Mean IoU per model on synthetic and on real test images, side by side.

    Parameters
    ----------
    synthetic_scores : pandas.DataFrame
        Per-image synthetic test scores with ``structure``, ``regime``, ``model`` and ``iou``
        (the training chapter's ``03_training_test_scores.csv``).
    scores : pandas.DataFrame
        A `pool_scores` table; its rows of `models` in `regime` on `sources` give the real score.
    models : iterable of str
        The architectures to rank (the baseline and the references are left out).

    Returns
    -------
    pandas.DataFrame
        ``synthetic`` and ``real`` mean IoU, indexed by model; models missing from either table
        are dropped.
    """
    synthetic = (synthetic_scores[(synthetic_scores.structure == structure) & (synthetic_scores.regime == regime)]
                 .groupby("model").iou.mean())
    real = (scores[(scores.regime == regime) & scores.method.isin(list(models)) & scores.source.isin(list(sources))]
            .groupby("method").iou.mean())
    return pd.DataFrame({"synthetic": synthetic, "real": real}).dropna()


@dataclass(frozen=True)
class RankAgreement:
    """Spearman correlation of two rankings with its bootstrap CI, and the verdict on the claim
    that rankings on synthetic images carry over to real ones (a key of `RANK_MEANINGS`)."""

    r: float
    low: float
    high: float
    verdict: str
    n: int

    @property
    def meaning(self) -> str:
        """What the verdict means for the claim, in words (`RANK_MEANINGS`)."""
        return RANK_MEANINGS[self.verdict]


def rank_agreement(paired: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0) -> RankAgreement:
    """Do the models rank alike on synthetic and on real images?

    The Spearman correlation of ``paired.synthetic`` and ``paired.real`` (a `ranking_table`), with a
    bootstrap CI over models (`fmlib.metrics.correlation_ci`). The claim is ``"supported"`` when the
    CI lies above zero, ``"contradicted"`` below it, else ``"inconclusive"``; ``"not testable"``
    (correlation NaN) with fewer than three models or when either column is constant.

    Examples
    --------
    >>> rank_agreement(pd.DataFrame({"synthetic": [0.8, 0.7], "real": [0.5, 0.4]})).verdict
    'not testable'
    """
    check_int("n_boot", n_boot, low=1)
    if len(paired) >= 3 and paired.synthetic.nunique() > 1 and paired.real.nunique() > 1:
        r, low, high = correlation_ci(paired.synthetic, paired.real, method="spearman", n_boot=n_boot, seed=seed)
        verdict = "supported" if low > 0 else ("contradicted" if high < 0 else "inconclusive")
    else:
        r = low = high = math.nan
        verdict = "not testable"
    return RankAgreement(float(r), float(low), float(high), verdict, len(paired))
