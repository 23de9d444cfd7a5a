"""The chapter's two training regimes side by side, through the competence gate.

The real-image chapter reports both regimes: ``standard``, the paper's protocol (one acquisition at
SNR 8), is the reproduction; ``randomized`` (acquisitions randomized around it, `fmlib.domain`) is
this project's extension, and the sim-to-real targets are set on it. Every choice and ranking of the
chapter uses only the models that notebook 03's gate judged competent (`fmlib.competence`): a model
that never learned to segment clean synthetic nuclei is never chosen, ranked or counted in a finding.
The baseline (Otsu + watershed) and the model trained on real tiles are not trained on the simulator,
so the gate does not judge them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import pandas as pd
import torch

from ..competence import KEYS, ranked_models, run_verdicts
from ..evaluation import corruption_table, with_robustness
from ..realdata import Tiles
from ..training import REGIMES
from .changes import protocol_change
from .comparisons import Candidate
from .scores import BASELINE_REGIME, Predictor, robust_tables, robustness_tables
from .targets import pixel_counts, sim_to_real_targets

#: ``load(name, regime, seed) -> model``: a trained model of the grid (e.g. `fmlib.grid.trained_model`).
Loader = Callable[[str, str, int], torch.nn.Module]


def _verdicts(gate: pd.DataFrame, structure: str) -> pd.Series:
    missing = [c for c in (*KEYS, "competent") if c not in gate.columns]
    if missing:
        raise ValueError(f"gate: missing columns {missing}; expected a competence table (fmlib.competence)")
    rows = gate[gate.structure == structure]
    return rows.set_index(["model", "regime"]).competent.astype(bool)


def with_competence(scores: pd.DataFrame, gate: pd.DataFrame, *, structure: str = "nuclei",
                    name: str = "method") -> pd.DataFrame:
    """`scores` with a boolean ``competent`` column: on rows of a training regime (`fmlib.training.REGIMES`)
    the gate's verdict on that model (column `name`), `structure` and regime, False where the gate
    does not know it; True on the other rows (the baseline, the model trained on real tiles).

    Examples
    --------
    >>> gate = pd.DataFrame({"model": ["a", "b"], "structure": "nuclei", "regime": "standard",
    ...                      "competent": [True, False]})
    >>> scores = pd.DataFrame({"method": ["a", "b", "c", "otsu"], "regime": ["standard"] * 3 + ["-"]})
    >>> with_competence(scores, gate).competent.tolist()
    [True, False, False, True]
    """
    verdicts = _verdicts(gate, structure)
    trained = scores.regime.isin(REGIMES)
    keys = pd.MultiIndex.from_arrays([scores[name], scores.regime])
    known = pd.Series(verdicts.reindex(keys, fill_value=False).astype(bool).to_numpy(), index=scores.index)
    return scores.assign(competent=known.where(trained, True).astype(bool))


def competent_models(gate: pd.DataFrame, models: Sequence[str], *, regime: str,
                     structure: str = "nuclei") -> list[str]:
    """The `models` (in their order) that the gate judged competent on `structure` in `regime`
    (`fmlib.competence.ranked_models`); a model the gate does not know is not competent."""
    _verdicts(gate, structure)  # checks the columns
    keep = set(ranked_models(gate, regime, [structure]))
    return [m for m in models if m in keep]


def excluded_text(gate: pd.DataFrame, models: Sequence[str], *, regimes: Iterable[str],
                  structure: str = "nuclei") -> str:
    """The models of `regimes` that are not competent on `structure`, in words (``"none"`` when every
    one is): ``"<model> (<regime>): <reason>"``, separated by semicolons; a model the gate does not
    know reads ``"not judged"``."""
    rows = gate[gate.structure == structure].set_index(["model", "regime"])
    parts = []
    for regime in regimes:
        for model in models:
            if (model, regime) not in rows.index:
                parts.append(f"{model} ({regime}): not judged")
            elif not bool(rows.loc[(model, regime), "competent"]):
                reason = rows.loc[(model, regime)].get("reason", "")
                parts.append(f"{model} ({regime}): {reason}" if isinstance(reason, str) and reason else
                             f"{model} ({regime})")
    return "; ".join(parts) or "none"


def candidate_verdicts(candidates: Mapping[float, Candidate], scores: pd.DataFrame, *, method: str,
                       gate: pd.DataFrame, grid_strengths: Mapping[float, str], floor: float,
                       structure: str = "nuclei", source: str = "synthetic_test") -> pd.DataFrame:
    """The gate's verdict on each randomization candidate (`fmlib.simtoreal.randomized_candidates`).

    A strength that is a grid regime's (`grid_strengths`, e.g. ``{0.0: "standard", 0.5: "randomized"}``)
    trains the grid's own model, so it takes the gate's verdict on `method` in that regime (every
    training seed). Any other strength is judged by the gate's rule on its own run
    (`fmlib.competence.run_verdicts`): converged, and a mean IoU on `source` (the clean synthetic
    test images, in `scores`, a `candidate_scores` table) of at least `floor`. That is not the gate's
    own scenes (`fmlib.runs.gate_set`): a candidate is trained in this chapter, outside the grid, and
    scored where the chapter scores every candidate, so its verdict rests on fewer images.

    Returns one row per strength: ``strength``, ``competent``, ``reason``.
    """
    verdicts = gate[gate.structure == structure].set_index(["model", "regime"])
    iou = scores[(scores.source == source) & (scores.method == method)].groupby("strength").iou.mean()
    rows = []
    for strength, candidate in candidates.items():
        regime = grid_strengths.get(float(strength))
        if regime is not None:
            known = (method, regime) in verdicts.index
            competent = known and bool(verdicts.loc[(method, regime), "competent"])
            reason = "" if competent else (str(verdicts.loc[(method, regime), "reason"]) if known else "not judged")
        else:
            if float(strength) not in iou.index:
                raise ValueError(f"scores: no {method!r} rows on {source!r} at strength {strength}")
            run = pd.DataFrame([{"model": method, "structure": structure, "regime": f"strength {strength:g}",
                                 "seed": 0, "iou": float(iou.loc[float(strength)]),
                                 "converged": bool(candidate.converged)}])
            verdict = run_verdicts(run, floor, score="iou").iloc[0]
            competent, reason = bool(verdict.competent), verdict.reason
        rows.append({"strength": float(strength), "competent": competent, "reason": reason})
    return pd.DataFrame(rows, columns=["strength", "competent", "reason"])


def seeded_pool(load: Loader, models: Mapping[str, Sequence[str]],
                seeds: Mapping[str, Sequence[int]]) -> Iterator[tuple[str, str, torch.nn.Module, int]]:
    """(name, regime, model, seed) of every model of each regime (`models`: regime -> architectures)
    and each of its training seeds (`seeds`: regime -> seeds), loaded one at a time by `load`."""
    for regime, names in models.items():
        for name in names:
            for seed in seeds[regime]:
                yield name, regime, load(name, regime, seed), seed


def regime_targets(load: Loader, tiles: Tiles, *, models: Mapping[str, Sequence[str]],
                   seeds: Mapping[str, Sequence[int]], best: Mapping[str, str], bar_iou: float,
                   n_boot: int = 2000, seed: int = 0,
                   predictor: Predictor | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The sim-to-real targets (`sim_to_real_targets`) of each regime on `tiles`: the median of its
    `models` against the baseline, and its `best` against `bar_iou`, over every training seed of
    `seeds`. The baseline is counted once and shared.

    Returns
    -------
    (counts, targets) : tuple of pandas.DataFrame
        The `pixel_counts` of every regime with a ``regime`` column (the baseline's `BASELINE_REGIME`),
        and the targets of every regime, in the order of `models`, with ``regime`` first.
    """
    if not models:
        raise ValueError("models: expected at least one regime")
    base = pixel_counts([], tiles)
    counts, targets = [], []
    for regime, names in models.items():
        pool = ((name, s, load(name, regime, s)) for name in names for s in seeds[regime])
        counted = pixel_counts(pool, tiles, baseline=False, predictor=predictor)
        found = sim_to_real_targets(pd.concat([counted, base], ignore_index=True), models=names, best=best[regime],
                                    bar_iou=bar_iou, n_boot=n_boot, seed=seed)
        counts.append(counted.assign(regime=regime))
        targets.append(found.assign(regime=regime))
    counts.append(base.assign(regime=BASELINE_REGIME))
    targets = pd.concat(targets, ignore_index=True)
    return (pd.concat(counts, ignore_index=True),
            targets[["regime", *[c for c in targets.columns if c != "regime"]]])


def regime_robustness(cfg: Mapping, load: Loader, models: Mapping[str, Sequence[str]], tiles: Tiles, *,
                      seed: int | None = None, attacks: Sequence[str] = ("pgd",),
                      attack_regimes: Sequence[str] = ("standard",),
                      ensemble_regimes: Sequence[str] | None = None,
                      progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Corruptions and the attack ensemble's robust IoU on `tiles` of the models of each regime
    (`models`: regime -> architectures, loaded by ``load(name, regime, seed)``, one regime at a
    time), and `attacks` with the noise baseline on the models of `attack_regimes` only
    (`robustness_tables`, `robust_tables`). The ensemble runs on the regimes of `ensemble_regimes`
    (every regime when None): it is the costly part, and a CPU profile may keep it to the benchmark's.

    Returns (corruption, adversarial, robust) tables with ``model`` and ``regime`` columns.
    """
    corruption, adversarial, robust = [], [], []
    for regime, names in models.items():
        pool = [(name, load(name, regime, seed)) for name in names]
        if not pool:
            continue
        if regime in attack_regimes:
            corrupted, attacked = robustness_tables(cfg, pool, tiles, attacks=attacks, progress=progress)
            adversarial.append(attacked.assign(regime=regime))
        else:
            corrupted = with_robustness(pd.concat([corruption_table(cfg, model, tiles).assign(model=name)
                                                   for name, model in pool], ignore_index=True))
        corruption.append(corrupted.assign(regime=regime))
        if ensemble_regimes is None or regime in ensemble_regimes:
            robust.append(robust_tables(cfg, pool, tiles, progress=progress).assign(regime=regime))
    if not corruption:
        raise ValueError("models: expected at least one model")
    adversarial = pd.concat(adversarial, ignore_index=True) if adversarial else pd.DataFrame()
    robust = pd.concat(robust, ignore_index=True) if robust else pd.DataFrame(columns=["model", "regime", "iou"])
    return pd.concat(corruption, ignore_index=True), adversarial, robust


def regime_defense(corruption: pd.DataFrame, robust: pd.DataFrame, *, exclude: Sequence[str] = (),
                   before: str = "standard", after: str = "randomized") -> pd.DataFrame:
    """One regime against another as a defense, per architecture trained under both: the mean
    corrupted IoU (over the corruptions but `exclude`, their severities and the tiles) and the mean
    robust IoU under the attack ensemble (over budgets and tiles) of `regime_robustness`'s tables.

    Returns a table indexed by ``score`` (``"corrupted_iou"``, ``"robust_iou"``) and ``model``, with
    columns `before`, `after` and ``change`` (`after` - `before`, `fmlib.simtoreal.protocol_change`);
    a score that one of the two regimes was not measured on (the ensemble kept to one regime) is left out.
    """
    tables = {"corrupted_iou": corruption[~corruption.corruption.isin(list(exclude))], "robust_iou": robust}
    parts = {score: protocol_change(table, value="iou", before=before, after=after, index=("model",),
                                    protocol="regime") for score, table in tables.items()
             if {before, after} <= set(table.get("regime", ()))}
    return pd.concat(parts, names=["score"])
