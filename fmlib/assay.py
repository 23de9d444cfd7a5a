"""Assess your own model: the study's assay applied to any segmentation network.

`assess` runs a model through the same test set, corruptions (every severity) and attacks (every
budget) as the study's notebooks at a profile, and returns the same tidy tables. `compare` ranks it
among the study's reference models (``results/<profile>/``), and `findings` applies the book's
rules to it. The contract of a model:

    float images (N, 1, H, W) in [0, 1]  ->  foreground logits (N, 1, H, W), H and W multiples of 32,
    differentiable with respect to the input (the attacks need its gradient).

`resolution` says whether the model's output grid (its output stride) limits it on the structure.
`Adapter` wraps models with other conventions: two-channel softmax outputs (``output="softmax2"``),
sigmoid probabilities (``output="probabilities"``), three-channel input (``in_channels=3``) and their
own input normalization (``normalization="zscore"``, ``"imagenet"`` or ``(mean, std)``).

**Safety.** A TorchScript file or an import path (``package.module:factory``) runs its author's code
when loaded: load only models you trust. State dicts load with ``torch.load(weights_only=True)``.

Examples
--------
>>> from fmlib.models import create_model
>>> result = assess(create_model("sim_unet"), "nuclei", profile="smoke", progress=False)  # doctest: +SKIP
>>> result.summary[["clean_iou", "corruption_robustness", "adversarial_robustness"]]  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ._checks import check_choice, check_int, check_real

if TYPE_CHECKING:  # annotations only: pandas is imported where it is used
    import pandas

CONTRACT = ("a model must map float images (N, 1, H, W) in [0, 1] to foreground logits (N, 1, H, W), for H and "
            "W multiples of 32, differentiably; adapt other conventions with output= ('logits', "
            "'probabilities', 'softmax2'), in_channels= (1 or 3) and normalization= ('none', 'zscore', "
            "'imagenet' or (mean, std))")
OUTPUTS = ("logits", "probabilities", "softmax2")
NORMALIZATIONS = ("none", "zscore", "imagenet")
IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


class Adapter(torch.nn.Module):
    """Wrap `model` so that it follows the assay's contract (module docstring).

    Parameters
    ----------
    model : torch.nn.Module
    output : {"logits", "probabilities", "softmax2"}
        What the model returns: one foreground logit channel, one sigmoid probability channel, or
        two class logits (background, foreground) of a softmax; the foreground log-odds are returned.
    in_channels : {1, 3}
        Input channels the model expects; a grey image is repeated into three.
    normalization : "none", "zscore", "imagenet" or (mean, std)
        Normalization the model expects on its input in [0, 1]: none, per-image z-score, ImageNet's
        mean and std, or given ones (scalars or one per channel).
    """

    def __init__(self, model: torch.nn.Module, *, output: str = "logits", in_channels: int = 1,
                 normalization: str | tuple = "none"):
        super().__init__()
        self.model = model
        self.output = check_choice("output", output, OUTPUTS)
        self.in_channels = check_int("in_channels", in_channels, low=1, high=3)
        if self.in_channels == 2:
            raise ValueError(f"in_channels: expected 1 or 3, got {in_channels}")
        if isinstance(normalization, str):
            check_choice("normalization", normalization, NORMALIZATIONS)
            mean_std = IMAGENET_MEAN_STD if normalization == "imagenet" else None
        else:
            if not (isinstance(normalization, (tuple, list)) and len(normalization) == 2):
                raise ValueError(f"normalization: expected 'none', 'zscore', 'imagenet' or (mean, std), got "
                                 f"{normalization!r}")
            mean_std = normalization
        self.zscore = normalization == "zscore"
        if mean_std is not None:
            mean, std = (torch.as_tensor(v, dtype=torch.float32).reshape(-1, 1, 1) for v in mean_std)
            if (std <= 0).any():
                raise ValueError(f"normalization: std must be positive, got {mean_std[1]!r}")
            self.register_buffer("mean", mean[None])
            self.register_buffer("std", std[None])
        else:
            self.mean = self.std = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.zscore:
            flat = x.flatten(1)
            x = (x - flat.mean(1).view(-1, 1, 1, 1)) / (flat.std(1).view(-1, 1, 1, 1) + 1e-6)
        if self.in_channels == 3:
            x = x.expand(-1, 3, -1, -1)
        if self.mean is not None:
            x = (x - self.mean) / self.std
        out = self.model(x)
        if isinstance(out, dict):  # torchvision segmentation models return {"out": ..., "aux": ...}
            out = out["out"]
        elif isinstance(out, (tuple, list)):
            out = out[0]
        if self.output == "softmax2":
            return out[:, 1:2] - out[:, 0:1]  # log-odds of the foreground class
        if self.output == "probabilities":
            return torch.logit(out.clamp(1e-6, 1 - 1e-6))
        return out


def check_contract(model: torch.nn.Module, size: int = 64, device: str | torch.device = "cpu") -> None:
    """Raise ValueError stating the contract unless `model` maps (2, 1, size, size) images in [0, 1]
    to finite (2, 1, size, size) logits that are differentiable with respect to the input."""
    x = torch.rand(2, 1, size, size, generator=torch.Generator().manual_seed(0)).to(device).requires_grad_(True)
    was_training = model.training
    model.eval()
    try:
        out = model(x)
    except Exception as err:  # noqa: BLE001 - any failure of a foreign model is reported with the contract
        raise ValueError(f"model: failed on a (2, 1, {size}, {size}) batch ({type(err).__name__}: {err}); "
                         f"{CONTRACT}") from err
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor):
        raise ValueError(f"model: returned {type(out).__name__}, not a tensor; {CONTRACT}")
    if tuple(out.shape) != (2, 1, size, size):
        raise ValueError(f"model: returned shape {tuple(out.shape)} for input (2, 1, {size}, {size}); {CONTRACT}")
    if not out.is_floating_point() or not torch.isfinite(out).all():
        raise ValueError(f"model: returned non-finite or non-float logits ({out.dtype}); {CONTRACT}")
    if not out.requires_grad:
        raise ValueError(f"model: its output does not depend differentiably on the input; {CONTRACT}")


def load_model(path: str | Path | None = None, *, factory: str | None = None, weights: str | Path | None = None,
               device: str | torch.device = "cpu") -> torch.nn.Module:
    """Load a model to assess: a TorchScript file (`path`), or ``package.module:function`` (`factory`,
    called without arguments) plus an optional state-dict file (`weights`, loaded with
    ``weights_only=True``). Both ways run the author's code: load only models you trust.
    """
    if (path is None) == (factory is None):
        raise ValueError("model: give either path (a TorchScript file) or factory ('package.module:function')")
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"path: no model file at {path}")
        try:
            return torch.jit.load(str(path), map_location=device)
        except RuntimeError as err:
            raise ValueError(f"path: {path} is not a TorchScript file ({err.__class__.__name__}); export one "
                             "with torch.jit.trace(model, example).save(path), or pass factory= and weights= for a "
                             "state dict") from err
    module_name, sep, function = factory.partition(":")
    if not sep or not module_name or not function:
        raise ValueError(f"factory: expected 'package.module:function', got {factory!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"factory: cannot import {module_name!r} ({err})") from err
    if not callable(getattr(module, function, None)):
        raise ValueError(f"factory: {module_name!r} has no function {function!r}")
    model = getattr(module, function)()
    if weights is not None:
        weights = Path(weights)
        if not weights.is_file():
            raise FileNotFoundError(f"weights: no state-dict file at {weights}")
        model.load_state_dict(torch.load(weights, map_location=device, weights_only=True))
    return model.to(device)


@dataclass
class AssayResult:
    """The assay of one model: per-image tables like the study's, and a one-row summary."""

    name: str
    structure: str
    profile: str
    clean: "pandas.DataFrame"         # image, iou, dice, precision, recall
    corruption: "pandas.DataFrame"    # image, corruption, family, severity, iou, dice, clean_iou
    adversarial: "pandas.DataFrame"   # image, attack, eps, eps_255, iou, dice, clean_iou, robustness
    summary: "pandas.DataFrame"       # clean_iou, corruption_robustness, adversarial_robustness
    parameters: dict = field(default_factory=dict)
    model: torch.nn.Module | None = None  # the adapted model that was assessed
    test: object = None                   # the synthesis Dataset it was assessed on
    real: "pandas.DataFrame | None" = None  # nuclei only: source, tile, iou, dice on the real test images


def headline_attack(adversarial: "pandas.DataFrame") -> str:
    """The attack that the robustness summaries quote: PGD where it was run (the paper's), else the
    first attack of the table."""
    return "pgd" if (adversarial.attack == "pgd").any() else adversarial.attack.iloc[0]


def with_robustness(corruption: "pandas.DataFrame") -> "pandas.DataFrame":
    """`corruption` with a ``robustness`` column: the paper's per-image corrupted/clean IoU ratio."""
    from .metrics import robustness_ratio

    return corruption.assign(robustness=robustness_ratio(corruption.iou, corruption.clean_iou))


def assess(model: torch.nn.Module, structure: str, profile: str = "standard", *, name: str = "your_model",
           output: str = "logits", in_channels: int = 1, normalization: str | tuple = "none", device: str = "auto",
           progress: bool = True, **overrides) -> AssayResult:
    """Run `model` through the study's assay of `structure` at `profile`.

    The test images, corruptions, severities, attacks, budgets and seeds are those of the profile
    (`fmlib.study.PROFILES`; `overrides` change them, like ``fmrobust run --set``), so the tables
    line up image by image with the reference models' tables of ``results/<profile>/``.
    """
    from tqdm.auto import tqdm

    from . import grid
    from .study import STRUCTURE_NAMES, Config, resolve
    from .training import resolve_device

    check_choice("structure", structure, STRUCTURE_NAMES)
    cfg = resolve(profile, **overrides)
    device = resolve_device(device)
    adapted = Adapter(model, output=output, in_channels=in_channels, normalization=normalization).to(device).eval()
    check_contract(adapted, cfg.image_size, device)
    test = grid.test_set(cfg, structure)
    tags = {"model": name, "structure": structure}
    import pandas as pd

    # One bar over the whole assay: the clean pass, each corruption (all severities), each attack
    # (all budgets) and the random-sign noise baseline.
    steps = [("clean", "clean"), *(("corruption", c) for c in cfg.corruptions), *(("attack", a) for a in cfg.attacks),
             ("attack", "noise")]
    if structure == "nuclei":  # the real nuclei images of the real-image notebook, tiled the same way
        steps.append(("real", "real images"))
    corruption, adversarial, real = [], [], None
    with tqdm(steps, desc=f"assay of {name} ({structure}, {profile})", unit="step", disable=not progress) as bar:
        for kind, step in bar:
            bar.set_postfix_str(step)
            if kind == "clean":
                clean = grid.test_scores(adapted, test).assign(**tags)
            elif kind == "real":
                real = real_scores(adapted, cfg.image_size).assign(**tags)
            elif kind == "corruption":
                corruption.append(grid.corruption_table(Config({**cfg, "corruptions": [step]}), adapted, test))
            else:  # one attack, or the random-sign noise baseline
                noise = step == "noise"
                adversarial.append(grid.attack_table(cfg, adapted, test, attacks=[] if noise else [step],
                                                     noise_baseline=noise))

    corruption = pd.concat(corruption, ignore_index=True).assign(**tags)
    adversarial = pd.concat(adversarial, ignore_index=True).assign(**tags)
    summary = grid.robustness_summary(corruption, adversarial, attack=headline_attack(adversarial),
                                      by=("structure", "model"))
    parameters = {k: cfg[k] for k in ("profile", "seed", "image_size", "n_test", "n_attack_images", "attack_steps",
                                      "corruptions", "attacks", "eps_255")}
    parameters.update(output=output, in_channels=in_channels, normalization=normalization)
    return AssayResult(name, structure, cfg.profile, clean, corruption, adversarial, summary, parameters, adapted,
                       test, real)


def real_scores(model: torch.nn.Module, tile: int) -> "pandas.DataFrame":
    """Per-tile IoU and Dice of `model` on the real nuclei test images (`fmlib.realdata.nuclei_tiles`,
    the sources of `fmlib.recommendations.REAL_TEST_SOURCES`), as the real-image notebook scores them."""
    import pandas as pd

    from .grid import test_scores
    from .realdata import nuclei_tiles
    from .recommendations import REAL_TEST_SOURCES

    tiles = nuclei_tiles(tile)
    return pd.concat([test_scores(model, tiles[source])[["tile", "iou", "dice"]].assign(source=source)
                      for source in REAL_TEST_SOURCES], ignore_index=True)[["source", "tile", "iou", "dice"]]


def reference_tables(profile: str, structure: str, root: str | Path | None = None) -> dict[str, "pandas.DataFrame"]:
    """The study's tables of the reference models (standard training) for `structure`: ``clean``,
    ``corruption`` and ``adversarial``, read from ``results/<profile>/`` of the study at `root`; for
    nuclei also ``real`` (their per-tile scores on the real test images), when the real-image notebook
    has written it."""
    import pandas as pd

    from .study import find_root

    folder = (Path(root) if root is not None else find_root()) / "results" / profile
    files = {"clean": "03_training_test_scores.csv", "corruption": "04_corruption.csv.gz",
             "adversarial": "05_adversarial.csv"}
    tables = {}
    for key, file in files.items():
        path = folder / file
        if not path.exists():
            raise FileNotFoundError(f"reference: {path} is missing; run the study first "
                                    f"(fmrobust run --profile {profile})")
        table = pd.read_csv(path)
        table = table[table.structure == structure]
        if "regime" in table:
            table = table[table.regime == "standard"]
        if table.empty:
            raise ValueError(f"reference: {path} has no {structure!r} rows; expected one of "
                             f"{sorted(pd.read_csv(path).structure.unique())}")
        tables[key] = table.reset_index(drop=True)
    real = folder / "07_real_scores.csv"
    if structure == "nuclei" and real.exists():
        from .recommendations import REAL_TEST_SOURCES

        table = pd.read_csv(real)
        models = set(tables["clean"].model)
        table = table[(table.regime == "standard") & table.method.isin(models) & table.source.isin(REAL_TEST_SOURCES)]
        tables["real"] = table.rename(columns={"method": "model"}).reset_index(drop=True)
    return tables


def _check_aligned(result: AssayResult, reference: dict) -> None:
    n_ref = reference["clean"].groupby("model").image.nunique().min()
    if n_ref != result.clean.image.nunique():
        raise ValueError(f"reference: its models were tested on {n_ref} images, the assay on "
                         f"{result.clean.image.nunique()}; use the profile (and overrides) of the reference run")


def compare(result: AssayResult, reference: dict, *, n_boot: int = 2000, seed: int = 0) -> "pandas.DataFrame":
    """Your model among the reference models: clean IoU, corruption robustness and adversarial
    robustness (the attack of `result.summary`), and for nuclei the IoU on the real test images, each
    with its rank (1 = best) and a 95 % bootstrap interval of the rank (test images or real tiles
    resampled jointly for all models)."""
    import pandas as pd

    from .grid import robustness_summary
    from .metrics import bootstrap_ranks

    _check_aligned(result, reference)
    clean = pd.concat([reference["clean"], result.clean], ignore_index=True)
    corruption = pd.concat([reference["corruption"], result.corruption], ignore_index=True)
    adversarial = pd.concat([reference["adversarial"], result.adversarial], ignore_index=True)
    attack = headline_attack(adversarial)
    table = robustness_summary(corruption, adversarial, attack=attack, by=("model",))
    adv = adversarial[adversarial.attack == attack]
    for label, frame, value in (("clean", clean, "iou"), ("corruption", with_robustness(corruption), "robustness"),
                                ("adversarial", adv, "robustness")):
        ranks = bootstrap_ranks(frame, value, n_boot=n_boot, seed=seed)
        table = table.merge(ranks.rename(columns={c: f"{label}_{c}" for c in ranks.columns if c != "model"}),
                            on="model")
    if result.real is not None and "real" in reference:
        real = pd.concat([reference["real"], result.real], ignore_index=True)  # tile names start with the source
        ranks = bootstrap_ranks(real, "iou", unit="tile", n_boot=n_boot, seed=seed)
        table = table.merge(ranks.rename(columns={"mean": "real_iou", **{c: f"real_{c}" for c in ranks.columns
                                                                           if c not in ("model", "mean")}}),
                            on="model", how="left")
    table.insert(1, "yours", table.model == result.name)
    return table.sort_values("corruption_robustness", ascending=False).reset_index(drop=True)


def findings(result: AssayResult, comparison: "pandas.DataFrame", *, n_boot: int = 2000,
             seed: int = 0) -> "pandas.DataFrame":
    """The book's recommendations applied to your model: for clean accuracy, corruption robustness,
    adversarial robustness and (nuclei) real-image IoU, your model's mean with a 95 % bootstrap
    interval over test images (or real tiles) against the median reference model. Verdict: *above* or *below* the median (the interval excludes it) or
    *comparable*; each with what to do about it."""
    import pandas as pd

    from .metrics import bootstrap_ci

    refs = comparison[~comparison.yours]
    adv = result.adversarial[result.adversarial.attack == headline_attack(result.adversarial)]
    per_image = {"clean_iou": result.clean.set_index("image").iou,
                 "corruption_robustness": with_robustness(result.corruption).groupby("image").robustness.mean(),
                 "adversarial_robustness": adv.groupby("image").robustness.mean()}
    advice = {
        "clean_iou": ("Your model segments clean images better than the median reference model.",
                      "Your model is less accurate on clean images than the median reference: check its "
                      "training before its robustness."),
        "corruption_robustness": ("Your model keeps more of its accuracy under corruptions than the median "
                                  "reference model.",
                                  "Your model loses more accuracy under corruptions than the median reference: "
                                  "train with noise augmentation and check the worst corruptions below."),
        "adversarial_robustness": ("Your model resists attacks better than the median reference model.",
                                   "Your model is more vulnerable to attacks than the median reference: use "
                                   "adversarial training if inputs may be manipulated."),
        "real_iou": ("Your model segments the real nuclei images better than the median reference model (all "
                     "trained on synthetic images only).",
                     "Your model segments the real nuclei images worse than the median reference model: the study "
                     "finds that training on randomized acquisitions (fmlib.domain) and adversarial training both "
                     "help on real images."),
    }
    if result.real is not None and "real_iou" in comparison:
        per_image["real_iou"] = result.real.iou
    rows = []
    for metric, values in per_image.items():
        est, lo, hi = bootstrap_ci(values.to_numpy(), n_boot=n_boot, seed=seed)
        median = float(refs[metric].median())
        verdict = "above" if lo > median else ("below" if hi < median else "comparable")
        text = advice[metric][0] if verdict == "above" else (
            advice[metric][1] if verdict == "below" else "Your model is within the reference models' middle range.")
        rows.append({"metric": metric, "yours": est, "ci_low": lo, "ci_high": hi, "reference_median": median,
                     "reference_best": float(refs[metric].max()), "verdict": verdict, "recommendation": text})
    return pd.DataFrame(rows)


def resolution(result: AssayResult, *, loss: str | None = None,
               costly: float = 0.95) -> "pandas.DataFrame":
    """Does the output grid of your model limit it on this structure? One row: the model's output
    stride (`fmlib.resolution.output_stride`), its clean IoU, and the mean IoU that logit maps at that
    stride reach when fitted to the true test masks (`fmlib.resolution.attainable_iou`), with the
    training loss `loss` (default: the profile's) and by the IoU search.

    The verdict calls the stride *limiting* when the maps fitted with the loss reach less than
    `costly` on this structure. A model whose clean IoU is near that value cannot gain much by training
    longer; a finer decoder is what helps. It is *not limiting* otherwise, and stride 1 never is.

    Examples
    --------
    >>> resolution(assess(create_model("pspnet", width=0.25), "er", "smoke"))  # doctest: +SKIP
    """
    import pandas as pd

    from .resolution import attainable_iou, output_stride
    from .study import resolve
    from .training import LOSSES

    loss = resolve(result.profile).loss if loss is None else check_choice("loss", loss, LOSSES)
    costly = check_real("costly", costly, low=0.0, high=1.0)
    masks = result.test.masks > 0
    stride = output_stride(result.model, size=masks.shape[-1])
    clean = float(result.clean.iou.mean())
    fitted = float(attainable_iou(masks, stride, objective=loss).mean())
    best = float(attainable_iou(masks, stride, objective="iou").mean())
    limiting, share = fitted < costly, clean / fitted
    if limiting:
        advice = (f"At output stride {stride}, even logit maps fitted to the true {result.structure} masks reach only "
                  f"{fitted:.2f} IoU with the training loss ({best:.2f} at best); your model reaches {share:.0%} of "
                  f"that. " + ("Training longer cannot carry it much further: " if share >= 0.9 else
                              "Its training falls short as well, and beyond that its stride caps it: ") +
                  f"give it a finer output (stride {max(stride // 2, 1)} or less), as the book recommends for thin "
                  f"structures.")
    else:
        advice = (f"Output stride {stride} costs little on {result.structure}: logit maps at that stride fitted to the "
                  f"true masks reach {fitted:.2f} IoU.")
    return pd.DataFrame([{"model": result.name, "structure": result.structure, "output_stride": stride,
                          "clean_iou": clean, f"attainable_iou ({loss})": fitted, "attainable_iou (iou search)": best,
                          "share_of_attainable": share, "verdict": "limiting" if limiting else "not limiting",
                          "recommendation": advice}])


def worst_failures(result: AssayResult, k: int = 4) -> "pandas.DataFrame":
    """The `k` (corruption, severity, image) cases where your model lost the most IoU against its
    clean prediction of the same image."""
    check_int("k", k, low=1)
    table = result.corruption.assign(loss=result.corruption.clean_iou - result.corruption.iou)
    return table.sort_values(["loss", "severity"], ascending=[False, True]).head(k).reset_index(drop=True)


def demo_model(structure: str = "nuclei", profile: str = "smoke", *, seed: int = 0) -> torch.nn.Module:
    """A small U-Net (``sim_unet``) trained briefly on the profile's training data: the notebook's
    example when no model is given. Cached like every training of the study."""
    from . import grid
    from .study import resolve
    from .training import train

    cfg = resolve(profile, seed=seed)
    config = grid.train_config(cfg, "standard").replace(epochs=max(3, min(cfg.epochs, 10)))
    return train("sim_unet", grid.data_spec(cfg, structure), config, progress=False).model


def images_of(result: AssayResult, case) -> dict[str, np.ndarray]:
    """The clean and corrupted image, truth and prediction of one row of `worst_failures`: the
    corruption is drawn again exactly as `assess` drew it (same test set, seed and call)."""
    from .corruptions import corrupt
    from .training import predict

    test = result.test
    corrupted = corrupt(test.images, case.corruption, int(case.severity), rng=result.parameters["seed"], dataset=test)
    i = int(case.image)
    return {"clean": test.images[i], "corrupted": corrupted[i], "truth": test.masks[i] > 0,
            "prediction": predict(result.model, corrupted[i:i + 1])[0]}
