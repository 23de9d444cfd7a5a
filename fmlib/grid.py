"""The experiment grid: models x structures x training regimes, trained, evaluated and cached.

A study configuration (`fmlib.study.resolve`) fixes the grid. `training_jobs` lists its training
runs, `run_training` trains what is not cached yet, and `load_model` gives any trained model back.
The three regimes are the paper's: standard training on clean (SNR 8) images, Gaussian-noise
augmentation, and adversarial training.

Every trained model is then evaluated on its structure's synthetic test set: clean scores,
corruptions and attacks (`evaluation_jobs`). An evaluation is cached like a checkpoint, as a CSV
keyed by its model's training key, the parameters it reads and the code it runs
(`evaluation_key`), so the notebooks read what an executor (`fmlib.executors`) computed and compute
only what is missing, and re-executing a notebook does not re-run its attacks.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .training import (
    PRESETS,
    DataSpec,
    TrainConfig,
    TrainedModel,
    cache_dir,
    code_version,
    load_trained,
    train,
)

if TYPE_CHECKING:  # annotations only: pandas is imported where it is used
    import pandas

REGIMES = ("standard", "noise", "adversarial")
#: Seeds of the data splits, offsets from the study seed: training, validation (in DataSpec) and test.
TEST_SEED_OFFSET = 200_000


@dataclass(frozen=True)
class TrainingJob:
    model: str
    structure: str
    regime: str
    width: float
    data: DataSpec
    config: TrainConfig


def train_config(cfg, regime: str) -> TrainConfig:
    """The `TrainConfig` of `regime` under study configuration `cfg`."""
    preset = PRESETS["paper"] if cfg.optimizer == "sgd" else PRESETS["cpu"]
    base = preset.replace(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, loss=cfg.get("loss", preset.loss),
                          mixed_precision=bool(cfg.get("mixed_precision", False)), seed=cfg.seed)
    if regime == "standard":
        return base
    if regime == "noise":
        return base.replace(defense="noise")
    if regime == "adversarial":
        return base.replace(defense="adversarial", adv_method=cfg.adv_method, adv_steps=cfg.adv_steps)
    raise ValueError(f"regime: unknown regime {regime!r}; expected one of {', '.join(REGIMES)}")


def data_spec(cfg, structure: str) -> DataSpec:
    return DataSpec(structure, n_train=cfg.n_train, n_val=cfg.n_val, size=cfg.image_size, snr=8.0, seed=cfg.seed)


def test_set(cfg, structure: str, snr: float = 8.0):
    """The clean test images of `structure`: scenes no model was trained or validated on."""
    from .synthesis import make_dataset

    return make_dataset(structure, cfg.n_test, cfg.image_size, snr=snr, seed=cfg.seed + TEST_SEED_OFFSET)


def regimes_for(cfg, structure: str) -> list[str]:
    """The training regimes of `structure`: the standard one everywhere, the defended ones (noise,
    adversarial) only on ``cfg.defense_structures`` (all structures when it is not set); a CPU
    profile trains the defenses on nuclei only, to fit its time budget."""
    defended = cfg.get("defense_structures", cfg.structures)
    return [r for r in cfg.regimes if r == "standard" or structure in defended]


def training_jobs(cfg) -> list[TrainingJob]:
    """Every training run of the grid, in a fixed order."""
    return [TrainingJob(model, structure, regime, float(cfg.widths.get(model, 1.0)), data_spec(cfg, structure),
                        train_config(cfg, regime))
            for structure in cfg.structures for regime in regimes_for(cfg, structure) for model in cfg.models]


def run_training(cfg, *, progress: bool = True) -> list[tuple[TrainingJob, TrainedModel]]:
    """Train every job of the grid that is not cached yet; return all (job, trained model) pairs."""
    from tqdm.auto import tqdm

    jobs = training_jobs(cfg)
    results = []
    for job in tqdm(jobs, desc="training grid", unit="model", disable=not progress):
        results.append((job, train(job.model, job.data, job.config, width=job.width, progress=progress)))
    return results


def load_model(cfg, model: str, structure: str, regime: str = "standard") -> TrainedModel:
    """A model trained by `run_training` for this configuration (FileNotFoundError if it was not)."""
    return load_trained(model, data_spec(cfg, structure), train_config(cfg, regime),
                        width=float(cfg.widths.get(model, 1.0)))


def prediction_scores(predictions, dataset) -> "pandas.DataFrame":
    """Per-image IoU, Dice, precision and recall of binary `predictions` (N, H, W) against the masks
    of `dataset`: a synthesis `Dataset`, or real `fmlib.realdata.Tiles`, whose names then fill a
    ``tile`` column."""
    import pandas as pd

    from .metrics import segmentation_scores

    names = getattr(dataset, "names", None)
    scores = segmentation_scores(predictions, dataset.masks > 0)
    return pd.DataFrame({"image": range(len(dataset.masks)), **({"tile": names} if names is not None else {}), **scores})


def test_scores(model, dataset, *, mixed_precision: bool = False) -> "pandas.DataFrame":
    """Per-image IoU, Dice, precision and recall of `model` on `dataset` (`prediction_scores`)."""
    from .training import predict

    return prediction_scores(predict(model, dataset.images, mixed_precision=mixed_precision), dataset)


def attack_table(cfg, model, dataset, *, attacks: list[str] | None = None, noise_baseline: bool = True,
                 progress: bool = False) -> "pandas.DataFrame":
    """Every attack of `cfg` (or `attacks`), plus the random-sign noise baseline, at every budget of
    `cfg.eps_255`, on the first `cfg.n_attack_images` images of `dataset`: one row per image, attack
    and budget.

    PGD, SegPGD and CosPGD run `cfg.attack_steps` iterations with the paper's step of 2/255; FGSM
    is one step; I-FGSM uses the paper's step (1/255) and iteration count.
    """
    import pandas as pd

    from .attacks import evaluate_attack

    images, masks = dataset.images[:cfg.n_attack_images], dataset.masks[:cfg.n_attack_images]
    eps = [e / 255 for e in cfg.eps_255]
    tables = []
    for name in [*(cfg.attacks if attacks is None else attacks), *(["noise"] if noise_baseline else [])]:
        kwargs = {"steps": cfg.attack_steps} if name in ("pgd", "segpgd", "cospgd") else {}
        tables.append(evaluate_attack(model, images, masks, name, eps, seed=cfg.seed, progress=progress, **kwargs))
    return pd.concat(tables, ignore_index=True)


def corruption_table(cfg, model, dataset) -> "pandas.DataFrame":
    """IoU and Dice of `model` on `dataset` under every corruption and severity of `cfg`, per image,
    with the clean IoU beside them. `dataset` is a synthesis `Dataset` (physical corruptions then act
    on its raw counts) or anything with ``images`` and ``masks`` (real tiles: the reference
    acquisition)."""
    import pandas as pd

    from .corruptions import CORRUPTIONS, corrupt
    from .metrics import segmentation_scores
    from .synthesis import Dataset
    from .training import predict

    counts = dataset if isinstance(dataset, Dataset) else None
    amp = bool(cfg.get("mixed_precision", False))  # bfloat16 inference on CUDA (the paper profile)

    truth = dataset.masks > 0
    clean = segmentation_scores(predict(model, dataset.images, mixed_precision=amp), truth)
    frames = []
    for name in cfg.corruptions:
        for severity in range(1, 6):
            images = corrupt(dataset.images, name, severity, rng=cfg.seed, dataset=counts)
            scores = segmentation_scores(predict(model, images, mixed_precision=amp), truth)
            frames.append(pd.DataFrame({"image": range(len(dataset.images)), "corruption": name,
                                        "family": CORRUPTIONS[name].family, "severity": severity,
                                        "iou": scores["iou"], "dice": scores["dice"], "clean_iou": clean["iou"]}))
    return pd.concat(frames, ignore_index=True)


def robustness_summary(corruption: "pandas.DataFrame", adversarial: "pandas.DataFrame", attack: str = "pgd",
                       by: tuple[str, ...] = ("structure", "model", "regime")) -> "pandas.DataFrame":
    """Per model (and structure, regime): clean IoU, corruption robustness (mean corrupted/clean IoU
    over corruptions, severities and images) and the adversarial score of `attack`, side by side."""
    from .metrics import adversarial_score, robustness_ratio

    keys = [k for k in by if k in corruption.columns]
    corr = (corruption.assign(r=robustness_ratio(corruption.iou, corruption.clean_iou))
            .groupby(keys, sort=False).agg(clean_iou=("clean_iou", "mean"), corruption_robustness=("r", "mean"))
            .reset_index())
    adv = adversarial_score(adversarial[adversarial.attack == attack], by=keys).rename(
        columns={"score": "adversarial_robustness", "mean_iou": "adversarial_iou"})
    return corr.merge(adv, on=keys)


# ----------------------------------------------------------------------------------------------
# Evaluations of the trained grid, cached
# ----------------------------------------------------------------------------------------------

EVALUATIONS = ("clean", "corruption", "attack")
#: The study parameters each kind of evaluation reads (besides the test set's), hashed into its key.
_EVALUATION_PARAMETERS = {"clean": ("mixed_precision",), "corruption": ("corruptions", "mixed_precision"),
                          "attack": ("attacks", "noise_baseline", "eps_255", "n_attack_images", "attack_steps")}
_TEST_SET_PARAMETERS = ("n_test", "image_size", "seed")


class _Parameters(dict):
    """An evaluation's parameters, read as attributes like a study `Config`."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass(frozen=True)
class EvaluationJob:
    """One evaluation (`kind`, one of `EVALUATIONS`) of the model that `training` trains, on the
    clean test set of its structure. `parameters` are the (name, value) pairs it reads."""

    kind: str
    training: TrainingJob
    parameters: tuple[tuple[str, object], ...]

    @property
    def label(self) -> str:
        t = self.training
        return f"{self.kind}-{t.model}-{t.structure}-{t.regime}"


def _frozen(value):
    return tuple(value) if isinstance(value, list) else value


def evaluation_job(cfg, kind: str, training: TrainingJob) -> EvaluationJob:
    """The `kind` evaluation of `training`'s model under study configuration `cfg`. The attacks are
    the grid's: every attack of `cfg` plus the random-sign noise baseline for standard training,
    ``cfg.defense_attack`` alone for a defended regime (what the defenses notebook compares)."""
    from ._checks import check_choice

    check_choice("kind", kind, EVALUATIONS)
    values = {name: cfg.get(name) for name in (*_TEST_SET_PARAMETERS, *_EVALUATION_PARAMETERS[kind])}
    if "mixed_precision" in values:
        values["mixed_precision"] = bool(values["mixed_precision"])
    if kind == "attack":
        standard = training.regime == "standard"
        values.update(attacks=list(cfg.attacks) if standard else [cfg.defense_attack], noise_baseline=standard)
    return EvaluationJob(kind, training, tuple((k, _frozen(v)) for k, v in sorted(values.items())))


def evaluation_jobs(cfg) -> list[EvaluationJob]:
    """Every evaluation of the grid: clean scores, corruptions and attacks of every trained model,
    in a fixed order (that of `training_jobs`)."""
    return [evaluation_job(cfg, kind, job) for job in training_jobs(cfg) for kind in EVALUATIONS]


def evaluation_code_version() -> str:
    """Hash of the code an evaluation runs: the trained model's (`fmlib.training.code_version`)
    plus the grid, the corruptions and the metrics."""
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256(code_version().encode())
    for name in ("grid.py", "corruptions.py", "metrics.py"):
        digest.update(name.encode())
        digest.update((package / name).read_bytes())
    return digest.hexdigest()[:16]


def evaluation_key(job: EvaluationJob) -> str:
    """The cache key of `job`: its model's training key, its kind and parameters, and the code."""
    from .training import training_key

    t = job.training
    payload = {"kind": job.kind, "training": training_key(t.model, t.width, t.data, t.config),
               "parameters": [[k, list(v) if isinstance(v, tuple) else v] for k, v in job.parameters],
               "code": evaluation_code_version()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def evaluation_path(job: EvaluationJob, cache: str | Path | None = None) -> Path:
    """Where the table of `job` is cached: ``<cache>/evaluations/<kind>-<model>-<structure>-<regime>-<key>.csv``."""
    return Path(cache if cache is not None else cache_dir()) / "evaluations" / f"{job.label}-{evaluation_key(job)}.csv"


def _read_table(path: Path) -> "pandas.DataFrame":
    import pandas as pd

    # pandas writes the shortest repr of each float and reads it back exactly (tested), so the
    # floats read back are the floats written, bit for bit.
    return pd.read_csv(path)


def evaluate(job: EvaluationJob, *, cache: str | Path | None = None) -> "pandas.DataFrame":
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
        params = _Parameters(job.parameters)
        model = load_trained(t.model, t.data, t.config, width=t.width, cache=cache).model
        test = test_set(params, t.structure)
        if job.kind == "clean":
            table = test_scores(model, test, mixed_precision=params.mixed_precision)
        elif job.kind == "corruption":
            table = corruption_table(params, model, test)
        else:
            table = attack_table(params, model, test, attacks=list(params.attacks), noise_baseline=params.noise_baseline)
        table = table.assign(model=t.model, structure=t.structure, regime=t.regime)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written under a temporary name and renamed: a worker lost mid-write leaves no half table.
        scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        table.to_csv(scratch, index=False)
        os.replace(scratch, path)
    return _read_table(path)


def evaluation(cfg, kind: str, model: str, structure: str, regime: str = "standard", *,
               cache: str | Path | None = None) -> "pandas.DataFrame":
    """The `kind` evaluation (`EVALUATIONS`) of `model` trained on `structure` in `regime` under
    study configuration `cfg`: read from the cache, or computed and cached (see `evaluate`).

    Examples
    --------
    >>> from fmlib import study
    >>> cfg = study.resolve("smoke")
    >>> table = evaluation(cfg, "corruption", "sim_unet", "nuclei")  # doctest: +SKIP
    >>> sorted(table.columns)[:3]  # doctest: +SKIP
    ['clean_iou', 'corruption', 'dice']
    """
    matches = [job for job in training_jobs(cfg) if (job.model, job.structure, job.regime) == (model, structure, regime)]
    if not matches:
        raise ValueError(f"model, structure, regime: ({model!r}, {structure!r}, {regime!r}) is not in the grid of "
                         f"this configuration (models {list(cfg.models)}, structures {list(cfg.structures)}, regimes "
                         f"{regimes_for(cfg, structure) if structure in cfg.structures else list(cfg.regimes)})")
    return evaluate(evaluation_job(cfg, kind, matches[0]), cache=cache)
