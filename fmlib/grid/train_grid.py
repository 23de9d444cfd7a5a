"""The training grid: models x structures x training regimes x seeds, trained and cached.

A study configuration (`fmlib.profiles.resolve`) fixes the grid. `training_jobs` lists its training
runs, `run_training` trains what is not cached yet, and `trained_model` gives any trained model back.
The regimes (`fmlib.training.REGIMES`): standard (the paper's single acquisition at SNR 8),
randomized acquisitions, noise augmentation and adversarial training. Training seeds are a grid
dimension (`seeds_for`), so that confidence intervals hold the variance between training runs; the
data (scenes, test set) are the same for every seed, only the initialisation and batch order change.
The evaluations of the trained models: `fmlib.grid.eval_grid`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from .._checks import check_choice
from ..checkpoints import DataSpec, load_trained, train
from ..models import MODELS
from ..profiles import model_width
from ..synthesis import make_dataset
from ..training import PRESETS, REGIMES, TrainConfig, TrainedModel

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
    (default ``cfg.seed``), for architecture `model`: the settings of ``cfg.recipes`` for its family
    (`fmlib.models` families), then those for the model itself, over the profile's shared ones."""
    check_choice("regime", regime, REGIMES)
    preset = PRESETS["paper"] if cfg.optimizer == "sgd" else PRESETS["cpu"]
    base = preset.replace(max_steps=cfg.max_steps, eval_every=cfg.eval_every, patience=cfg.patience,
                          batch_size=cfg.batch_size, lr=cfg.lr, loss=cfg.get("loss", preset.loss),
                          mixed_precision=bool(cfg.get("mixed_precision", False)),
                          seed=cfg.seed if seed is None else seed)
    if model is not None:
        recipes = cfg.get("recipes") or {}
        recipe = {**recipes.get(MODELS[model].family, {}), **recipes.get(model, {})}
        base = base.replace(lr=float(recipe.get("lr", base.lr)),
                            warmup_steps=int(recipe.get("warmup_steps", base.warmup_steps)),
                            batch_size=int(recipe.get("batch_size", base.batch_size)))
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


def training_job(cfg, model: str, structure: str, regime: str, seed: int | None = None) -> TrainingJob:
    """The job of `training_jobs` that trains `model` on `structure` in `regime` with training seed
    `seed` (default ``cfg.seed``); ValueError naming the grid if there is none."""
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
    job = training_job(cfg, model, structure, regime, seed)
    return load_trained(job.model, job.data, job.config, width=job.width)
