"""The study's results at a glance: one row per architecture, the absolute scores a model chooser
needs with their 95 % CIs, and the flags that say when a score must not be trusted.

`at_a_glance` joins what the notebooks already computed (it estimates nothing itself):

- clean IoU and mean corrupted IoU (`fmlib.rankings.corruption_scores`, standard training, mean over
  seeds and structures);
- the robust IoU under the attack ensemble at each budget (`fmlib.rankings.robust_scores`);
- the pixel IoU on the expert-labelled real image (the real-image notebook's per-source summary),
  for each training regime asked for;
- the flags: *not competent* (`fmlib.competence`, with the reason) and *gradient masking suspected*
  (`fmlib.strength`).

A model that is not competent keeps its row, flagged, without scores and without a place in the
order; the others are sorted by one stated absolute score. `interval_figure` draws the scores with
their intervals, so that a reader sees where the intervals of two architectures overlap.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .competence import excluded, require_columns
from .strength import PASSES

SORT_SCORES = ("clean_iou", "corrupted_iou", "robust_iou")


def _flags(models: Sequence[str], per_model: pd.DataFrame, gate: pd.DataFrame, regime: str) -> dict[str, str]:
    """Per model, its flags in words ("" when none)."""
    flags = {m: [] for m in models}
    dropped = excluded(gate)
    dropped = dropped[dropped.regime == regime] if "regime" in dropped.columns else dropped
    # the structures only: the reasons are in the training page's table, and the row stays one line
    for model, part in dropped.groupby("model", sort=False):
        if model in flags:
            flags[model].append(f"not competent on {', '.join(part.structure)}")
    checks = per_model.set_index("model")["attack_check"] if "attack_check" in per_model else pd.Series(dtype=str)
    for model, check in checks.items():
        if isinstance(check, str) and check != PASSES:
            flags[model].append(check)
    return {m: "; ".join(f) for m, f in flags.items()}


def at_a_glance(per_model: pd.DataFrame, robust_by_eps: pd.DataFrame, gate: pd.DataFrame,
                real_summary: pd.DataFrame | None = None, *, real_source: str = "dsb2018",
                real_regimes: Sequence[str] = ("standard",), regime: str = "standard",
                sort_by: str = "corrupted_iou") -> pd.DataFrame:
    """One row per architecture of `gate`: absolute scores with their 95 % CIs, and the flags.

    Parameters
    ----------
    per_model : DataFrame
        The ranked models (competent on every structure): ``model``, ``clean_iou`` and
        ``corrupted_iou`` with ``_low`` / ``_high``, and ``attack_check`` where known.
    robust_by_eps : DataFrame
        ``model``, ``eps_255``, ``robust_iou``, ``robust_iou_low``, ``robust_iou_high``.
    gate : DataFrame
        The competence table (`fmlib.competence.competence_table`): every trained model appears.
    real_summary : DataFrame, optional
        ``source``, ``method``, ``regime``, ``mean``, ``ci_low``, ``ci_high`` (`fmlib.metrics.bootstrap_scores`).
    real_source, real_regimes
        The real source reported, and the training regimes whose scores on it get a column each.
    regime : str
        The regime the synthetic scores come from (the benchmark's: ``"standard"``).
    sort_by : {"clean_iou", "corrupted_iou", "robust_iou"}
        The absolute score the rows are sorted by, best first (``robust_iou``: mean over budgets).

    Returns
    -------
    DataFrame
        ``model``, the scores as ``<score>``, ``<score>_low``, ``<score>_high`` (``robust_iou_<eps>``
        per budget, ``real_iou_<regime>``), ``rank`` (by `sort_by`; empty for a flagged-out
        model) and ``flags``.

    Examples
    --------
    >>> per_model = pd.DataFrame({"model": ["a", "b"], "clean_iou": [0.9, 0.95], "clean_iou_low": [0.88, 0.94],
    ...                           "clean_iou_high": [0.92, 0.96], "corrupted_iou": [0.8, 0.7],
    ...                           "corrupted_iou_low": [0.78, 0.68], "corrupted_iou_high": [0.82, 0.72],
    ...                           "attack_check": ["passes", "gradient masking suspected"]})
    >>> by_eps = pd.DataFrame({"model": ["a", "b"], "eps_255": [8.0, 8.0], "robust_iou": [0.5, 0.6],
    ...                        "robust_iou_low": [0.4, 0.5], "robust_iou_high": [0.6, 0.7]})
    >>> gate = pd.DataFrame({"model": ["a", "b", "c"], "structure": "nuclei", "regime": "standard",
    ...                      "competent": [True, True, False], "reason": ["", "", "not converged"]})
    >>> at_a_glance(per_model, by_eps, gate)[["model", "rank", "flags"]].values.tolist()
    [['a', 1, ''], ['b', 2, 'gradient masking suspected'], ['c', <NA>, 'not competent on nuclei']]
    """
    if sort_by not in SORT_SCORES:
        raise ValueError(f"sort_by: expected one of {SORT_SCORES}, got {sort_by!r}")
    bounds = ("", "_low", "_high")
    require_columns(per_model, "per_model", ["model", *(f"{s}{b}" for s in SORT_SCORES[:2] for b in bounds)])
    require_columns(robust_by_eps, "robust_by_eps", ["model", "eps_255", *(f"robust_iou{b}" for b in bounds)])
    require_columns(gate, "gate", ["model", "competent", "reason"])
    models = list(dict.fromkeys(gate.model))
    scores = ["clean_iou", "corrupted_iou"]
    table = per_model[["model", *(f"{s}{b}" for s in scores for b in bounds)]].copy()
    robust_cols = []
    for eps, part in robust_by_eps.groupby("eps_255", sort=True):
        name = f"robust_iou_{eps:g}"
        robust_cols.append(name)
        renamed = part.rename(columns={f"robust_iou{b}": f"{name}{b}" for b in bounds})
        table = table.merge(renamed[["model", name, f"{name}_low", f"{name}_high"]], on="model", how="left")
    if real_summary is not None:
        require_columns(real_summary, "real_summary", ["source", "method", "regime", "mean", "ci_low", "ci_high"])
        for real_regime in real_regimes:
            part = real_summary[(real_summary.source == real_source) & (real_summary.regime == real_regime)]
            name = f"real_iou_{real_regime}"
            part = part.rename(columns={"method": "model", "mean": name, "ci_low": f"{name}_low",
                                        "ci_high": f"{name}_high"})
            table = table.merge(part[["model", name, f"{name}_low", f"{name}_high"]], on="model", how="left")
    key = table[robust_cols].mean(axis=1) if sort_by == "robust_iou" else table[sort_by]
    table = table.assign(_key=key).sort_values("_key", ascending=False).drop(columns="_key")
    table["rank"] = pd.array(np.arange(1, len(table) + 1), dtype="Int64")
    table = pd.concat([table, pd.DataFrame({"model": [m for m in models if m not in set(table.model)]})],
                      ignore_index=True)
    table["rank"] = table["rank"].astype("Int64")
    flags = _flags(list(table.model), per_model, gate, regime)
    table["flags"] = table.model.map(flags)
    return table.reset_index(drop=True)


def interval_figure(table: pd.DataFrame, scores: Sequence[str] | None = None, *, labels: dict[str, str] | None = None):
    """Dot-and-whisker plot of `table` (`at_a_glance`): one panel per score, one line per ranked
    architecture in the table's order, its estimate and 95 % CI; flagged architectures are drawn
    hollow. Returns the figure."""
    ranked = table[table["rank"].notna()]
    scores = list(scores) if scores is not None else [
        c for c in table.columns if c.endswith("_iou") or c.startswith(("robust_iou_", "real_iou_"))
        if not c.endswith(("_low", "_high")) and f"{c}_low" in table.columns]
    labels = labels or {}
    fig, axes = plt.subplots(1, len(scores), figsize=(2.3 * len(scores) + 1.2, max(2.8, 0.35 * len(ranked) + 1.3)),
                             sharey=True, squeeze=False)
    y = np.arange(len(ranked))
    for ax, score in zip(axes[0], scores):
        est, low, high = (ranked[f"{score}{b}"].to_numpy(float) for b in ("", "_low", "_high"))
        flagged = ranked["flags"].fillna("").ne("").to_numpy()
        ax.errorbar(est, y, xerr=[est - low, high - est], fmt="none", ecolor="0.35", elinewidth=1.2, capsize=2)
        ax.scatter(est[~flagged], y[~flagged], color="C0", zorder=3, s=22)
        ax.scatter(est[flagged], y[flagged], facecolor="white", edgecolor="C3", zorder=3, s=22)
        ax.set_title(labels.get(score, score.replace("_", " ")), fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[0, 0].set_yticks(y, ranked.model)
    axes[0, 0].invert_yaxis()
    fig.tight_layout()
    return fig


def formatted(table: pd.DataFrame, *, digits: int = 2) -> pd.DataFrame:
    """`table` (`at_a_glance`) for the page: each score as "estimate [low, high]" in a narrow column
    named in words, "—" where a model has no score, the flags last.

    Examples
    --------
    >>> t = pd.DataFrame({"model": ["a"], "rank": [1], "clean_iou": [0.912], "clean_iou_low": [0.9],
    ...                   "clean_iou_high": [0.93], "flags": [""]})
    >>> formatted(t).iloc[0, 1:].tolist()
    ['a', '0.91 [0.90, 0.93]', '']
    """
    out = table[["rank", "model"]].copy()
    for score in [c for c in table.columns if f"{c}_low" in table.columns]:
        est, low, high = (table[f"{score}{b}"] for b in ("", "_low", "_high"))
        text = [f"{e:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]" if np.isfinite(e) else "—"
                for e, lo, hi in zip(est.astype(float), low.astype(float), high.astype(float))]
        out[_label(score)] = text
    out["flags"] = table["flags"].fillna("")
    return out


def _label(score: str) -> str:
    if score.startswith("robust_iou_"):
        return f"robust IoU, {score.removeprefix('robust_iou_')}/255"
    if score.startswith("real_iou_"):
        return f"real image IoU ({score.removeprefix('real_iou_')})"
    return score.replace("_iou", " IoU")
