"""The competence gate: only models that have learned their task are ranked.

A robustness score means nothing for a model that never learned to segment clean images: an
untrained model is bad everywhere, and its "robustness" only repeats that. A training *run* (model x
structure x regime x seed) is competent when its training converged (the plateau rule of
`fmlib.plateau` held before the step cap) and its clean IoU (SNR 8) is at least a floor: in the study,
its mean IoU on the gate's own clean scenes (`fmlib.runs.gate_set`), more of them than the robustness
evaluations use, so that the mean judged has a small standard error (under 0.01 at the standard
profile) rather than the 0.03-0.04 of a few test images. The verdict is on that mean: a run whose
interval straddles the floor is judged by its estimate. A model x structure x regime is competent when
every one of its runs is.

A model that is not competent stays in the training tables with the reason, and `only_competent`
keeps it out of every ranking, finding and recommendation, as the strength checks keep out models
whose attacks masked their gradients. Where the model's output stride caps its IoU under the floor
even when fitted to the true masks (`fmlib.resolution.attainable_iou`), the reason says so: that is
a finding about the architecture, not a failed training.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ._checks import check_real

KEYS = ("model", "structure", "regime")


def require_columns(table: pd.DataFrame, name: str, columns: Sequence[str]) -> None:
    """ValueError naming `name` unless `table` is a DataFrame with every one of `columns`."""
    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"{name}: expected a pandas DataFrame, got {type(table).__name__}")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{name}: missing columns {missing}; expected {list(columns)}")


def run_verdicts(runs: pd.DataFrame, floor: float, *, score: str) -> pd.DataFrame:
    """The gate's verdict on each training run.

    Parameters
    ----------
    runs : DataFrame
        One row per run with ``model``, ``structure``, ``regime``, ``seed``, the clean IoU `score`,
        ``converged`` (bool) and optionally ``attainable_iou`` (what the model's output stride allows
        on the structure, `fmlib.resolution.against_attainable`).
    floor : float
        The clean IoU a competent run reaches, in [0, 1].
    score : str
        The column of `runs` judged against the floor, named by every caller so that no table is
        judged on the wrong images: ``"gate_iou"`` for the study's runs (`fmlib.runs.GATE_SCORE`:
        the mean IoU on the gate's clean scenes), ``"iou"`` for a table with one clean IoU.

    Returns
    -------
    DataFrame
        `runs` with ``competent`` (bool), ``stride_limited`` (bool: the attainable IoU itself is under
        the floor) and ``reason`` ("" for a competent run).

    Examples
    --------
    >>> runs = pd.DataFrame({"model": ["a", "b", "c"], "structure": "er", "regime": "standard", "seed": 0,
    ...                      "iou": [0.9, 0.9, 0.5], "converged": [True, False, True]})
    >>> run_verdicts(runs, 0.7, score="iou").reason.tolist()
    ['', 'not converged (step cap reached)', 'clean IoU 0.500 under the floor 0.70']
    """
    require_columns(runs, "runs", [*KEYS, "seed", score, "converged"])
    floor = check_real("floor", floor, low=0.0, high=1.0)
    out = runs.copy()
    attainable = out["attainable_iou"] if "attainable_iou" in out else pd.Series(float("nan"), index=out.index)
    out["stride_limited"] = attainable < floor
    reasons = []
    for converged, iou, limit in zip(out["converged"].astype(bool), out[score], attainable):
        reason = [] if converged else ["not converged (step cap reached)"]
        if not iou >= floor:
            # three digits: a run 0.003 under the floor must not read "0.70 under the floor 0.70"
            reason.append(f"clean IoU {iou:.3f} under the floor {floor:.2f}")
            if limit < floor:
                reason.append(f"its output stride caps it at {limit:.2f}")
        reasons.append("; ".join(reason))
    out["reason"] = reasons
    out["competent"] = out["reason"] == ""
    return out


def competence_table(runs: pd.DataFrame, floor: float, *, score: str) -> pd.DataFrame:
    """One verdict per model x structure x regime: competent when every run (seed) is
    (`run_verdicts`, judging the column `score`).

    Returns a table with ``model``, ``structure``, ``regime``, ``n_runs``, the column `score` (its mean
    over runs: the clean IoU judged, under its own name), ``converged`` (every run),
    ``stride_limited``, ``competent`` and ``reason`` (the reasons of the failing runs, with their seeds).

    Examples
    --------
    >>> runs = pd.DataFrame({"model": "a", "structure": "er", "regime": "standard", "seed": [0, 1],
    ...                      "iou": [0.9, 0.6], "converged": True})
    >>> competence_table(runs, 0.7, score="iou")[["competent", "reason"]].values.tolist()
    [[False, 'seed 1: clean IoU 0.600 under the floor 0.70']]
    """
    verdicts = run_verdicts(runs, floor, score=score)
    rows = []
    for key, group in verdicts.groupby(list(KEYS), sort=False):
        failing = group[~group.competent]
        reason = "; ".join(f"seed {int(s)}: {r}" if len(group) > 1 else r for s, r in zip(failing.seed, failing.reason))
        rows.append({**dict(zip(KEYS, key)), "n_runs": len(group), score: float(group[score].mean()),
                     "converged": bool(group.converged.all()), "stride_limited": bool(group.stride_limited.any()),
                     "competent": failing.empty, "reason": reason})
    return pd.DataFrame(rows)


def only_competent(table: pd.DataFrame, gate: pd.DataFrame, *, on: Sequence[str] | None = None) -> pd.DataFrame:
    """The rows of `table` whose model (x structure x regime, where `table` has those columns) is
    competent in `gate` (`competence_table`). Rows of a model the gate does not know are dropped too:
    an unjudged model is not ranked.

    Examples
    --------
    >>> gate = pd.DataFrame({"model": ["a", "b"], "structure": "er", "regime": "standard",
    ...                      "competent": [True, False]})
    >>> table = pd.DataFrame({"model": ["a", "b", "c"], "structure": "er", "score": [1, 2, 3]})
    >>> only_competent(table, gate).model.tolist()
    ['a']
    """
    require_columns(gate, "gate", [*KEYS, "competent"])
    on = [k for k in KEYS if k in table.columns] if on is None else list(on)
    if "model" not in on:
        raise ValueError(f"table: expected a 'model' column to gate, got columns {list(table.columns)}")
    require_columns(table, "table", on)
    keep = gate[gate.competent.astype(bool)][on].drop_duplicates()
    if len(on) < len(KEYS):  # a model is kept only where it is competent on every row of the gate it matches
        bad = gate[~gate.competent.astype(bool)][on].drop_duplicates()
        keep = keep.merge(bad, on=on, how="left", indicator=True).query("_merge == 'left_only'")[on]
    return table.merge(keep, on=on, how="inner")[table.columns].reset_index(drop=True)


def ranked_models(gate: pd.DataFrame, regime: str = "standard", structures: Sequence[str] | None = None) -> list[str]:
    """The models of `regime` that a ranking over `structures` (default: every structure of the gate)
    may hold: those competent on every one of them. A model averaged over fewer structures than the
    others would not be comparable, so one failure keeps it out of the whole ranking.

    Examples
    --------
    >>> gate = pd.DataFrame({"model": ["a", "a", "b", "b"], "structure": ["nuclei", "er"] * 2,
    ...                      "regime": "standard", "competent": [True, True, True, False]})
    >>> ranked_models(gate), ranked_models(gate, structures=["nuclei"])
    (['a'], ['a', 'b'])
    """
    require_columns(gate, "gate", [*KEYS, "competent"])
    part = gate[gate.regime == regime]
    if structures is not None:
        part = part[part.structure.isin(list(structures))]
    verdict = part.groupby("model", sort=False).competent.all()
    return [m for m, ok in verdict.items() if ok]


def for_ranking(table: pd.DataFrame, gate: pd.DataFrame, regime: str = "standard") -> pd.DataFrame:
    """The rows of `regime` in `table` whose model `ranked_models` admits over the structures of
    `table`: the input of a ranking across structures."""
    require_columns(table, "table", ["model", "structure", "regime"])
    part = table[table.regime == regime]
    keep = ranked_models(gate, regime, sorted(part.structure.unique()))
    return part[part.model.isin(keep)].reset_index(drop=True)


def excluded(gate: pd.DataFrame) -> pd.DataFrame:
    """The models the gate excludes, with their reasons: the columns of `gate` (`competence_table`:
    ``model``, ``structure``, ``regime``, the clean IoU judged, ``stride_limited``, ``reason``) but
    ``n_runs``, ``converged`` and ``competent``."""
    require_columns(gate, "gate", [*KEYS, "competent", "reason"])
    columns = [c for c in gate.columns if c not in ("n_runs", "converged", "competent")]
    return gate[~gate.competent.astype(bool)][columns].reset_index(drop=True)


def excluded_text(gate: pd.DataFrame, *, reasons: bool = True) -> str:
    """The models the gate excludes, in words for the book: ``"<model> on <structure> (<regime>):
    <reason>"`` (without the reason where `reasons` is False), separated by semicolons; ``"none"``
    when every model is competent.

    Examples
    --------
    >>> gate = pd.DataFrame({"model": ["a", "b"], "structure": "er", "regime": "standard",
    ...                      "competent": [True, False], "reason": ["", "not converged (step cap reached)"]})
    >>> excluded_text(gate)
    'b on er (standard): not converged (step cap reached)'
    """
    rows = excluded(gate).itertuples()
    return "; ".join(f"{r.model} on {r.structure} ({r.regime})" + (f": {r.reason}" if reasons else "")
                     for r in rows) or "none"
