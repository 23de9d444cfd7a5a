"""The paper's real-image claim, tested as it was made: do models rank alike by *robustness* on
synthetic and on real nuclei images?

The paper claims that robustness benchmarks on real microscopy images agree with its synthetic
results. Here each model's robustness is measured on both sides under the same conditions (the
corruptions and severities, or the attack budgets, that both sides have), and the two rankings are
correlated across models (`rank_agreement`: Spearman's correlation with a bootstrap CI, a
permutation p-value and a verdict):

- corruption robustness: mean corrupted IoU (absolute, the headline), the paper's ratio of
  corrupted to clean IoU beside it;
- adversarial robustness: mean IoU under an attack (the chapter passes the attack ensemble's robust
  IoU, `attack="ensemble"`, the score the study ranks on), the ratio to clean IoU beside it.

Whether models rank alike by clean IoU (`ranking_table`) is another question, the clean-IoU
agreement, reported apart under that name. The synthetic side is the study's first training seed:
the models the real side scores.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import pandas as pd

from .._checks import check_choice, check_int
from ..metrics import robustness_ratio
from ..stats import holm_verdicts, smallest_attainable_p
from .verdicts import RANK_MEANINGS, rank_agreement

#: The agreements of the chapter, in its order: name -> what the models are ranked by.
AGREEMENTS = {
    "clean": "clean IoU (the clean-IoU agreement, not the paper's claim)",
    "corruption_absolute": "mean corrupted IoU",
    "corruption_ratio": "corrupted / clean IoU (the paper's ratio)",
    "adversarial_absolute": "mean IoU under the attack",
    "adversarial_ratio": "attacked / clean IoU (the paper's ratio)",
}
#: The agreement that answers the paper's claim first: corruption robustness on absolute scores.
HEADLINE = "corruption_absolute"

#: The columns that name one condition of each kind of robustness table.
CONDITIONS = {"corruption": ("corruption", "severity"), "adversarial": ("eps_255",)}
_SCORES = ("image", "iou", "clean_iou")


def _require(name: str, table: pd.DataFrame, columns: Iterable[str]) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{name}: missing column(s) {missing}; has {list(table.columns)}")


def _sides(synthetic: pd.DataFrame, real: pd.DataFrame, kind: str, seed: int, exclude: Sequence[str], attack: str,
           structure: str, regime: str) -> dict[str, pd.DataFrame]:
    """The rows of each side that enter the comparison, before the conditions are intersected."""
    check_choice("kind", kind, tuple(CONDITIONS))
    seed = check_int("seed", seed)
    keys = [*(["attack"] if kind == "adversarial" else []), *CONDITIONS[kind], *_SCORES]
    _require("synthetic", synthetic, ["model", "structure", "regime", "seed", *keys])
    _require("real", real, ["model", *keys])
    picked = synthetic[(synthetic.structure == structure) & (synthetic.regime == regime) & (synthetic.seed == seed)]
    if picked.empty:
        raise ValueError(f"synthetic: no rows of structure {structure!r}, regime {regime!r} and seed {seed} "
                         f"(seeds present: {sorted(synthetic.seed.unique().tolist())})")
    sides = {"synthetic": picked, "real": real}
    if kind == "adversarial":
        sides = {name: t[t.attack == attack] for name, t in sides.items()}
    else:
        sides = {name: t[~t.corruption.isin(list(exclude))] for name, t in sides.items()}
    for name, t in sides.items():
        if t.empty:
            what = f"attack {attack!r}" if kind == "adversarial" else f"a corruption outside {list(exclude)}"
            raise ValueError(f"{name}: no rows with {what}")
    models = sorted(set(sides["synthetic"].model) & set(sides["real"].model))
    if not models:
        raise ValueError(f"synthetic, real: no model on both sides (synthetic {sorted(set(sides['synthetic'].model))}, "
                         f"real {sorted(set(sides['real'].model))})")
    return {name: t[t.model.isin(models)] for name, t in sides.items()}


def _complete(table: pd.DataFrame, conditions: list[str]) -> pd.DataFrame:
    """The conditions of `table` that every one of its models has."""
    counts = table.groupby(conditions, as_index=False).model.nunique()
    return counts.loc[counts.model == table.model.nunique(), conditions]


def shared_conditions(synthetic: pd.DataFrame, real: pd.DataFrame, *, kind: str, seed: int, exclude: Sequence[str] = (),
                      attack: str = "pgd", structure: str = "nuclei", regime: str = "standard") -> pd.DataFrame:
    """The conditions both sides are compared under: those that every model on both sides has.

    A condition is a corruption and severity (`kind` ``"corruption"``, without `exclude`) or an
    attack budget ``eps_255`` of `attack` (`kind` ``"adversarial"``). The arguments are those of
    `robustness_pairs`.

    Returns
    -------
    pandas.DataFrame
        One row per shared condition, columns ``CONDITIONS[kind]``, sorted.

    Raises
    ------
    ValueError
        As `robustness_pairs`, and if the two sides share no condition.

    Examples
    --------
    >>> syn = pd.DataFrame({"model": "a", "structure": "nuclei", "regime": "standard", "seed": 0, "image": 0,
    ...                     "attack": "pgd", "eps_255": [1.0, 2.0, 4.0], "iou": 0.5, "clean_iou": 0.9})
    >>> real = syn.drop(columns=["structure", "regime", "seed"]).iloc[1:]
    >>> shared_conditions(syn, real, kind="adversarial", seed=0).eps_255.tolist()
    [2.0, 4.0]
    """
    sides = _sides(synthetic, real, kind, seed, exclude, attack, structure, regime)
    conditions = list(CONDITIONS[kind])
    shared = _complete(sides["synthetic"], conditions).merge(_complete(sides["real"], conditions), on=conditions)
    if shared.empty:
        raise ValueError(f"synthetic, real: no {' and '.join(conditions)} that every model has on both sides")
    return shared.sort_values(conditions).reset_index(drop=True)


def robustness_pairs(synthetic: pd.DataFrame, real: pd.DataFrame, *, kind: str, seed: int,
                     exclude: Sequence[str] = (), attack: str = "pgd", structure: str = "nuclei",
                     regime: str = "standard") -> dict[str, pd.DataFrame]:
    """Each model's robustness on synthetic and on real images under the same conditions, on
    absolute scores and as the paper's ratio: the inputs of `rank_agreement`.

    Parameters
    ----------
    synthetic : pandas.DataFrame
        The study's per-image table with ``model``, ``structure``, ``regime``, ``seed``, ``image``,
        ``iou`` and ``clean_iou``: for `kind` ``"corruption"`` the corruption chapter's
        ``04_corruption.csv.gz`` (with ``corruption`` and ``severity``), for ``"adversarial"`` the
        attack chapter's ``05_adversarial.csv`` (with ``attack`` and ``eps_255``).
    real : pandas.DataFrame
        The same kind of table on real tiles, with ``model`` (`robustness_tables`).
    kind : {"corruption", "adversarial"}
    seed : int
        The training seed of the synthetic rows compared (the study seed: the models the real side scores).
    exclude : sequence of str
        Corruptions left out on both sides: those the models' z-score cancels
        (`fmlib.corruptions.cancelled_corruptions`). Only for `kind` ``"corruption"``.
    attack : str
        The attack compared on both sides (`kind` ``"adversarial"``; the noise baseline's rows and
        other attacks are left out).
    structure, regime : str
        The synthetic rows compared.

    Returns
    -------
    dict of str to pandas.DataFrame
        ``"<kind>_absolute"`` (mean IoU over images and the `shared_conditions`) and
        ``"<kind>_ratio"`` (the ratio of the mean IoU to the mean clean IoU, `fmlib.metrics.ratio_of_means`),
        each with ``synthetic`` and ``real`` columns indexed by model, over the models on both sides.

    Raises
    ------
    ValueError
        If `kind` is unknown, a table lacks a column, no synthetic row has `structure`, `regime` and
        `seed`, or the sides share no model or no condition.

    Examples
    --------
    >>> syn = pd.DataFrame({"model": ["a", "b"], "structure": "nuclei", "regime": "standard", "seed": 0, "image": 0,
    ...                     "attack": "pgd", "eps_255": 8, "iou": [0.4, 0.6], "clean_iou": [0.8, 0.9]})
    >>> real = syn.drop(columns=["structure", "regime", "seed"]).assign(iou=[0.1, 0.3], clean_iou=[0.5, 0.6])
    >>> pairs = robustness_pairs(syn, real, kind="adversarial", seed=0)
    >>> pairs["adversarial_absolute"].round(2).to_dict("index")
    {'a': {'synthetic': 0.4, 'real': 0.1}, 'b': {'synthetic': 0.6, 'real': 0.3}}
    >>> pairs["adversarial_ratio"].real.round(2).tolist()
    [0.2, 0.5]
    """
    shared = shared_conditions(synthetic, real, kind=kind, seed=seed, exclude=exclude, attack=attack,
                               structure=structure, regime=regime)
    sides = _sides(synthetic, real, kind, seed, exclude, attack, structure, regime)
    conditions = list(CONDITIONS[kind])
    absolute, ratio = {}, {}
    for name, table in sides.items():
        table = table.merge(shared, on=conditions)
        means = table.groupby("model").agg(iou=("iou", "mean"), clean=("clean_iou", "mean"))
        absolute[name] = means.iou
        ratio[name] = robustness_ratio(means.iou, means.clean)  # the ratio of the means
    return {f"{kind}_absolute": pd.DataFrame(absolute), f"{kind}_ratio": pd.DataFrame(ratio)}


def agreement_table(pairs: Mapping[str, pd.DataFrame], *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Every agreement of `pairs` (name -> ``synthetic`` and ``real`` by model, a `ranking_table` or
    a `robustness_pairs` value), one row each in the order given.

    Returns
    -------
    pandas.DataFrame
        ``agreement`` (the name), ``ranked_by`` (`AGREEMENTS`, or the name), ``r`` (Spearman),
        ``low`` and ``high`` (95 % bootstrap CI over models), ``p`` (two-sided permutation
        p-value), ``p_holm`` (Holm-corrected over the table), ``n`` (models), ``verdict`` and
        ``meaning`` (`RANK_MEANINGS`): *supported* where the CI lies above zero and ``p_holm`` is at
        most 0.05, *contradicted* the same below zero, *not testable* where no outcome with that
        many models could reach the level after the correction, *inconclusive* otherwise.

    Raises
    ------
    ValueError
        If `pairs` is empty or a table lacks the ``synthetic`` or ``real`` column.

    Examples
    --------
    >>> paired = pd.DataFrame({"synthetic": [0.2, 0.4, 0.6, 0.8, 1.0], "real": [0.1, 0.2, 0.3, 0.5, 0.6]})
    >>> agreement_table({"corruption_absolute": paired}, n_boot=100)[["agreement", "r", "n", "verdict"]]
                 agreement    r  n    verdict
    0  corruption_absolute  1.0  5  supported
    >>> agreement_table({"corruption_absolute": paired.head(4)}, n_boot=100).verdict.iloc[0]  # p >= 1/12
    'not testable'
    """
    check_int("n_boot", n_boot, low=1)
    if not pairs:
        raise ValueError("pairs: expected at least one agreement")
    rows = []
    for name, paired in pairs.items():
        _require(f"pairs[{name!r}]", paired, ["synthetic", "real"])
        result = rank_agreement(paired, n_boot=n_boot, seed=seed)
        rows.append({"agreement": name, "ranked_by": AGREEMENTS.get(name, name), "r": result.r, "low": result.low,
                     "high": result.high, "p": result.p, "n": result.n})
    table = pd.DataFrame(rows)
    # The agreements of one table are one family: Holm-corrected together, and "not testable" where no
    # pairing of that many models could reach the level after the correction (four models: p >= 1/12).
    floor = [smallest_attainable_p("correlation", n) if n >= 3 else math.nan for n in table.n]
    table["p_holm"], table["verdict"] = holm_verdicts(table.p, floor, table.low, table.high)
    table["meaning"] = table.verdict.map(RANK_MEANINGS)
    return table[["agreement", "ranked_by", "r", "low", "high", "p", "p_holm", "n", "verdict", "meaning"]]


def long_pairs(pairs: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """`pairs` (name -> ``synthetic`` and ``real`` by model) as one tidy table: ``agreement``,
    ``model``, ``synthetic``, ``real``."""
    if not pairs:
        raise ValueError("pairs: expected at least one agreement")
    tables = [paired[["synthetic", "real"]].rename_axis("model").reset_index().assign(agreement=name)
              for name, paired in pairs.items()]
    return pd.concat(tables, ignore_index=True)[["agreement", "model", "synthetic", "real"]]
