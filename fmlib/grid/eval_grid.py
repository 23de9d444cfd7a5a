"""Evaluations of the trained grid (`fmlib.grid.train_grid`), cached.

Every trained model is evaluated on its structure's synthetic test set (`test_set`): clean
scores, corruptions, the paper's attacks, the robust IoU under the attack ensemble, and examples
transferred from a surrogate model (`evaluation_jobs`, tables of `fmlib.evaluation`). An evaluation is
cached like a checkpoint, as a CSV keyed by its model's training key, the parameters it reads and
the code it runs (`evaluation_key`), so the notebooks read what an executor (`fmlib.executors`)
computed and compute only what is missing, and re-executing a notebook does not re-run its attacks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from .._checks import check_choice
from ..cache import content_key, write_atomic
from ..checkpoints import checkpoint_folder, load_trained, training_key
from ..evaluation import attack_table, clean_scores, corruption_table, robust_table, transfer_table
from ..paths import cache_dir
from ..profiles import Config
from .train_grid import TrainingJob, seeds_for, test_set, training_job, training_jobs

EVALUATIONS = ("clean", "corruption", "attack", "robust", "transfer")
#: The study parameters each kind of evaluation reads (besides the test set's), hashed into its key.
_EVALUATION_PARAMETERS = {"clean": ("mixed_precision",), "corruption": ("corruptions", "mixed_precision"),
                          "attack": ("attacks", "noise_baseline", "eps_255", "n_attack_images", "attack_steps"),
                          "robust": ("ensemble_eps_255", "n_attack_images", "attack_steps", "ensemble_steps",
                                     "ensemble_max_steps", "ensemble_restarts", "ensemble_restart_losses",
                                     "square_queries"),
                          "transfer": ("eps_255", "n_attack_images", "attack_steps")}
_TEST_SET_PARAMETERS = ("n_test", "image_size", "seed")


@dataclass(frozen=True)
class EvaluationJob:
    """One evaluation (`kind`, one of `EVALUATIONS`) of the model that `training` trains, on the
    clean test set of its structure. `parameters` are the (name, value) pairs it reads; a transfer
    evaluation also needs the model its examples are crafted on (`surrogate`)."""

    kind: str
    training: TrainingJob
    parameters: tuple[tuple[str, object], ...]
    surrogate: TrainingJob | None = None

    @property
    def label(self) -> str:
        t = self.training
        return f"{self.kind}-{t.model}-{t.structure}-{t.regime}-s{t.seed}"


def _frozen(value):
    return tuple(value) if isinstance(value, list) else value


def surrogate_for(cfg, training: TrainingJob) -> TrainingJob | None:
    """The model whose examples are transferred to `training`'s: ``cfg.transfer_surrogate`` trained
    on the same structure (standard regime, first seed); for the surrogate's own standard training,
    its second seed (None where it has none: no transfer is measured). A defended model of the
    surrogate's architecture is another model, so it gets the first seed's examples too."""
    name = cfg.get("transfer_surrogate")
    if name is None:
        return None
    seeds = seeds_for(cfg, training.structure)
    itself = name == training.model and training.regime == "standard"
    seed = seeds[0] if not itself else (seeds[1] if len(seeds) > 1 else None)
    return None if seed is None else training_job(cfg, name, training.structure, "standard", seed)


def evaluation_job(cfg, kind: str, training: TrainingJob) -> EvaluationJob:
    """The `kind` evaluation of `training`'s model under study configuration `cfg`. The attacks are
    the grid's: every attack of `cfg` for standard training; for a defended regime
    ``cfg.defense_attack`` (what the defenses notebook compares) and FGSM, the single step that
    exposes a defense that only masks gradients. Both get the random-sign noise baseline."""
    check_choice("kind", kind, EVALUATIONS)
    values = {name: cfg.get(name) for name in (*_TEST_SET_PARAMETERS, *_EVALUATION_PARAMETERS[kind])}
    if "mixed_precision" in values:
        values["mixed_precision"] = bool(values["mixed_precision"])
    if kind == "attack":
        standard = training.regime == "standard"
        defended = ["fgsm", *([cfg.defense_attack] if cfg.defense_attack != "fgsm" else [])]
        values.update(attacks=list(cfg.attacks) if standard else defended, noise_baseline=True)
    surrogate = surrogate_for(cfg, training) if kind == "transfer" else None
    if kind == "transfer" and surrogate is None:
        raise ValueError(f"kind: no transfer surrogate for {training.model!r} on {training.structure!r} "
                         f"(transfer_surrogate {cfg.get('transfer_surrogate')!r} with a single seed)")
    return EvaluationJob(kind, training, tuple((k, _frozen(v)) for k, v in sorted(values.items())), surrogate)


def evaluation_jobs(cfg) -> list[EvaluationJob]:
    """Every evaluation of the grid, in a fixed order (that of `training_jobs`): clean scores,
    corruptions and the robust IoU of every trained model; on the first seed of each, the attacks
    (`evaluation_job`) and the examples transferred from the surrogate: the strength checks of the
    robust IoU, for defended models as for standard ones."""
    jobs = []
    for job in training_jobs(cfg):
        first = job.seed == seeds_for(cfg, job.structure, job.regime)[0]
        kinds = ["clean", "corruption", *(["attack"] if first else []), "robust"]
        if first and surrogate_for(cfg, job) is not None:
            kinds.append("transfer")
        jobs += [evaluation_job(cfg, kind, job) for kind in kinds]
    return jobs


def evaluation_key(job: EvaluationJob) -> str:
    """The cache key of `job`: its model's training key, its kind and parameters, and the code it
    runs (this module and everything it imports: the evaluations, corruptions, attacks, metrics)."""
    t, s = job.training, job.surrogate
    payload = {"kind": job.kind, "training": training_key(t.model, t.width, t.data, t.config),
               "parameters": [[k, list(v) if isinstance(v, tuple) else v] for k, v in job.parameters]}
    if s is not None:
        payload["surrogate"] = training_key(s.model, s.width, s.data, s.config)
    return content_key(payload, ["grid/eval_grid.py"])


def evaluation_path(job: EvaluationJob, cache: str | Path | None = None) -> Path:
    """Where the table of `job` is cached:
    ``<cache>/evaluations/<kind>-<model>-<structure>-<regime>-s<seed>-<key>.csv``."""
    return Path(cache if cache is not None else cache_dir()) / "evaluations" / f"{job.label}-{evaluation_key(job)}.csv"


def done_file(job: TrainingJob | EvaluationJob, cache: str | Path | None = None) -> Path:
    """The file whose presence says that `job` finished: a checkpoint's ``done.json``, an evaluation's table."""
    if isinstance(job, EvaluationJob):
        return evaluation_path(job, cache)
    return checkpoint_folder(job.model, job.width, job.data, job.config, cache) / "done.json"


def run_evaluation(job: EvaluationJob, *, cache: str | Path | None = None) -> pd.DataFrame:
    """The table of `job`, one row per test image (and corruption and severity, or attack and budget),
    tagged with its model, structure and regime.

    Read from the cache when an executor or an earlier notebook computed it; else computed from the
    cached checkpoint (FileNotFoundError when the model is not trained) and cached. The table
    returned is always the one read back from the cache file, so a computed and a cached evaluation
    give the same frame, dtypes included.
    """
    path = evaluation_path(job, cache)
    if not path.exists():
        t = job.training
        params = Config(job.parameters)
        model = load_trained(t.model, t.data, t.config, width=t.width, cache=cache).model
        test = test_set(params, t.structure)
        if job.kind == "clean":
            table = clean_scores(model, test, mixed_precision=params.mixed_precision)
        elif job.kind == "corruption":
            table = corruption_table(params, model, test)
        elif job.kind == "attack":
            table = attack_table(params, model, test, attacks=list(params.attacks),
                                 noise_baseline=params.noise_baseline)
        elif job.kind == "robust":
            table = robust_table(params, model, test)
        else:
            s = job.surrogate
            surrogate = load_trained(s.model, s.data, s.config, width=s.width, cache=cache).model
            table = transfer_table(params, model, test, surrogate).assign(surrogate=s.model, surrogate_seed=s.seed)
        table = table.assign(model=t.model, structure=t.structure, regime=t.regime, seed=t.seed)
        write_atomic(path, lambda scratch: table.to_csv(scratch, index=False))
    # pandas writes the shortest repr of each float and reads it back exactly (tested), so the
    # floats read back are the floats written, bit for bit.
    return pd.read_csv(path)


def evaluation(cfg, kind: str, model: str, structure: str, regime: str = "standard", *, seed: int | None = None,
               cache: str | Path | None = None) -> pd.DataFrame:
    """The `kind` evaluation (`EVALUATIONS`) of `model` trained on `structure` in `regime` with
    training seed `seed` (default the first) under study configuration `cfg`: read from the cache, or
    computed and cached (see `run_evaluation`).

    Examples
    --------
    >>> from fmlib.profiles import resolve
    >>> table = evaluation(resolve("smoke"), "corruption", "sim_unet", "nuclei")  # doctest: +SKIP
    >>> sorted(table.columns)[:3]  # doctest: +SKIP
    ['clean_iou', 'corruption', 'dice']
    """
    return run_evaluation(evaluation_job(cfg, kind, training_job(cfg, model, structure, regime, seed)), cache=cache)


def evaluations(cfg, kind: str, *, regimes: tuple[str, ...] = ("standard",), structures=None,
                cache: str | Path | None = None, progress: bool = True) -> pd.DataFrame:
    """Every `kind` evaluation of the grid for `regimes` (and `structures`, default all), every
    seed that has one (`evaluation_jobs`), in one table with ``model``, ``structure``, ``regime`` and
    ``seed`` columns."""
    check_choice("kind", kind, EVALUATIONS)
    structures = list(cfg.structures if structures is None else structures)
    jobs = [j for j in evaluation_jobs(cfg) if j.kind == kind and j.training.regime in regimes
            and j.training.structure in structures]
    return pd.concat([run_evaluation(j, cache=cache) for j in tqdm(jobs, desc=kind, disable=not progress)],
                     ignore_index=True)
