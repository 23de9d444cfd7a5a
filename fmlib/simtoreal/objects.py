"""Nuclei scored as objects on the real sources: the DSB 2018 matching (`fmlib.instances`) of the
models' foreground maps, split into nuclei the way the baseline splits its threshold, and of the
Otsu + watershed baseline itself, beside semantic IoU."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from .._checks import check_choice
from ..inference import predict
from ..instances import DSB_THRESHOLDS, instance_table, split_touching, summarize
from ..realdata import Tiles, labelling, otsu_watershed
from .scores import BASELINE, BASELINE_REGIME


def predicted_instances(model: torch.nn.Module | None, tiles: Tiles, *, min_size_px: int = 16) -> np.ndarray:
    """Instance labels (N, H, W) of `tiles`: the model's foreground split into touching nuclei
    (`fmlib.instances.split_touching`), or with `model` None the Otsu + watershed baseline."""
    if model is None:
        return np.stack([otsu_watershed(image, min_size_px=min_size_px) for image in tiles.images])
    return np.stack([split_touching(mask, min_size_px=min_size_px) for mask in predict(model, tiles.images)])


def object_counts(models: Iterable[tuple], tiles: Mapping[str, Tiles],
                  sources: Sequence[str], *, baseline: bool = True,
                  thresholds: Sequence[float] = DSB_THRESHOLDS,
                  labeller: Callable[[torch.nn.Module, Tiles], np.ndarray] | None = None) -> pd.DataFrame:
    """TP, FP and FN per tile and threshold (`fmlib.instances.instance_table`) of every (name, regime,
    model) of a pool on each of `sources`, and of the baseline (``method`` `BASELINE`) when `baseline`;
    every row says who labelled its source (``labelling``: expert or automatic). A model's nuclei are
    ``labeller(model, tiles)`` (e.g. `fmlib.sizing.SizeNormalizer.instances`), by default
    `predicted_instances` on the tiles as they are.

    An entry of `models` may be (name, regime, model, seed), several trainings of one architecture:
    the rows then carry a ``seed`` column (missing for the baseline), and `object_scores` averages
    the seeds. `models` may be a generator, so that a large pool is never all in memory."""
    rows = []
    for entry in itertools.chain(models, [(BASELINE, BASELINE_REGIME, None)] if baseline else []):
        if len(entry) not in (3, 4):
            raise ValueError(f"models: expected (name, regime, model) or (name, regime, model, seed), got {len(entry)} "
                             f"items")
        name, regime, model, *seed = entry
        for source in sources:
            if tiles[source].labels is None:
                raise ValueError(f"tiles: source {source!r} has no instance labels")
            found = (predicted_instances(model, tiles[source]) if labeller is None or model is None
                     else labeller(model, tiles[source]))
            table = instance_table(tiles[source].labels, found, tiles[source].names, thresholds)
            rows.append(table.assign(method=name, regime=regime, source=source, labelling=labelling(source).kind,
                                     **({"seed": seed[0]} if seed else {})))
    return pd.concat(rows, ignore_index=True)


def object_scores(counts: pd.DataFrame, *, by: Sequence[str] = ("source", "labelling", "method", "regime"),
                  n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """F1 per threshold and DSB average precision per group of `by` (`fmlib.instances.summarize`),
    with CIs that resample objects. Where `counts` has a ``seed`` column (`object_counts` of several
    trainings per architecture), a group's score is the mean over its seeds and its CI resamples
    seeds, then objects; ``n_seeds`` says how many (1 for the baseline)."""
    by = list(by)
    seeded = "seed" in counts.columns
    frames = []
    for key, group in counts.groupby(by, sort=False):
        several = seeded and group.seed.nunique() > 1
        summary = summarize(group, n_boot=n_boot, seed=seed, seeds="seed" if several else None)
        frames.append(summary.assign(**dict(zip(by, key)), **({} if several or not seeded else {"n_seeds": 1})))
    columns = [*by, "metric", "threshold", "estimate", "ci_low", "ci_high", "n_true", "n_pred"]
    return pd.concat(frames, ignore_index=True)[columns + (["n_seeds"] if seeded else [])]


def median_against_baseline(scores: pd.DataFrame, *, source: str, metric: str = "f1", threshold: float | None = 0.5,
                            regime: str = "standard", baseline: str = BASELINE) -> dict[str, float]:
    """The median over the `regime` methods of one object score (`object_scores`: `metric` at
    `threshold`; None for the average precision) on `source`, against the `baseline`'s, and how many
    methods score above the baseline.

    Returns a dict: ``median``, ``baseline`` (with ``baseline_low``, ``baseline_high``, its CI that
    resamples objects), ``n_above`` and ``n_methods``, and ``verdict``: whether the median lies
    ``"above"``, ``"below"`` or ``"within"`` the baseline's CI.

    Examples
    --------
    >>> scores = pd.DataFrame({"source": "s", "method": ["a", "b", "c", BASELINE], "regime": ["standard"] * 3 + ["-"],
    ...                        "metric": "f1", "threshold": 0.5, "estimate": [0.6, 0.7, 0.9, 0.75],
    ...                        "ci_low": 0.0, "ci_high": 1.0})
    >>> median_against_baseline(scores, source="s")["median"], median_against_baseline(scores, source="s")["n_above"]
    (0.7, 1)
    """
    check_choice("metric", metric, ("f1", "ap"))
    rows = scores[(scores.source == source) & (scores.metric == metric)]
    if threshold is not None:
        rows = rows[np.isclose(rows.threshold.astype(float), threshold)]
    methods = rows[rows.regime == regime]
    reference = rows[rows.method == baseline]
    if methods.empty or len(reference) != 1:
        raise ValueError(f"scores: expected {regime!r} methods and one {baseline!r} row for {metric} on {source!r} "
                         f"(threshold {threshold}), got {len(methods)} and {len(reference)}")
    base = reference.iloc[0]
    median = float(methods.estimate.median())
    verdict = "above" if median > base.ci_high else "below" if median < base.ci_low else "within"
    return {"median": median, "verdict": verdict, "baseline": float(base.estimate),
            "baseline_low": float(base.ci_low), "baseline_high": float(base.ci_high),
            "n_above": int((methods.estimate > base.estimate).sum()), "n_methods": len(methods)}


def object_score_values(scores: pd.DataFrame, methods: Mapping[str, tuple[str, str]],
                        sources: Sequence[str]) -> dict[str, float]:
    """The object scores a page quotes, by name: for each source, each label of `methods` (label ->
    (method, regime)) and each metric (F1 at IoU 0.5, ``f1``; the DSB average precision, ``ap``),
    ``{source}_{label}_{metric}`` with its CI as ``..._low`` and ``..._high``.

    Examples
    --------
    >>> scores = pd.DataFrame({"source": "s", "method": "m", "regime": "r", "metric": ["f1", "ap"],
    ...                        "threshold": [0.5, np.nan], "estimate": [0.8, 0.6], "ci_low": 0.5, "ci_high": 0.9})
    >>> object_score_values(scores, {"best": ("m", "r")}, ["s"])["s_best_ap"]
    0.6
    """
    by_metric = {"f1": scores[(scores.metric == "f1") & np.isclose(scores.threshold.astype(float), 0.5)],
                 "ap": scores[scores.metric == "ap"]}
    values = {}
    for metric, table in by_metric.items():
        table = table.set_index(["source", "method", "regime"])
        for source in sources:
            for label, (method, regime) in methods.items():
                if (source, method, regime) not in table.index:
                    raise ValueError(f"methods: no {metric} score of {method!r} ({regime}) on {source!r}")
                row = table.loc[(source, method, regime)]
                for suffix, column in (("", "estimate"), ("_low", "ci_low"), ("_high", "ci_high")):
                    values[f"{source}_{label}_{metric}{suffix}"] = float(row[column])
    return values


def object_score_table(scores: pd.DataFrame, *, thresholds: Sequence[float] = (0.5, 0.75, 0.9)) -> pd.DataFrame:
    """One row per source, labelling, method and regime; one column per score a reader compares: F1
    at each of `thresholds` and the DSB average precision (``AP``)."""
    shown = scores[(scores.metric == "ap") | scores.threshold.isin(list(thresholds))].assign(
        score=lambda d: d.metric.str.upper() + d.threshold.map(lambda t: "" if np.isnan(t) else f" @ IoU {t:g}"))
    return shown.pivot_table(index=["source", "labelling", "method", "regime"], columns="score", values="estimate",
                             sort=False)
