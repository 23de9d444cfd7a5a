"""The optional robust IoU of `advise` (``fmrobust advise --attacks``): the study's attack ensemble
(`fmlib.evaluation.robust_table`) at a small budget (`ATTACK_EPS_255`, 2 grey levels of 255 by
default), on the matched acquisition. At the study's own budgets (8 and 32/255) every clean-trained
model of the standard book is fooled almost entirely, and a ranking by a score near zero says nothing.

The ensemble costs minutes per model on a CPU at the standard profile, so it runs on the leading
candidates only (`attacked_candidates`: the leader, those tied with it, then the next ranks, at most
`ATTACKED_TOP`), each with the training seed that the recommendation would use (the one with the
highest IoU over the conditions). Its CI resamples images only, one seed per candidate: the first
``n_attack_images`` matched images of the profile (3 at ``standard``).

The robust IoU sits beside the ranking's score and does not enter it. An attack is a worst case,
the conditions are what a microscope meets: averaging the two would mix two questions.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
from tqdm.auto import tqdm

from .._checks import check_int, check_real
from ..competence import require_columns
from ..evaluation import robust_table
from ..profiles import Config
from ..stats import hierarchical_ci
from ..synthesis import Dataset

#: At most this many candidates are attacked.
ATTACKED_TOP = 3
#: The default budget, in grey levels of 255 on the scaled counts the models see.
ATTACK_EPS_255 = 2.0


def best_seeds(table: pd.DataFrame) -> dict[tuple[str, str], int]:
    """Per (model, regime) of `table` (`fmlib.advice.ranking.scores`), the training seed with the
    highest IoU averaged over the conditions and images: the one the recommendation uses."""
    means = table.groupby(["model", "regime", "seed"]).iou.mean()
    return {key: int(part.idxmax()[2]) for key, part in means.groupby(level=["model", "regime"])}


def attacked_candidates(ranked: pd.DataFrame, limit: int = ATTACKED_TOP) -> list[tuple[str, str]]:
    """The (model, regime) pairs of `ranked` (`fmlib.advice.ranking.ranking`) that are attacked: the
    leader, then those tied with it, then the next ranks, at most `limit` in all."""
    limit = check_int("limit", limit, low=1)
    require_columns(ranked, "ranked", ["model", "regime", "tied"])
    order = pd.concat([ranked.iloc[:1], ranked[ranked.tied], ranked.iloc[1:]]).drop_duplicates(["model", "regime"])
    return list(order[["model", "regime"]].head(limit).itertuples(index=False, name=None))


def robust_scores(cfg: Config, chosen: list[tuple[str, str, int]], load: Callable[[str, str, int], object],
                  dataset: Dataset, *, eps_255: float = ATTACK_EPS_255, progress: bool = True) -> pd.DataFrame:
    """Per image (the first ``cfg.n_attack_images`` of `dataset`) and attacked (model, regime, seed),
    the worst case over the study's attack ensemble (its settings in `cfg`) at budget `eps_255`:
    ``model``, ``regime``, ``seed``, ``image``, ``eps_255``, ``clean_iou``, ``robust_iou``, ``converged``."""
    eps_255 = check_real("eps_255", eps_255, low=0.0, high=255.0, low_inclusive=False)
    small = Config({**cfg, "ensemble_eps_255": [eps_255]})
    rows = []
    for model_name, regime, seed in tqdm(chosen, desc=f"attacks at {eps_255}/255 on the leading models",
                                         unit="model", disable=not progress):
        table = robust_table(small, load(model_name, regime, seed), dataset)
        rows.append(table[["image", "eps_255", "clean_iou", "iou", "converged"]].rename(columns={"iou": "robust_iou"})
                    .assign(model=model_name, regime=regime, seed=seed))
    columns = ["model", "regime", "seed", "image", "eps_255", "clean_iou", "robust_iou", "converged"]
    return pd.concat(rows, ignore_index=True)[columns]


def robust_summary(table: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per attacked candidate of `table` (`robust_scores`): ``robust_iou`` with its 95 % CI over
    images (``robust_low``, ``robust_high``), the budget, and ``converged`` (every attack run flattened)."""
    require_columns(table, "table", ["model", "regime", "seed", "image", "eps_255", "robust_iou", "converged"])
    rows = []
    for (model_name, regime), group in table.groupby(["model", "regime"], sort=False):
        est, low, high = hierarchical_ci(group, "robust_iou", n_boot=n_boot, seed=seed)  # one seed: images
        rows.append({"model": model_name, "regime": regime, "seed": int(group.seed.iloc[0]),
                     "eps_255": group.eps_255.iloc[0], "robust_iou": est, "robust_low": low, "robust_high": high,
                     "converged": bool(group.converged.all())})
    return pd.DataFrame(rows)
