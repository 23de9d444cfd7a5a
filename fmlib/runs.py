"""The grid's training runs as tables: one row per run with its convergence evidence and clean score.

`training_runs` trains what is missing (`fmlib.grid.run_training`), then tabulates every run: steps
run, whether the plateau rule held (`fmlib.plateau`), the best validation IoU, the clean test IoU and,
given the attainable IoU of each model's output stride (`fmlib.resolution.against_attainable`), the
share of it reached. `fmlib.competence` turns that table into the gate of every ranking.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from tqdm.auto import tqdm

from . import grid


@dataclass
class TrainingRuns:
    """Every training run of a study configuration, as tables."""

    runs: pd.DataFrame        # one row per run
    history: pd.DataFrame     # one row per validation of each run
    test_scores: pd.DataFrame  # one row per run and clean test image


def training_runs(cfg, *, progress: bool = True) -> TrainingRuns:
    """Train (or load) every run of the grid of `cfg`, and tabulate them.

    ``runs`` has ``model``, ``structure``, ``regime``, ``seed``, ``width``, ``steps``, ``max_steps``,
    ``converged``, ``best_step``, ``best_val_iou``, ``iou`` and ``dice`` (clean test, SNR 8, mean over
    the test images), ``n_test`` and ``train_time_s``.
    """
    trained = grid.run_training(cfg, progress=progress)
    rows, histories, scores = [], [], []
    for job, result in tqdm(trained, desc="clean test scores", disable=not progress):
        per_image = grid.evaluation(cfg, "clean", job.model, job.structure, job.regime, seed=job.seed)
        tags = dict(model=job.model, structure=job.structure, regime=job.regime, seed=job.seed)
        scores.append(per_image)
        histories.append(result.history.assign(**tags))
        rows.append({**tags, "width": job.width, "steps": result.steps, "max_steps": job.config.max_steps,
                     "converged": bool(result.converged), "best_step": result.best_step,
                     "best_val_iou": result.best_val_iou, "iou": float(per_image.iou.mean()),
                     "dice": float(per_image.dice.mean()), "n_test": len(per_image),
                     "train_time_s": result.train_time_s})
    return TrainingRuns(pd.DataFrame(rows), pd.concat(histories, ignore_index=True),
                        pd.concat(scores, ignore_index=True))


def with_attainable(runs: pd.DataFrame, limits: pd.DataFrame, strides: pd.Series) -> pd.DataFrame:
    """`runs` with ``output_stride``, ``attainable_iou`` and ``share_of_attainable``.

    ``attainable_iou`` is the best mean IoU that logit maps at the model's output stride reach when
    fitted to the true test masks, with either objective (`fmlib.resolution.attainable_limits`: its
    columns other than ``structure`` and ``output_stride``): what the architecture's output could
    draw at best, whatever it learned.

    Parameters
    ----------
    runs : DataFrame
        From `training_runs` (``model``, ``structure``, ``iou``, ...).
    limits : DataFrame
        `fmlib.resolution.attainable_limits`, one row per structure and output stride.
    strides : Series
        The output stride of each model, indexed by model name.
    """
    missing = sorted(set(runs.model) - set(strides.index))
    if missing:
        raise ValueError(f"strides: no output stride for models {missing}")
    objectives = [c for c in limits.columns if c not in ("structure", "output_stride")]
    best = limits[["structure", "output_stride"]].assign(attainable_iou=limits[objectives].max(axis=1))
    out = runs.assign(output_stride=runs.model.map(strides).astype(int))
    out = out.merge(best, on=["structure", "output_stride"], how="left")
    return out.assign(share_of_attainable=out.iou / out.attainable_iou)


def model_loader(cfg, structure: str):
    """``load(name, regime, seed=None)``: the model of `name` that the grid of `cfg` trained on
    `structure` in `regime` with training seed `seed` (default the first), in eval mode; the loader
    that `fmlib.simtoreal`'s regime functions take (one model in memory at a time)."""

    def load(name: str, regime: str, seed: int | None = None):
        return grid.trained_model(cfg, name, structure, regime, seed=seed).model

    return load
