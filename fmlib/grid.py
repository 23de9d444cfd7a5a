"""The experiment grid: models x structures x training regimes, trained and cached.

A study configuration (`fmlib.study.resolve`) fixes the grid. `training_jobs` lists its training
runs, `run_training` trains what is not cached yet, and `load_model` gives any trained model back
to the notebooks that evaluate it. The three regimes are the paper's: standard training on clean
(SNR 8) images, Gaussian-noise augmentation, and adversarial training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .training import PRESETS, DataSpec, TrainConfig, TrainedModel, load_trained, train

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


def test_scores(model, dataset, *, mixed_precision: bool = False) -> "pandas.DataFrame":
    """Per-image IoU, Dice, precision and recall of `model` on a synthetic `dataset`."""
    import pandas as pd

    from .metrics import segmentation_scores
    from .training import predict

    scores = segmentation_scores(predict(model, dataset.images, mixed_precision=mixed_precision), dataset.masks > 0)
    return pd.DataFrame({"image": range(len(dataset.images)), **scores})


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
    for name in [*(attacks or cfg.attacks), *(["noise"] if noise_baseline else [])]:
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
    from .metrics import adversarial_score

    keys = [k for k in by if k in corruption.columns]
    corr = (corruption.assign(r=corruption.iou / corruption.clean_iou.clip(lower=1e-5))
            .groupby(keys, sort=False).agg(clean_iou=("clean_iou", "mean"), corruption_robustness=("r", "mean"))
            .reset_index())
    adv = adversarial_score(adversarial[adversarial.attack == attack], by=keys).rename(
        columns={"score": "adversarial_robustness", "mean_iou": "adversarial_iou"})
    return corr.merge(adv, on=keys)
