"""The grid's training runs as tables: one row per run with its convergence evidence and clean score.

`training_runs` trains what is missing (`fmlib.grid.run_training`), then tabulates every run: steps
run, whether the plateau rule held (`fmlib.plateau`), the best validation IoU, the clean test IoU and,
given the attainable IoU of each model's output stride (`fmlib.resolution.against_attainable`), the
share of it reached. `fmlib.competence` turns that table into the gate of every ranking.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
from tqdm.auto import tqdm

from . import grid
from .checkpoints import train
from .evaluation import clean_scores
from .paths import find_root

#: Training time (s) assumed per missing model where the profile has no committed training table.
DEFAULT_TRAIN_TIME_S = 120.0


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


def missing_training(cfg, structure: str | None = None) -> tuple[list[grid.TrainingJob], float]:
    """The training jobs of `cfg` (on `structure` only, if given) that are not cached yet, and the
    time they should take in seconds: each job's training time in the profile's committed training
    table (``results/<profile>/03_training.csv``, measured on the 2-core reference machine), else
    `DEFAULT_TRAIN_TIME_S`."""
    jobs = [j for j in grid.training_jobs(cfg) if structure is None or j.structure == structure]
    missing = [j for j in jobs if not grid.done_file(j).exists()]
    times = {}
    try:
        table = pd.read_csv(find_root() / "results" / cfg.profile / "03_training.csv")
        times = table.groupby(["model", "structure", "regime"]).train_time_s.median().to_dict()
    except (FileNotFoundError, AttributeError, KeyError):
        pass
    seconds = sum(times.get((j.model, j.structure, j.regime), DEFAULT_TRAIN_TIME_S) for j in missing)
    return missing, float(seconds)


def structure_runs(cfg, structure: str, *, progress: bool = True,
                   announce: Callable[[str], None] | None = None) -> pd.DataFrame:
    """The `training_runs` rows of `structure` alone: trains what is missing first, after telling
    `announce` how many models that is and how long they should take (`missing_training`)."""
    missing, seconds = missing_training(cfg, structure)
    if missing and announce is not None:
        announce(f"Training {len(missing)} model(s) of the {cfg.profile} study on {structure} first: about "
                 f"{seconds / 60:.0f} min on a 2-core machine.")
    rows = []
    jobs = [j for j in grid.training_jobs(cfg) if j.structure == structure]
    for job in tqdm(jobs, desc=f"study models on {structure}", unit="model", disable=not progress):
        result = grid.train_job(job, progress=progress)
        per_image = grid.evaluation(cfg, "clean", job.model, job.structure, job.regime, seed=job.seed)
        rows.append({"model": job.model, "structure": job.structure, "regime": job.regime, "seed": job.seed,
                     "converged": bool(result.converged), "iou": float(per_image.iou.mean())})
    return pd.DataFrame(rows)


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


#: The continuations of `continuation`: what each changes in a run's recipe.
CONTINUATIONS = {"patience x2": "twice the validations without gain before each plateau (a longer run)",
                 "width x2": "twice the channels of every layer, same recipe"}


def continuation(cfg, verdicts: pd.DataFrame, *, progress: bool = True) -> pd.DataFrame:
    """Would more training, or a wider model, lift a run over the competence floor? Like a continued
    attack, each run that the gate excluded although it converged and its output stride allows the
    floor (`fmlib.competence.run_verdicts`: not ``stride_limited``) is trained again, from scratch with
    the same data and seed, twice: with twice the plateau patience, and at twice the width
    (`CONTINUATIONS`).

    Returns one row per excluded run and continuation: ``model``, ``structure``, ``regime``, ``seed``,
    ``continuation``, ``iou`` (the run's clean test IoU), ``continued_iou``, ``steps``, ``converged``,
    ``reaches_floor``. Empty when no run qualifies.
    """
    columns = ["model", "structure", "regime", "seed", "continuation", "iou", "continued_iou", "steps", "converged",
               "reaches_floor"]
    jobs = {(j.model, j.structure, j.regime, j.seed): j for j in grid.training_jobs(cfg)}
    todo = verdicts[~verdicts.competent & verdicts.converged.astype(bool) & ~verdicts.stride_limited]
    rows = []
    for run in tqdm(list(todo.itertuples()), desc="continuations", unit="run", disable=not progress):
        job = jobs[(run.model, run.structure, run.regime, run.seed)]
        variants = {"patience x2": (job.config.replace(patience=2 * job.config.patience), job.width),
                    "width x2": (job.config, 2 * job.width)}
        test = grid.test_set(cfg, run.structure)
        for name, (config, width) in variants.items():
            result = train(job.model, job.data, config, width=width, progress=progress)
            iou = float(clean_scores(result.model, test).iou.mean())
            rows.append({"model": run.model, "structure": run.structure, "regime": run.regime, "seed": run.seed,
                         "continuation": name, "iou": run.iou, "continued_iou": iou, "steps": result.steps,
                         "converged": bool(result.converged), "reaches_floor": iou >= cfg.competence_floor})
    return pd.DataFrame(rows, columns=columns)

