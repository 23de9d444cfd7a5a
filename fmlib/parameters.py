"""Every parameter of the study: its check and its meaning (`PARAMETERS`).

The values at each profile are in `fmlib.profiles`. Vocabularies are read from the modules that own
them: structures from `fmlib.synthesis`, training regimes, losses and optimizers from
`fmlib.training`, corruption, model and attack names from their registries, model families from
`fmlib.models`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ._checks import check_choice, check_int, check_real
from .attacks import ATTACKS
from .attacks.ensemble import RESTART_LOSSES
from .corruptions import list_corruptions
from .models import MODELS, list_models
from .synthesis import list_structures
from .training import ADV_METHODS, LOSSES, OPTIMIZERS, REGIMES

PROFILE_NAMES = ("smoke", "standard", "paper")


@dataclass(frozen=True)
class Parameter:
    """A notebook parameter: how to check a value, and what it means."""

    check: Callable[[str, object], object]
    doc: str


def _positive_int(name, value):
    return check_int(name, value, low=1)


def _non_negative_int(name, value):
    return check_int(name, value, low=0)


def _image_size(name, value):
    value = check_int(name, value, low=32, high=4096)
    if value % 32:
        raise ValueError(f"{name}: expected a multiple of 32 (models downsample by 32), got {value}")
    return value


def _list_of(what: str, check_item):
    """A checker of a non-empty list whose items pass ``check_item(item_name, value)``."""

    def check(name, value):
        if not isinstance(value, (list, tuple)) or not value:
            raise ValueError(f"{name}: expected a non-empty list of {what}, got {value!r}")
        return [check_item(f"{name}[{i}]", v) for i, v in enumerate(value)]

    return check


def _one_of(choices):
    return lambda name, value: check_choice(name, value, choices)


def _boolean(name, value):
    if not isinstance(value, bool):
        raise ValueError(f"{name}: expected true or false, got {value!r}")
    return value


def _positive_real(name, value):
    return check_real(name, value, low=0.0, low_inclusive=False)


STRUCTURES = list_structures()
ALL_CORRUPTIONS = list_corruptions()
ALL_MODELS = list_models()
ALL_ATTACKS = list(ATTACKS)


def _widths(name, value):
    if not isinstance(value, dict):
        raise ValueError(f"{name}: expected a dict of model name -> width, got {value!r}")
    return {check_choice(f"{name} key", k, ALL_MODELS): check_real(f"{name}[{k!r}]", v, low=0.05, high=4.0)
            for k, v in value.items()}


#: What a recipe may set (`recipes`), and how each value is checked.
RECIPE_SETTINGS = {"lr": lambda n, v: check_real(n, v, low=0.0, low_inclusive=False, high=10.0),
                   "warmup_steps": _non_negative_int, "batch_size": _positive_int}
FAMILIES = tuple(sorted({spec.family for spec in MODELS.values()}))


def _recipes(name, value):
    if not isinstance(value, dict):
        raise ValueError(f"{name}: expected a dict of model family or model name -> recipe, got {value!r}")
    out = {}
    for target, recipe in value.items():
        check_choice(f"{name} key", target, [*FAMILIES, *MODELS])
        if not isinstance(recipe, dict) or set(recipe) - set(RECIPE_SETTINGS):
            raise ValueError(f"{name}[{target!r}]: expected a dict with keys among {', '.join(RECIPE_SETTINGS)}, "
                             f"got {recipe!r}")
        out[target] = {k: RECIPE_SETTINGS[k](f"{name}[{target!r}][{k!r}]", v) for k, v in recipe.items()}
    return out


_snr_levels = _list_of("SNR values", lambda n, v: check_real(n, v, low=0.0, low_inclusive=False))
_eps_levels = _list_of("budgets in grey levels", lambda n, v: check_real(n, v, low=0.0, high=255.0))
_structures = _list_of("structures", _one_of(STRUCTURES))

PARAMETERS: dict[str, Parameter] = {
    "profile": Parameter(_one_of(PROFILE_NAMES), "Profile name."),
    "seed": Parameter(_non_negative_int, "Master seed of every random draw."),
    "image_size": Parameter(_image_size, "Image side in pixels (a multiple of 32)."),
    "structures": Parameter(_structures, "Structures to simulate."),
    "snr_levels": Parameter(_snr_levels, "SNR levels of the noise ladder (clean = 8)."),
    "n_images_snr": Parameter(_positive_int, "Images per structure and SNR for the measured-SNR check."),
    "ptc_levels": Parameter(_positive_int, "Flat-field levels of the photon-transfer curve."),
    "ptc_frame_size": Parameter(_image_size, "Side of each photon-transfer flat field, in pixels."),
    "n_images_compare": Parameter(_positive_int, "Synthetic nuclei images compared with the real image."),
    "corruptions": Parameter(_list_of("corruption names", _one_of(ALL_CORRUPTIONS)),
                             "Corruptions to apply (names from fmlib.corruptions)."),
    "n_images_quality": Parameter(_positive_int, "Images per structure for the image-quality table."),
    "models": Parameter(_list_of("model names", _one_of(ALL_MODELS)), "Architectures to train (fmlib.models)."),
    "widths": Parameter(_widths, "Channel width multiplier per model (1.0 = the paper's size, the default)."),
    "regimes": Parameter(_list_of("training regimes", _one_of(REGIMES)),
                         "Training regimes: standard (the paper's: one acquisition at SNR 8), randomized "
                         "(acquisitions drawn per image), noise (augmentation), adversarial."),
    "n_train": Parameter(_positive_int, "Training images per structure and regime: the pool drawn from the "
                         "simulator that batches are drawn from, each with a random flip and rotation."),
    "n_val": Parameter(_positive_int, "Validation images per structure and regime, from the distribution the "
                       "regime trains on (checkpoint selection and the plateau rule)."),
    "n_test": Parameter(_positive_int, "Test images per structure (the clean, corrupted and attacked tables)."),
    "n_gate": Parameter(_positive_int, "Clean scenes per structure (SNR 8, none trained, validated or tested on) on "
                        "which the competence gate scores each run (`fmlib.runs.gate_set`): more than n_test, so "
                        "that the mean it judges has a small standard error."),
    "max_steps": Parameter(_positive_int, "The cap of a training run, in optimizer steps: it stops earlier once its "
                           "plateau rule holds (`fmlib.plateau`), and is not converged if it reaches the cap first."),
    "eval_every": Parameter(_positive_int, "Optimizer steps between two validations of a training run."),
    "patience": Parameter(_positive_int, "Validations without improvement that make a plateau (`fmlib.plateau`): "
                          "the first two halve the learning rate, the third ends the run as converged."),
    "competence_floor": Parameter(lambda n, v: check_real(n, v, low=0.0, high=1.0),
                                  "The clean IoU (SNR 8, on the n_gate scenes) that a converged model must reach to "
                                  "be competent (`fmlib.competence`); a model under it is flagged and never ranked."),
    "n_defense_seeds": Parameter(_positive_int, "Seeds of randomized, noise, adversarial (at most `n_seeds`)."),
    "recipes": Parameter(_recipes, "Training settings of a model family (\"transformer\") or of one model, over the "
                         "shared ones: `lr`, `warmup_steps` (linear warm-up), `batch_size`; a model's own settings "
                         "over its family's (`fmlib.grid.train_config`). Chosen on validation IoU, never on the test "
                         "set."),
    "batch_size": Parameter(_positive_int, "Training batch size."),
    "optimizer": Parameter(_one_of(OPTIMIZERS),
                           "adamw (cosine schedule) or sgd (the paper's: momentum 0.9, lr halved every 100 "
                           "epochs)."),
    "lr": Parameter(_positive_real, "Learning rate."),
    "loss": Parameter(_one_of(LOSSES),
                      "Training loss: bce (the paper's) or bce+dice (robust to thin, sparse foreground)."),
    "mixed_precision": Parameter(_boolean, "bfloat16 autocast for training and evaluation on CUDA (attacks keep "
                                           "float32 gradients); no effect on a CPU."),
    "defense_structures": Parameter(_structures, "Structures on which the defended regimes (noise, adversarial) "
                                    "are trained; the standard regime is trained on every structure."),
    "adv_method": Parameter(_one_of(ADV_METHODS),
                            "Adversarial training attack: pgd (the paper's) or fgsm_rs (fast, FGSM from a random "
                            "start)."),
    "adv_steps": Parameter(_positive_int, "PGD iterations of adversarial training."),
    "n_examples": Parameter(_positive_int, "Example predictions shown per structure."),
    "attacks": Parameter(_list_of("attack names", _one_of(ALL_ATTACKS)),
                         "Attacks to run (names from fmlib.attacks.ATTACKS)."),
    "eps_255": Parameter(_eps_levels, "Attack budgets in grey levels of an 8-bit image (eps * 255)."),
    "n_attack_images": Parameter(_positive_int, "Test images per structure that are attacked."),
    "attack_steps": Parameter(_positive_int, "Iterations of PGD, SegPGD and CosPGD."),
    "reference_model": Parameter(_one_of(ALL_MODELS), "Reference model of the corruption errors (CE, rCE)."),
    "n_boot": Parameter(_positive_int, "Bootstrap resamples of every confidence interval."),
    "threshold_seeds": Parameter(_list_of("seeds", lambda n, v: check_int(n, v, low=0)), "Seeds of the matched "
                                 "images over which the advice's realism thresholds are re-derived (10)."),
    "validation_tiles": Parameter(_positive_int, "Labelled 192 px tiles per real source (evenly spaced) that rank the "
                                  "candidates in the advice's validation (10); the sources have 4 to 56."),
    "kernel_threads": Parameter(_positive_int, "Torch threads of every notebook kernel (read by the runner): float "
                                "sums depend on it, so it enters each notebook's key (same parameters, same bytes)."),
    "real_epochs": Parameter(_positive_int, "Epochs of the model trained on real images (the sim-to-real reference)."),
    "attainable_iou_steps": Parameter(_positive_int, "Adam steps of the attainable-IoU search (03)."),
    "randomization_strengths": Parameter(
        _list_of("numbers in [0, 1]", lambda n, v: check_real(n, v, low=0.0, high=1.0)),
        "Strengths of the domain randomization tried for sim-to-real transfer (`fmlib.domain.PhysicsRanges.scaled`); "
        "the one with the best IoU on the real training images is kept."),
    "training_randomization": Parameter(
        lambda n, v: check_real(n, v, low=0.0, high=1.0),
        "Strength of the domain randomization of every training set's acquisition (`fmlib.domain.PhysicsRanges."
        "scaled`): 0.5, the strength the real BBBC007 training images chose among 0.25, 0.5 and 1 in the standard "
        "run of commit 191973e (issue #20); 0 is the paper's protocol, one acquisition at SNR 8, kept as the "
        "ablation. Test sets stay one acquisition at SNR 8."),
    "sim_to_real_bar_iou": Parameter(lambda n, v: check_real(n, v, low=0.0, high=1.0),
                                     "The sim-to-real bar: the IoU on the expert-labelled DSB image that the best "
                                     "synthetic-trained model (chosen on the selection source) must reach, beside "
                                     "beating Otsu plus watershed."),
    "n_seeds": Parameter(_positive_int, "Training seeds (seed, seed + 1, ...) of every model and regime on "
                         "`seed_structures`; the other structures train the first seed only."),
    "seed_structures": Parameter(_structures, "Structures whose models are trained with `n_seeds` seeds."),
    "ensemble_steps": Parameter(_positive_int, "APGD iterations per loss of the attack ensemble (the robust IoU)."),
    "ensemble_max_steps": Parameter(_positive_int, "The most APGD iterations per run of the ensemble: a run whose IoU "
                                    "curve is still falling after `ensemble_steps` goes on, as many again at a time, "
                                    "up to this many (`fmlib.attacks.continue_until_converged`; at least "
                                    "`ensemble_steps`)."),
    "ensemble_eps_255": Parameter(_eps_levels, "Budgets (grey levels) of the attack ensemble's robust IoU; on a CPU a "
                                  "subset of `eps_255`, to fit the time budget."),
    "ensemble_restart_losses": Parameter(_one_of(RESTART_LOSSES), "Which losses of the ensemble get its random "
                                         "restarts: \"all\", or \"best\", the loss whose clean-start run found the "
                                         "most worst cases (`fmlib.attacks.worst_case`; halves what restarts cost on a "
                                         "CPU)."),
    "ensemble_restarts": Parameter(_positive_int, "APGD runs per loss of the ensemble (the first from the clean "
                                   "image, the others from random points)."),
    "square_queries": Parameter(_non_negative_int, "Queries per image of the ensemble's gradient-free Square Attack, "
                                "run after the gradient members on the images not yet fooled "
                                "(`fmlib.attacks.Square`; 0: no Square member)."),
    "l2_structures": Parameter(_structures, "Structures on which the first seed of every standard model also meets the "
                               "L2 ensemble at the RMS-matched budget of each L-inf one (`fmlib.threat_models`)."),
    "transfer_surrogate": Parameter(_one_of(ALL_MODELS), "The model whose PGD examples are transferred to every other "
                                    "model (its own: from its second seed, where trained)."),
    "defense_attack": Parameter(_one_of(ALL_ATTACKS),
                                "The attack that measures the adversarial robustness of defended models."),
}
