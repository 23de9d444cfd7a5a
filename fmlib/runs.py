"""The grid's training runs as tables: one row per run with its convergence evidence and clean score.

`training_runs` trains what is missing (`fmlib.grid.run_training`), then tabulates every run: steps
run, whether the plateau rule held (`fmlib.plateau`), the best validation IoU, the clean test IoU, the
clean IoU on the gate's own scenes (`gate_set`) with its interval and, given the attainable IoU of
each model's output stride (`fmlib.resolution.against_attainable`), the share of it reached.
`fmlib.competence` turns that table into the gate of every ranking.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from . import grid
from .cache import content_key, write_atomic
from .checkpoints import train, training_key
from .evaluation import clean_scores
from .paths import cache_dir, find_root
from .stats import hierarchical_ci
from .synthesis import Dataset, make_dataset

#: Training time (s) assumed per missing model where the profile has no committed training table.
DEFAULT_TRAIN_TIME_S = 120.0
#: Seed offset of the gate's scenes from the study seed: apart from the training pool (the seed
#: itself), the validation images (`fmlib.checkpoints.VALIDATION_SEED_OFFSET`), the test images
#: (`fmlib.grid.TEST_SEED_OFFSET`) and seed + 300 000, the scenes on which #38's recipe search was
#: checked outside the study (methods page).
GATE_SEED_OFFSET = 400_000
#: The column of `training_runs` that the competence gate judges (`fmlib.competence.run_verdicts`).
GATE_SCORE = "gate_iou"


def gate_set(cfg, structure: str) -> Dataset:
    """The clean scenes (SNR 8) of `structure` on which the competence gate scores every run:
    ``cfg.n_gate`` of them, that no model was trained, validated, tested or tuned on.

    Why not the test images of the robustness tables (``cfg.n_test``)? Those pair every model on the
    same few images, to compare models. The gate decides whether one run's mean clean IoU reaches a
    floor, and on the standard profile's 8 test images of 64 px that mean has a standard error of up
    to 0.04, on the 128 scenes of the gate under 0.01 (notebook 03). The verdict is still on the
    estimate: a run whose interval straddles the floor is judged by its mean.

    Examples
    --------
    >>> from fmlib.profiles import resolve
    >>> gate_set(resolve("smoke", n_gate=2), "nuclei").images.shape
    (2, 64, 64)
    """
    return make_dataset(structure, cfg.n_gate, cfg.image_size, snr=8.0, seed=cfg.seed + GATE_SEED_OFFSET)


def gate_columns(cfg, per_image: pd.DataFrame) -> dict:
    """The gate's columns of a run from its per-scene scores (`gate_scores`): ``gate_iou`` (mean IoU),
    ``gate_iou_low`` and ``gate_iou_high`` (95 % bootstrap interval over the scenes, ``cfg.n_boot``
    resamples) and ``n_gate``."""
    estimate, low, high = hierarchical_ci(per_image.assign(seed=0), "iou", n_boot=int(cfg.n_boot), seed=cfg.seed)
    return {"gate_iou": estimate, "gate_iou_low": low, "gate_iou_high": high, "n_gate": len(per_image)}


def gate_scores(cfg, model, dataset: Dataset) -> tuple[pd.DataFrame, dict]:
    """The per-scene clean scores of `model` on `dataset` (`gate_set`) and the gate's columns of its
    run (`gate_columns`); nothing cached (a grid run's: `run_gate_scores`)."""
    per_image = clean_scores(model, dataset, mixed_precision=bool(cfg.get("mixed_precision", False)))
    return per_image, gate_columns(cfg, per_image)


def gate_path(cfg, job: grid.TrainingJob, cache: str | Path | None = None) -> Path:
    """Where the per-scene gate scores of the grid run `job` are cached:
    ``<cache>/gate/<model>-<structure>-<regime>-s<seed>-<key>.csv``, keyed by the run's training key,
    the gate's parameters and the code that scores them, as the grid's evaluations are."""
    payload = {"training": training_key(job.model, job.width, job.data, job.config),
               "gate": {"n_gate": cfg.n_gate, "image_size": cfg.image_size, "seed": cfg.seed,
                        "mixed_precision": bool(cfg.get("mixed_precision", False))}}
    name = f"{job.model}-{job.structure}-{job.regime}-s{job.seed}-{content_key(payload, ['runs.py'])}.csv"
    return Path(cache if cache is not None else cache_dir()) / "gate" / name


def run_gate_scores(cfg, job: grid.TrainingJob, model, scenes: Callable[[str], Dataset] | None = None, *,
                    cache: str | Path | None = None) -> tuple[pd.DataFrame, dict]:
    """`gate_scores` of the grid run `job` (its trained `model`), read from the cache or computed on
    ``scenes(structure)`` (default `gate_set`) and cached (`gate_path`), so that the advice and
    notebook 03 score each run once."""
    path = gate_path(cfg, job, cache)
    if path.exists():
        per_image = pd.read_csv(path)
        return per_image, gate_columns(cfg, per_image)
    dataset = scenes(job.structure) if scenes is not None else gate_set(cfg, job.structure)
    per_image, columns = gate_scores(cfg, model, dataset)
    write_atomic(path, lambda scratch: per_image.to_csv(scratch, index=False))
    return per_image, columns


def _scenes(cfg) -> Callable[[str], Dataset]:
    """``scenes(structure)``: `gate_set` of `cfg`, simulated on first use, once per structure."""
    made: dict[str, Dataset] = {}

    def scenes(structure: str) -> Dataset:
        if structure not in made:
            made[structure] = gate_set(cfg, structure)
        return made[structure]

    return scenes


@dataclass
class TrainingRuns:
    """Every training run of a study configuration, as tables."""

    runs: pd.DataFrame        # one row per run
    history: pd.DataFrame     # one row per validation of each run
    test_scores: pd.DataFrame  # one row per run and clean test image
    gate_scores: pd.DataFrame  # one row per run and scene of the gate (`gate_set`)


def training_runs(cfg, *, progress: bool = True) -> TrainingRuns:
    """Train (or load) every run of the grid of `cfg`, and tabulate them.

    ``runs`` has ``model``, ``structure``, ``regime``, ``seed``, ``width``, ``steps``, ``max_steps``,
    ``converged``, ``best_step``, ``best_val_iou``, ``iou`` and ``dice`` (clean test, SNR 8, mean over
    the test images of the robustness tables), ``n_test``, the gate's ``gate_iou``, ``gate_iou_low``,
    ``gate_iou_high`` and ``n_gate`` (`gate_scores`) and ``train_time_s``.
    """
    trained = grid.run_training(cfg, progress=progress)
    scenes = _scenes(cfg)
    rows, histories, scores, gated = [], [], [], []
    for job, result in tqdm(trained, desc="clean test scores", disable=not progress):
        per_image = grid.evaluation(cfg, "clean", job.model, job.structure, job.regime, seed=job.seed)
        on_gate, gate = run_gate_scores(cfg, job, result.model, scenes)
        tags = dict(model=job.model, structure=job.structure, regime=job.regime, seed=job.seed)
        scores.append(per_image)
        gated.append(on_gate.assign(**tags))
        histories.append(result.history.assign(**tags))
        rows.append({**tags, "width": job.width, "steps": result.steps, "max_steps": job.config.max_steps,
                     "converged": bool(result.converged), "best_step": result.best_step,
                     "best_val_iou": result.best_val_iou, "iou": float(per_image.iou.mean()),
                     "dice": float(per_image.dice.mean()), "n_test": len(per_image), **gate,
                     "train_time_s": result.train_time_s})
    return TrainingRuns(pd.DataFrame(rows), pd.concat(histories, ignore_index=True),
                        pd.concat(scores, ignore_index=True), pd.concat(gated, ignore_index=True))


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
    `announce` how many models that is and how long they should take (`missing_training`). Each row
    has ``converged``, ``iou`` (the test images) and the gate's columns (`gate_scores`)."""
    missing, seconds = missing_training(cfg, structure)
    if missing and announce is not None:
        announce(f"Training {len(missing)} model(s) of the {cfg.profile} study on {structure} first: about "
                 f"{seconds / 60:.0f} min on a 2-core machine.")
    rows = []
    jobs = [j for j in grid.training_jobs(cfg) if j.structure == structure]
    scenes = _scenes(cfg)
    for job in tqdm(jobs, desc=f"study models on {structure}", unit="model", disable=not progress):
        result = grid.train_job(job, progress=progress)
        per_image = grid.evaluation(cfg, "clean", job.model, job.structure, job.regime, seed=job.seed)
        rows.append({"model": job.model, "structure": job.structure, "regime": job.regime, "seed": job.seed,
                     "converged": bool(result.converged), "iou": float(per_image.iou.mean()),
                     **run_gate_scores(cfg, job, result.model, scenes)[1]})
    return pd.DataFrame(rows)


def with_attainable(runs: pd.DataFrame, limits: pd.DataFrame, strides: pd.Series) -> pd.DataFrame:
    """`runs` with ``output_stride``, ``attainable_iou`` and ``share_of_attainable`` (of the run's
    `GATE_SCORE`).

    ``attainable_iou`` is the best mean IoU that logit maps at the model's output stride reach when
    fitted to the true masks of the gate's scenes (`gate_set`), with either objective
    (`fmlib.resolution.attainable_limits`: its columns other than ``structure`` and ``output_stride``):
    what the architecture's output could draw at best, whatever it learned.

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
    return out.assign(share_of_attainable=out[GATE_SCORE] / out.attainable_iou)


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
    ``continuation``, ``iou`` (the run's clean IoU on the gate's scenes, `GATE_SCORE` of `verdicts`),
    ``continued_iou`` (the same, of the continued run), ``steps``, ``converged``, ``reaches_floor``.
    Empty when no run qualifies.
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
        gate_data = gate_set(cfg, run.structure)
        for name, (config, width) in variants.items():
            result = train(job.model, job.data, config, width=width, progress=progress)
            iou = gate_scores(cfg, result.model, gate_data)[1][GATE_SCORE]
            rows.append({"model": run.model, "structure": run.structure, "regime": run.regime, "seed": run.seed,
                         "continuation": name, "iou": getattr(run, GATE_SCORE), "continued_iou": iou,
                         "steps": result.steps,
                         "converged": bool(result.converged), "reaches_floor": iou >= cfg.competence_floor})
    return pd.DataFrame(rows, columns=columns)

