"""Model rankings on absolute scores, with confidence intervals that resample training seeds, then
test images.

A ranking by the paper's ratio (corrupted IoU / clean IoU) rewards a model that is poor on clean
images: its ratio has less room to fall. A reader choosing a model needs the scores it will get, so
the headline scores here are absolute (Hendrycks & Dietterich 2019; Kamann & Rother 2020):

- ``corrupted_iou``: mean IoU over the corruptions (those the input normalisation does not cancel)
  and the five severities;
- ``mce``: mean corruption error, per corruption ``sum_s (1 - IoU) / sum_s (1 - IoU_ref)`` over
  severities, against a reference model, averaged over corruptions; ``relative_mce`` the same on the
  drop from each model's own clean error;
- ``robust_iou``: IoU under the attack ensemble (`fmlib.evaluation.robust_table`), per budget and
  averaged over budgets.

The paper's ratio stays beside them (``ratio``), as the ratio of the mean IoUs (`ratio_of_means`):
the mean of per-image ratios that the paper's code averages is unbounded where a clean IoU is near
zero, and one such image can then outweigh a whole test set. Every score is averaged over images, then seeds,
then structures; its interval comes from one joint bootstrap that, within each structure, resamples
the training seeds and then the test images of each drawn seed, the same draw for every model, so
the ranks get intervals too. A structure trained with one seed has image intervals only
(``n_seeds`` says so).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ._checks import check_int
from .metrics import bootstrap_ci, ratio_of_means, robustness_ratio
from .stats import holm, paired_permutation_p

_LEVELS = ("model", "seed", "image")


def _cube(table: pd.DataFrame, value: str, columns: Sequence[str], models: Sequence[str]) -> np.ndarray:
    """`value` as an array [model, seed, image, *columns] (the grid gives every model the same seeds
    and images of a structure; a hole is an error, not a silent NaN)."""
    index = [*_LEVELS, *columns]
    series = table.set_index(index)[value]
    if series.index.has_duplicates:
        raise ValueError(f"table: more than one row per {index}")
    levels = [list(models), *[sorted(series.index.unique(k)) for k in index[1:]]]
    full = series.reindex(pd.MultiIndex.from_product(levels, names=index))
    if full.isna().any():
        missing = full[full.isna()].index[0]
        raise ValueError(f"table: no {value!r} for {dict(zip(index, missing))} (every model needs every seed, "
                         f"image and {', '.join(columns) or 'row'})")
    return full.to_numpy().reshape([len(level) for level in levels])


def _draws(n_seeds: int, n_images: int, n_boot: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap indices: seeds (n_boot, S), then images per drawn seed (n_boot, S, I)."""
    return rng.integers(0, n_seeds, (n_boot, n_seeds)), rng.integers(0, n_images, (n_boot, n_seeds, n_images))


def _resampled(cube: np.ndarray, seeds: np.ndarray, images: np.ndarray) -> np.ndarray:
    """Per replicate, `cube` [model, seed, image, ...] at the drawn seeds and images:
    [n_boot, model, seed, image, ...]."""
    picked = cube[:, seeds]                                    # [model, boot, S, image, ...]
    picked = np.moveaxis(picked, 1, 0)                         # [boot, model, S, image, ...]
    b, m, s, i = np.ix_(np.arange(len(seeds)), np.arange(cube.shape[0]), np.arange(seeds.shape[1]),
                        np.arange(images.shape[2]))
    return picked[b, m, s, images[b, s, i]]


def _summaries(strata: dict[str, dict[str, np.ndarray]], score, n_boot: int, seed: int,
               chunk: int = 250) -> tuple[np.ndarray, np.ndarray]:
    """The point estimate [model] and the bootstrap replicates [n_boot, model] of ``score(arrays)``
    averaged over strata, where each stratum's arrays are [model, seed, image, ...] (one draw of seeds
    and images per stratum shared by all its arrays and models; replicates in chunks, to bound memory)."""
    rng = np.random.default_rng(seed)
    estimate, boots = [], []
    for arrays in strata.values():
        first = next(iter(arrays.values()))
        seeds, images = _draws(first.shape[1], first.shape[2], n_boot, rng)
        estimate.append(score({k: v[None] for k, v in arrays.items()})[0])
        boots.append(np.concatenate([score({k: _resampled(v, seeds[c:c + chunk], images[c:c + chunk])
                                            for k, v in arrays.items()}) for c in range(0, n_boot, chunk)]))
    return np.mean(estimate, axis=0), np.mean(boots, axis=0)


def _ce(errors: np.ndarray, reference: int, clean: np.ndarray | None = None, n_severities: int = 5) -> np.ndarray:
    """Mean corruption error [boot, model] from errors summed over severities [boot, model, seed,
    image, corruption]; with `clean` errors [boot, model, seed, image], the relative CE (the summed
    drop from each model's own clean error)."""
    e = errors.mean(axis=(2, 3))                               # [boot, model, corruption]
    if clean is not None:
        e = e - n_severities * clean.mean(axis=(2, 3))[..., None]
    ref = e[:, reference:reference + 1]
    # a corruption that leaves the reference unharmed has no error to compare with (as in
    # `fmlib.metrics.corruption_errors`): it is left out of the mean, not divided by zero
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nanmean(e / np.where(np.abs(ref) > 1e-12, ref, np.nan), axis=-1)


def _frame(models, estimate, boots, name: str, confidence: float, higher_is_better: bool) -> pd.DataFrame:
    alpha = (1 - confidence) / 2
    low, high = np.quantile(boots, [alpha, 1 - alpha], axis=0)
    order = -boots if higher_is_better else boots
    ranks = order.argsort(axis=1).argsort(axis=1) + 1
    rank_low, rank_high = np.quantile(ranks, [alpha, 1 - alpha], axis=0)
    point = (-estimate if higher_is_better else estimate).argsort().argsort() + 1
    return pd.DataFrame({"model": list(models), name: estimate, f"{name}_low": low, f"{name}_high": high,
                         f"{name}_rank": point, f"{name}_rank_low": rank_low, f"{name}_rank_high": rank_high})


def _seed_counts(table: pd.DataFrame) -> str:
    counts = table.groupby("structure").seed.nunique()
    return ", ".join(f"{s}: {n}" for s, n in counts.items())


def corruption_scores(corruption: pd.DataFrame, *, reference_model: str, exclude: Sequence[str] = (),
                      n_boot: int = 2000, confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Per model, over structures: clean IoU, corrupted IoU, mCE, relative mCE and the paper's ratio,
    each with its CI and rank (1 = best) with a rank CI, sorted by corrupted IoU.

    `corruption` is a table of `fmlib.evaluation.corruption_table` rows with ``model``, ``structure``
    and ``seed`` columns (`fmlib.grid.evaluations`); `exclude` lists corruptions left out (those the
    input normalisation cancels: `fmlib.corruptions.cancelled_corruptions`).
    """
    check_int("n_boot", n_boot, low=1)
    table = corruption[~corruption.corruption.isin(list(exclude))]
    if table.empty:
        raise ValueError("corruption: no rows left once the excluded corruptions are removed")
    models = sorted(table.model.unique())
    if reference_model not in models:
        raise ValueError(f"reference_model: {reference_model!r} is not among the models {models}")
    ref = models.index(reference_model)
    table = table.assign(error=1 - table.iou)
    n_severities = table.severity.nunique()
    strata = {}
    for structure, part in table.groupby("structure", sort=True):
        counts = part.groupby(list(_LEVELS)).size()
        if counts.nunique() > 1:
            short = counts.idxmin()
            raise ValueError(f"corruption: {dict(zip(_LEVELS, short))} on {structure!r} has {counts.min()} corruption "
                             f"x severity rows, others {counts.max()} (every model needs every seed, image and row)")
        # reduced to [model, seed, image(, corruption)] first: the bootstrap then stays small
        per_image = part.groupby(list(_LEVELS)).agg(iou=("iou", "mean"), clean=("clean_iou", "first")).reset_index()
        errors = part.groupby([*_LEVELS, "corruption"]).error.sum().reset_index()
        strata[structure] = {name: _cube(per_image, name, (), models) for name in ("iou", "clean")}
        strata[structure]["errors"] = _cube(errors, "error", ("corruption",), models)
    scores = {"clean_iou": (lambda a: a["clean"].mean(axis=(2, 3)), True),
              "corrupted_iou": (lambda a: a["iou"].mean(axis=(2, 3)), True),
              "mce": (lambda a: _ce(a["errors"], ref), False),
              "relative_mce": (lambda a: _ce(a["errors"], ref, 1 - a["clean"], n_severities), False),
              "ratio": (lambda a: ratio_of_means(a["iou"], a["clean"], axis=(2, 3)), True)}
    out = None
    for k, (name, (score, higher)) in enumerate(scores.items()):
        estimate, boots = _summaries(strata, score, n_boot, seed + k)
        frame = _frame(models, estimate, boots, name, confidence, higher)
        out = frame if out is None else out.merge(frame, on="model")
    out["n_seeds"] = _seed_counts(table)
    return out.sort_values("corrupted_iou", ascending=False, kind="stable").reset_index(drop=True)


def robust_scores(robust: pd.DataFrame, *, n_boot: int = 2000, confidence: float = 0.95,
                  seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Robust IoU under the ensemble (rows of `fmlib.evaluation.robust_table` with ``model``,
    ``structure`` and ``seed``), over structures: per model and budget (first frame), and per model
    averaged over budgets with the paper's ratio beside it (second frame, sorted by robust IoU)."""
    check_int("n_boot", n_boot, low=1)
    models = sorted(robust.model.unique())
    budgets = sorted(robust.eps_255.unique())
    per_eps = []
    for j, level in enumerate(budgets):
        at = robust[robust.eps_255 == level]
        strata = {s: {"iou": _cube(p, "iou", (), models)} for s, p in at.groupby("structure", sort=True)}
        estimate, boots = _summaries(strata, lambda a: a["iou"].mean(axis=(2, 3)), n_boot, seed + j)
        per_eps.append(_frame(models, estimate, boots, "robust_iou", confidence, True).assign(eps_255=level))
    means = robust.groupby(["structure", *_LEVELS]).agg(iou=("iou", "mean"), clean=("clean_iou", "mean")).reset_index()
    strata = {s: {name: _cube(p, name, (), models) for name in ("iou", "clean")}
              for s, p in means.groupby("structure", sort=True)}
    overall = None
    score = {"iou": lambda a: a["iou"].mean(axis=(2, 3)),
             "ratio": lambda a: ratio_of_means(a["iou"], a["clean"], axis=(2, 3))}
    for k, name in enumerate(("iou", "ratio")):
        estimate, boots = _summaries(strata, score[name], n_boot, seed + 100 + k)
        frame = _frame(models, estimate, boots, "robust_iou" if name == "iou" else "robust_ratio", confidence, True)
        overall = frame if overall is None else overall.merge(frame, on="model")
    overall["n_seeds"] = _seed_counts(robust)
    return (pd.concat(per_eps, ignore_index=True),
            overall.sort_values("robust_iou", ascending=False, kind="stable").reset_index(drop=True))


def disagreements(ranking: pd.DataFrame, absolute: str, ratio: str, *, min_shift: int = 2) -> pd.DataFrame:
    """The models whose rank by `absolute` and by `ratio` differ by at least `min_shift` places,
    with both ranks and clean IoU where present: where the paper's ratio would mislead."""
    check_int("min_shift", min_shift, low=1)
    shift = ranking[f"{ratio}_rank"] - ranking[f"{absolute}_rank"]
    columns = ["model", *[c for c in ("clean_iou",) if c in ranking], absolute, f"{absolute}_rank", ratio,
               f"{ratio}_rank"]
    return ranking.loc[shift.abs() >= min_shift, columns].assign(rank_shift=shift[shift.abs() >= min_shift])


def run_scores(corruption: pd.DataFrame, robust: pd.DataFrame, *, exclude: Sequence[str] = ()) -> pd.DataFrame:
    """One row per trained model (structure, model, regime, seed): clean IoU, corrupted IoU (without
    `exclude`), robust IoU under the ensemble (mean over budgets) and the paper's two ratios; the
    table the defense rules pair regime against standard on (`fmlib.recommendations`)."""
    keys = ["structure", "model", "regime", "seed"]
    kept = corruption[~corruption.corruption.isin(list(exclude))]
    corr = kept.groupby(keys).agg(clean_iou=("clean_iou", "mean"), corrupted_iou=("iou", "mean"))
    corr["corruption_ratio"] = robustness_ratio(corr.corrupted_iou, corr.clean_iou)  # the ratio of the means
    adv = robust.groupby(keys).agg(robust_iou=("iou", "mean"), attacked_clean=("clean_iou", "mean"))
    adv["robust_ratio"] = robustness_ratio(adv.robust_iou, adv.attacked_clean)
    return corr.join(adv.drop(columns="attacked_clean"), how="inner").reset_index()


def seed_averaged_changes(table: pd.DataFrame, regime: str, reference: str = "standard") -> tuple[np.ndarray, int]:
    """`regime` minus `reference` per architecture, from `table`: one metric, one row per training run
    (index levels such as ``structure``, ``model`` and ``seed``), one column per regime.

    Each run is paired with its `reference` twin (the same index), and the differences are averaged
    over the ``seed`` level: the training seeds of one architecture are not independent samples of a
    claim about training regimes, so the unit of a test or a CI on these changes is the architecture
    (per structure), not the run. Returns the changes and the number of seed pairs behind them; both
    empty where either regime was not run.
    """
    if regime not in table or reference not in table:
        return np.zeros(0), 0
    paired = (table[regime] - table[reference]).dropna()
    units = [name for name in paired.index.names if name != "seed"]
    if "seed" in paired.index.names and units:
        return paired.groupby(level=units).mean().to_numpy(), len(paired)
    return paired.to_numpy(), len(paired)


def paired_changes(runs: pd.DataFrame, metrics: Sequence[str], regimes: Sequence[str], *, reference: str = "standard",
                   n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """What each regime of `regimes` changes against `reference` training, per metric of `metrics`.

    The changes are `seed_averaged_changes` of the `run_scores` rows: each run paired with its
    `reference` twin of the same structure, model and seed, averaged over seeds, so that the mean, its
    bootstrap CI, the two-sided sign-flip permutation p and the Holm-adjusted p over the whole table
    count architectures (per structure), not training runs. One row per regime and metric:
    ``regime``, ``key`` (the metric), ``change``, ``ci_low``, ``ci_high``, ``p``, ``pairs``
    (architecture-structure units), ``runs`` (seed pairs behind them), ``p_holm``."""
    pivot = runs.pivot_table(index=["structure", "model", "seed"], columns="regime", values=list(metrics))
    rows = []
    for regime in regimes:
        for metric in metrics:
            diff, n_runs = seed_averaged_changes(pivot[metric], regime, reference)
            est, lo, hi = bootstrap_ci(diff, n_boot=n_boot, seed=seed)
            rows.append({"regime": regime, "key": metric, "change": est, "ci_low": lo, "ci_high": hi,
                         "p": paired_permutation_p(diff, alternative="two-sided", seed=seed), "pairs": len(diff),
                         "runs": n_runs})
    table = pd.DataFrame(rows)
    return table.assign(p_holm=holm(table.p))
