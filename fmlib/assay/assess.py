"""The assay of one model: the study's test set, corruptions and attacks at a profile, as tables.

`assess` runs a model through the same test images, corruptions (every severity), attacks (every
budget) and attack ensemble (the robust IoU) as the study's notebooks, and returns an `AssayResult`
with the same tidy tables, so they line up image by image with the reference models' tables of
``results/<profile>/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .._checks import check_choice, check_int
from ..checkpoints import train
from ..corruptions import cancelled_corruptions, corrupt
from ..evaluation import (
    attack_table,
    clean_scores,
    corruption_table,
    robust_table,
    robustness_summary,
)
from ..grid import data_spec, test_set, train_config
from ..inference import predict, resolve_device
from ..profiles import STRUCTURES, Config, resolve
from ..realdata import REAL_TEST_SOURCES, nuclei_tiles
from .adapters import Adapter, check_contract


@dataclass
class AssayResult:
    """The assay of one model: per-image tables like the study's, and a one-row summary."""

    name: str
    structure: str
    profile: str
    clean: pd.DataFrame         # image, iou, dice, precision, recall
    corruption: pd.DataFrame    # image, corruption, family, severity, iou, dice, clean_iou
    adversarial: pd.DataFrame   # image, attack, eps, eps_255, iou, dice, clean_iou, robustness
    summary: pd.DataFrame       # clean_iou, corrupted_iou, corruption_robustness, adversarial_iou,
    #                             adversarial_robustness, robust_iou (NaN without the ensemble)
    parameters: dict = field(default_factory=dict)
    model: torch.nn.Module | None = None  # the adapted model that was assessed
    test: object = None                   # the synthesis Dataset it was assessed on
    real: pd.DataFrame | None = None  # nuclei only: source, tile, iou, dice on the real test images
    # The attack ensemble's worst case per image and budget (`fmlib.evaluation.robust_table`); None
    # when the assay ran with ``ensemble=False``.
    robust: pd.DataFrame | None = None
    # The corruptions that the study keeps out of its headline averages because its models' z-scored
    # input cancels them (`fmlib.corruptions.cancelled_corruptions`). They are left out of your model's
    # averages too, so that it is ranked on the same corruptions; a model without a per-image z-score
    # may still be hurt by them, and their rows stay in `corruption`.
    cancelled: list = field(default_factory=list)

    @property
    def acting(self) -> pd.DataFrame:
        """The corruption table without the cancelled corruptions: what the headline averages use."""
        return self.corruption[~self.corruption.corruption.isin(self.cancelled)]


def headline_attack(adversarial: pd.DataFrame) -> str:
    """The attack that the robustness summaries quote: PGD where it was run (the paper's), else the
    first attack of the table."""
    return "pgd" if (adversarial.attack == "pgd").any() else adversarial.attack.iloc[0]


def assess(model: torch.nn.Module, structure: str, profile: str = "standard", *, name: str = "your_model",
           output: str = "logits", in_channels: int = 1, normalization: str | tuple = "none", device: str = "auto",
           ensemble: bool = True, progress: bool = True, **overrides) -> AssayResult:
    """Run `model` through the study's assay of `structure` at `profile`.

    The test images, corruptions, severities, attacks, budgets and seeds are those of the profile
    (`fmlib.profiles.PROFILES`; `overrides` change them, like ``fmrobust run --set``), so the tables
    line up image by image with the reference models' tables of ``results/<profile>/``.

    With `ensemble` (default) the assay also runs the study's attack ensemble
    (`fmlib.evaluation.robust_table`: FGSM, I-FGSM, PGD and APGD on three losses, the per-image worst
    case at each budget of ``ensemble_eps_255``), the robust IoU that the study ranks models by; it is
    the assay's longest step (minutes per model on a CPU at the standard profile).
    """
    check_choice("structure", structure, STRUCTURES)
    cfg = resolve(profile, **overrides)
    device = resolve_device(device)
    adapted = Adapter(model, output=output, in_channels=in_channels, normalization=normalization).to(device).eval()
    check_contract(adapted, cfg.image_size, device)
    test = test_set(cfg, structure)
    tags = {"model": name, "structure": structure}

    # One bar over the whole assay: the clean pass, each corruption (all severities), each attack
    # (all budgets) and the random-sign noise baseline.
    steps = [("clean", "clean"), *(("corruption", c) for c in cfg.corruptions), *(("attack", a) for a in cfg.attacks),
             ("attack", "noise")]
    if ensemble:
        steps.append(("robust", "attack ensemble"))
    if structure == "nuclei":  # the real nuclei images of the real-image notebook, tiled the same way
        steps.append(("real", "real images"))
    corruption, adversarial, real, robust = [], [], None, None
    with tqdm(steps, desc=f"assay of {name} ({structure}, {profile})", unit="step", disable=not progress) as bar:
        for kind, step in bar:
            bar.set_postfix_str(step)
            if kind == "clean":
                clean = clean_scores(adapted, test).assign(**tags)
            elif kind == "real":
                real = real_scores(adapted, cfg.image_size).assign(**tags)
            elif kind == "robust":
                robust = robust_table(cfg, adapted, test).assign(**tags)
            elif kind == "corruption":
                corruption.append(corruption_table(Config({**cfg, "corruptions": [step]}), adapted, test))
            else:  # one attack, or the random-sign noise baseline
                noise = step == "noise"
                adversarial.append(attack_table(cfg, adapted, test, attacks=[] if noise else [step],
                                                noise_baseline=noise))

    corruption = pd.concat(corruption, ignore_index=True).assign(**tags)
    adversarial = pd.concat(adversarial, ignore_index=True).assign(**tags)
    cancelled = [c for c in cancelled_corruptions(test.images, seed=cfg.seed) if c in cfg.corruptions]
    acting = corruption[~corruption.corruption.isin(cancelled)]
    if acting.empty:
        raise ValueError(f"corruptions: every one of {list(cfg.corruptions)} is cancelled by the study's z-score "
                         f"({cancelled}); add a corruption that acts (fmlib.corruptions.CORRUPTIONS)")
    summary = robustness_summary(acting, adversarial, attack=headline_attack(adversarial), by=("structure", "model"))
    summary.insert(summary.columns.get_loc("corruption_robustness"), "corrupted_iou", acting.iou.mean())
    summary["robust_iou"] = robust.iou.mean() if robust is not None else float("nan")
    parameters = {k: cfg[k] for k in ("profile", "seed", "image_size", "n_test", "n_attack_images", "attack_steps",
                                      "corruptions", "attacks", "eps_255", "ensemble_steps", "ensemble_max_steps",
                                      "ensemble_restarts", "ensemble_restart_losses", "ensemble_eps_255",
                                      "square_queries")}
    parameters.update(output=output, in_channels=in_channels, normalization=normalization, ensemble=ensemble)
    return AssayResult(name, structure, cfg.profile, clean, corruption, adversarial, summary, parameters, adapted,
                       test, real, robust, cancelled)


def real_scores(model: torch.nn.Module, tile: int) -> pd.DataFrame:
    """Per-tile IoU and Dice of `model` on the real nuclei test images (`fmlib.realdata.nuclei_tiles`,
    the sources of `fmlib.realdata.REAL_TEST_SOURCES`), as the real-image notebook scores them."""
    tiles = nuclei_tiles(tile)
    return pd.concat([clean_scores(model, tiles[source])[["tile", "iou", "dice"]].assign(source=source)
                      for source in REAL_TEST_SOURCES], ignore_index=True)[["source", "tile", "iou", "dice"]]


def worst_failures(result: AssayResult, k: int = 4) -> pd.DataFrame:
    """The `k` (corruption, severity, image) cases where your model lost the most IoU against its
    clean prediction of the same image."""
    check_int("k", k, low=1)
    table = result.corruption.assign(loss=result.corruption.clean_iou - result.corruption.iou)
    return table.sort_values(["loss", "severity"], ascending=[False, True]).head(k).reset_index(drop=True)


def demo_model(structure: str = "nuclei", profile: str = "smoke", *, seed: int = 0) -> torch.nn.Module:
    """A small U-Net (``sim_unet``) trained briefly on the profile's training data: the notebook's
    example when no model is given. Cached like every training of the study."""
    cfg = resolve(profile, seed=seed)
    config = train_config(cfg, "standard", model="sim_unet").replace(max_steps=min(cfg.max_steps, 200))
    return train("sim_unet", data_spec(cfg, structure), config, progress=False).model


def images_of(result: AssayResult, case) -> dict[str, np.ndarray]:
    """The clean and corrupted image, truth and prediction of one row of `worst_failures`: the
    corruption is drawn again exactly as `assess` drew it (same test set, seed and call)."""
    test = result.test
    corrupted = corrupt(test.images, case.corruption, int(case.severity), rng=result.parameters["seed"], dataset=test)
    i = int(case.image)
    return {"clean": test.images[i], "corrupted": corrupted[i], "truth": test.masks[i] > 0,
            "prediction": predict(result.model, corrupted[i:i + 1])[0]}
