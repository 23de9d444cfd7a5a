"""Score tables of model pools and the classic baseline on real sources, and the choices made on
the selection source only (never on a test source)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..evaluation import attack_table, clean_scores, corruption_table, prediction_scores, robust_table, with_robustness
from ..inference import predict
from ..realdata import ALL_REAL_TEST_SOURCES, REAL_TEST_SOURCES, SELECTION_SOURCE, Tiles, otsu_watershed

#: The classic baseline's ``method`` and ``regime`` in the score tables.
BASELINE = "otsu_watershed"
BASELINE_REGIME = "-"


#: A model's foreground on tiles: ``predictor(model, tiles) -> bool (N, H, W)``.
Predictor = Callable[[torch.nn.Module, Tiles], np.ndarray]


def tile_prediction(model: torch.nn.Module, tiles: Tiles) -> np.ndarray:
    """The default `Predictor`: the model on each tile as it is (`fmlib.inference.predict`)."""
    return predict(model, tiles.images)


def source_scores(model: torch.nn.Module, tiles: Mapping[str, Tiles], sources: Iterable[str], /, *,
                  predictor: Predictor | None = None, **columns) -> pd.DataFrame:
    """Per-tile scores of `model` (`fmlib.evaluation.clean_scores`) on each of `sources` (keys of
    `tiles`), one table: the `columns` (e.g. ``method="unet", regime="standard"``, in that order)
    and then ``source`` are added to every row. With a `predictor` (e.g. a
    `fmlib.sizing.SizeNormalizer`), the scores are of ``predictor(model, tiles)``
    (`fmlib.evaluation.prediction_scores`)."""
    if predictor is None:
        return pd.concat([clean_scores(model, tiles[source]).assign(**columns, source=source) for source in sources],
                         ignore_index=True)
    return pd.concat([prediction_scores(predictor(model, tiles[source]), tiles[source]).assign(**columns, source=source)
                      for source in sources], ignore_index=True)


def baseline_foreground(tiles: Tiles) -> np.ndarray:
    """The foreground (N, H, W) bool of the Otsu + watershed baseline (`fmlib.realdata.otsu_watershed`)
    on each tile."""
    return np.stack([otsu_watershed(image) > 0 for image in tiles.images])


def baseline_scores(tiles: Mapping[str, Tiles], sources: Iterable[str]) -> pd.DataFrame:
    """Per-tile scores of the Otsu + watershed baseline (`baseline_foreground`) on each of `sources`,
    with ``method`` `BASELINE`, ``regime`` `BASELINE_REGIME` and ``source``."""
    rows = []
    for source in sources:
        predictions = baseline_foreground(tiles[source])
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


def check_selection_source(source: str) -> str:
    if source in ALL_REAL_TEST_SOURCES:
        raise ValueError(f"source: {source!r} is a test source ({', '.join(ALL_REAL_TEST_SOURCES)}); choose on "
                         f"{SELECTION_SOURCE!r}, which only selects")
    return source


def best_architecture(scores: pd.DataFrame, *, source: str = SELECTION_SOURCE, regime: str = "standard") -> str:
    """The ``method`` of `scores` (a `pool_scores` table) with the highest mean IoU on `source`
    among the rows of `regime`. Raises ValueError for a test source or when no row matches."""
    check_selection_source(source)
    rows = scores[(scores.regime == regime) & (scores.source == source)]
    if rows.empty:
        raise ValueError(f"scores: no rows of regime {regime!r} on source {source!r}")
    return rows.groupby("method").iou.mean().idxmax()


def best_strength(summary: pd.DataFrame, *, source: str = SELECTION_SOURCE,
                  strengths: Iterable[float] | None = None) -> float:
    """The randomization strength with the highest ``mean`` on `source` in `summary` (a bootstrap
    summary of `candidate_scores` by ``source`` and ``strength``, `fmlib.metrics.bootstrap_scores`),
    among `strengths` when given (the competent candidates, `fmlib.simtoreal.candidate_verdicts`)."""
    check_selection_source(source)
    by_strength = summary.set_index(["source", "strength"])["mean"]
    if source not in by_strength.index.get_level_values("source"):
        raise ValueError(f"summary: no rows on source {source!r}")
    on_source = by_strength.loc[source]
    if strengths is not None:
        on_source = on_source[on_source.index.isin([float(s) for s in strengths])]
        if on_source.empty:
            raise ValueError(f"strengths: none of {list(strengths)} is in the summary on {source!r}")
    return float(on_source.idxmax())


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
    return with_robustness(pd.concat(corr_rows, ignore_index=True)), pd.concat(adv_rows, ignore_index=True)


def robust_tables(cfg: Mapping, models: Iterable[tuple[str, torch.nn.Module]], tiles: Tiles, *,
                  progress: bool = True) -> pd.DataFrame:
    """The robust IoU of every (name, model) of `models` on `tiles`: the per-image worst case over
    the attack ensemble at each budget of `cfg.ensemble_eps_255` (`fmlib.evaluation.robust_table`,
    on the first `cfg.n_attack_images` tiles, as the study's synthetic robust IoU), with a ``model``
    column. The adversarial side of the real-image claim is ranked on this, the score the study's
    rankings use, not on one attack that may not have converged."""
    rows = [robust_table(cfg, model, tiles).assign(model=name)
            for name, model in tqdm(models, desc="models", disable=not progress)]
    if not rows:
        raise ValueError("models: expected at least one model")
    return pd.concat(rows, ignore_index=True)
