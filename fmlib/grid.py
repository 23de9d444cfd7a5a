"""The experiment grid: models x structures x training regimes, trained, evaluated and cached.

A study configuration (`fmlib.profiles.resolve`) fixes the grid. `training_jobs` lists its training
runs, `run_training` trains what is not cached yet, and `trained_model` gives any trained model back.
The regimes (`fmlib.training.REGIMES`): standard (the paper's single acquisition at SNR 8),
randomized acquisitions, noise augmentation and adversarial training. Training seeds are a grid
dimension (`seeds_for`), so that confidence intervals hold the variance between training runs; the
data (scenes, test set) are the same for every seed, only the initialisation and batch order change.

Every trained model is then evaluated on its structure's synthetic test set (`test_set`): clean
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

from ._checks import check_choice
from .cache import content_key, write_atomic
from .checkpoints import DataSpec, checkpoint_folder, load_trained, train, training_key
from .evaluation import attack_table, clean_scores, corruption_table, robust_table, transfer_table
from .models import MODELS
from .paths import cache_dir
from .profiles import Config, model_width
from .synthesis import make_dataset
from .training import PRESETS, REGIMES, TrainConfig, TrainedModel

#: Seed offset of the test scenes from the study seed (validation: `fmlib.checkpoints`).
TEST_SEED_OFFSET = 200_000


@dataclass(frozen=True)
class TrainingJob:
    model: str
    structure: str
    regime: str
    width: float
    data: DataSpec
    config: TrainConfig

    @property
    def seed(self) -> int:
        """The training seed (initialisation and batch order)."""
        return self.config.seed


#: The regimes compared with `standard` as defenses (issue #38): they get ``n_defense_seeds`` seeds.
DEFENSE_REGIMES = ("randomized", "noise", "adversarial")


def seeds_for(cfg, structure: str, regime: str = "standard") -> list[int]:
    """The training seeds of `regime` on `structure`: ``cfg.n_seeds`` of them (``cfg.seed``,
    ``cfg.seed + 1``, ...) on ``cfg.seed_structures``, the first alone elsewhere; the regimes compared
    with standard as defenses (randomized, noise, adversarial) get ``cfg.n_defense_seeds`` where the
    profile sets it (the defense tests pair architectures, so one seed still tests them)."""
    seeded = structure in cfg.get("seed_structures", ())
    n = int(cfg.get("n_seeds", 1))
    if regime in DEFENSE_REGIMES and cfg.get("n_defense_seeds") is not None:
        n = min(n, int(cfg.n_defense_seeds))
    return [cfg.seed + i for i in range(n if seeded else 1)]


def train_config(cfg, regime: str, seed: int | None = None, model: str | None = None) -> TrainConfig:
    """The `TrainConfig` of `regime` under study configuration `cfg`, with training seed `seed`
    (default ``cfg.seed``), for architecture `model`: transformers get the learning rate and warm-up
    of ``cfg.transformer_recipe`` where the profile sets one (`fmlib.models` families)."""
    check_choice("regime", regime, REGIMES)
    preset = PRESETS["paper"] if cfg.optimizer == "sgd" else PRESETS["cpu"]
    base = preset.replace(max_steps=cfg.max_steps, eval_every=cfg.eval_every, patience=cfg.patience,
                          batch_size=cfg.batch_size, lr=cfg.lr, loss=cfg.get("loss", preset.loss),
                          mixed_precision=bool(cfg.get("mixed_precision", False)),
                          seed=cfg.seed if seed is None else seed)
    recipe = cfg.get("transformer_recipe") or {}
    if model is not None and recipe and MODELS[model].family == "transformer":
        base = base.replace(lr=float(recipe.get("lr", base.lr)), warmup_steps=int(recipe.get("warmup_steps", 0)))
    if regime == "noise":
        return base.replace(defense="noise")
    if regime == "adversarial":
        return base.replace(defense="adversarial", adv_method=cfg.adv_method, adv_steps=cfg.adv_steps)
    return base


def data_spec(cfg, structure: str, regime: str = "standard") -> DataSpec:
    """The training and validation data of `structure` for `regime` under `cfg`
    (`fmlib.checkpoints.DataSpec`): one acquisition at SNR 8 (the paper's protocol) for every regime
    but ``randomized``, whose acquisitions are randomized at ``cfg.training_randomization``. The
    validation images come from the same distribution as the training images."""
    check_choice("regime", regime, REGIMES)
    strength = float(cfg.get("training_randomization", 0.0)) if regime == "randomized" else 0.0
    return DataSpec(structure, n_train=cfg.n_train, n_val=cfg.n_val, size=cfg.image_size, snr=8.0, seed=cfg.seed,
                    randomization=strength)


def test_set(cfg, structure: str, snr: float = 8.0):
    """The clean test images of `structure`: scenes no model was trained or validated on."""
    return make_dataset(structure, cfg.n_test, cfg.image_size, snr=snr, seed=cfg.seed + TEST_SEED_OFFSET)


def regimes_for(cfg, structure: str) -> list[str]:
    """The training regimes of `structure`: the standard one everywhere, the others (randomized
    acquisitions, noise augmentation, adversarial training) only on ``cfg.defense_structures`` (all
    structures when it is not set); a CPU profile trains them on nuclei only, to fit its time budget."""
    defended = cfg.get("defense_structures", cfg.structures)
    return [r for r in cfg.regimes if r == "standard" or structure in defended]


def training_jobs(cfg) -> list[TrainingJob]:
    """Every training run of the grid, in a fixed order."""
    return [TrainingJob(model, structure, regime, model_width(cfg, model), data_spec(cfg, structure, regime),
                        train_config(cfg, regime, seed, model))
            for structure in cfg.structures for seed in seeds_for(cfg, structure)
            for regime in regimes_for(cfg, structure) if seed in seeds_for(cfg, structure, regime)
            for model in cfg.models]


def train_job(job: TrainingJob, *, cache: str | Path | None = None, progress: bool = True) -> TrainedModel:
    """Train (or load from the cache) the model of `job`."""
    return train(job.model, job.data, job.config, width=job.width, cache=cache, progress=progress)


def run_training(cfg, *, progress: bool = True) -> list[tuple[TrainingJob, TrainedModel]]:
    """Train every job of the grid that is not cached yet; return all (job, trained model) pairs."""
    jobs = training_jobs(cfg)
    return [(job, train_job(job, progress=progress))
            for job in tqdm(jobs, desc="training grid", unit="model", disable=not progress)]


def _training_job(cfg, model: str, structure: str, regime: str, seed: int | None = None) -> TrainingJob:
    seed = cfg.seed if seed is None else seed
    for job in training_jobs(cfg):
        if (job.model, job.structure, job.regime, job.seed) == (model, structure, regime, seed):
            return job
    raise ValueError(f"model, structure, regime, seed: ({model!r}, {structure!r}, {regime!r}, {seed!r}) is not in the "
                     f"grid of this configuration (models {list(cfg.models)}, structures {list(cfg.structures)}, "
                     f"regimes {regimes_for(cfg, structure) if structure in cfg.structures else list(cfg.regimes)}, "
                     f"seeds {seeds_for(cfg, structure, regime)})")


def trained_model(cfg, model: str, structure: str, regime: str = "standard", seed: int | None = None) -> TrainedModel:
    """A model trained by `run_training` for this configuration, with training seed `seed` (default
    the first, ``cfg.seed``); FileNotFoundError if it was not trained."""
    job = _training_job(cfg, model, structure, regime, seed)
    return load_trained(job.model, job.data, job.config, width=job.width)


# ----------------------------------------------------------------------------------------------
# Evaluations of the trained grid, cached
# ----------------------------------------------------------------------------------------------

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
    return None if seed is None else _training_job(cfg, name, training.structure, "standard", seed)


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
    return content_key(payload, ["grid.py"])


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
    return run_evaluation(evaluation_job(cfg, kind, _training_job(cfg, model, structure, regime, seed)), cache=cache)


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
