"""Your model among the study's reference models: ranks, findings, and what its output stride allows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .._checks import check_choice, check_real
from ..evaluation import robustness_summary
from ..metrics import bootstrap_ci, bootstrap_ranks, ratio_of_means
from ..paths import find_root
from ..profiles import resolve
from ..realdata import REAL_TEST_SOURCES
from ..resolution import attainable_iou, output_stride
from ..training import LOSSES
from .assess import AssayResult, headline_attack


def reference_tables(profile: str, structure: str, root: str | Path | None = None) -> dict[str, pd.DataFrame]:
    """The study's tables of the reference models (standard training, first seed) for `structure`:
    ``clean``, ``corruption`` and ``adversarial``, read from ``results/<profile>/`` of the study at
    `root`; also ``robust`` (the attack ensemble's worst case, from the adversarial notebook) when the
    run wrote it, for nuclei ``real`` (their per-tile scores on the real test images), when the
    real-image notebook has written it, and ``parameters`` (a dict: the run's parameters, from its
    manifest), against which `compare` checks the assay's attack iterations."""
    folder = (Path(root) if root is not None else find_root()) / "results" / profile
    files = {"clean": "03_training_test_scores.csv", "corruption": "04_corruption.csv.gz",
             "adversarial": "05_adversarial.csv", "robust": "05_robust.csv"}
    optional = {"robust"}
    tables = {}
    for key, file in files.items():
        path = folder / file
        if not path.exists():
            if key in optional:
                continue
            raise FileNotFoundError(f"reference: {path} is missing; run the study first "
                                    f"(fmrobust run --profile {profile})")
        table = pd.read_csv(path)
        table = table[table.structure == structure]
        if "regime" in table:
            table = table[table.regime == "standard"]
        if "seed" in table:  # one training run per reference model, as yours is one: the first seed
            table = table[table.seed == table.seed.min()]
        if table.empty:
            raise ValueError(f"reference: {path} has no {structure!r} rows; expected one of "
                             f"{sorted(pd.read_csv(path).structure.unique())}")
        tables[key] = table.reset_index(drop=True)
    manifest = folder / "manifest.json"
    if manifest.exists():  # the attack budgets that the tables cannot show (iterations, restarts)
        tables["parameters"] = json.loads(manifest.read_text())["parameters"]
    real = folder / "07_real_scores.csv"
    if structure == "nuclei" and real.exists():
        table = pd.read_csv(real)
        models = set(tables["clean"].model)
        table = table[(table.regime == "standard") & table.method.isin(models) & table.source.isin(REAL_TEST_SOURCES)]
        tables["real"] = table.rename(columns={"method": "model"}).reset_index(drop=True)
    return tables


#: Attack parameters that no reference table shows but that change its scores: the assay must use the
#: reference run's values (read from its manifest) to be ranked against it.
_ATTACK_BUDGET = ("attack_steps", "ensemble_steps", "ensemble_max_steps", "ensemble_restarts",
                  "ensemble_restart_losses", "square_queries")


def _check_aligned(result: AssayResult, reference: dict) -> None:
    n_ref = reference["clean"].groupby("model").image.nunique().min()
    if n_ref != result.clean.image.nunique():
        raise ValueError(f"reference: its models were tested on {n_ref} images, the assay on "
                         f"{result.clean.image.nunique()}; use the profile (and overrides) of the reference run")
    theirs = reference.get("parameters", {})
    ensemble = result.robust is not None and "robust" in reference
    names = _ATTACK_BUDGET if ensemble else ("attack_steps",)  # without a robust rank, the ensemble's don't matter
    for name in names:
        if name in theirs and name in result.parameters and theirs[name] != result.parameters[name]:
            raise ValueError(f"reference: its attacks ran with {name}={theirs[name]}, the assay with "
                             f"{result.parameters[name]}; use the profile (and overrides) of the reference run")


def compare(result: AssayResult, reference: dict, *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Your model among the reference models, ranked on absolute scores: clean IoU, corrupted IoU
    (over the corruptions that act, `AssayResult.cancelled` left out as in the study), attacked IoU
    (the attack of `result.summary`), the robust IoU under the attack ensemble (where both your assay
    and the reference run have it), and for nuclei the IoU on the real test images. Each comes with
    its rank (1 = best) and a 95 % bootstrap interval of the rank (test images or real tiles resampled
    jointly for all models). The paper's ratios (``corruption_robustness``, ``adversarial_robustness``)
    stay beside them as secondary columns, with ranks of their own. Sorted by corrupted IoU."""
    _check_aligned(result, reference)
    clean = pd.concat([reference["clean"], result.clean], ignore_index=True)
    corruption = pd.concat([reference["corruption"], result.corruption], ignore_index=True)
    corruption = corruption[~corruption.corruption.isin(result.cancelled)]
    adversarial = pd.concat([reference["adversarial"], result.adversarial], ignore_index=True)
    attack = headline_attack(adversarial)
    table = robustness_summary(corruption, adversarial, attack=attack, by=("model",))
    adv = adversarial[adversarial.attack == attack]
    scores = [("clean", clean, "iou"), ("corruption", corruption, "iou"), ("adversarial", adv, "iou")]
    if result.robust is not None and "robust" in reference:
        ours, theirs = sorted(result.robust.eps_255.unique()), sorted(reference["robust"].eps_255.unique())
        if ours != theirs:
            raise ValueError(f"reference: its attack ensemble ran at eps_255 {theirs}, the assay at {ours}; use the "
                             f"profile (and overrides) of the reference run")
        attacked = set(result.robust.image)
        if any(set(images) != attacked for _, images in reference["robust"].groupby("model").image):
            raise ValueError(f"reference: its attack ensemble attacked other images than the assay's "
                             f"{sorted(attacked)}; use the profile (and overrides) of the reference run")
        scores.append(("robust", pd.concat([reference["robust"], result.robust], ignore_index=True), "iou"))
    scores += [("corruption_ratio", corruption, "iou"), ("adversarial_ratio", adv, "iou")]
    for label, frame, value in scores:
        over = "clean_iou" if label.endswith("_ratio") else None  # the paper's ratio, as the ratio of the means
        ranks = bootstrap_ranks(frame, value, over=over, n_boot=n_boot, seed=seed)
        if label == "robust":  # a reference model without an ensemble run keeps its row, without a robust rank
            ranks = ranks.rename(columns={"mean": "robust_iou"})
        table = table.merge(ranks.rename(columns={c: f"{label}_{c}" for c in ranks.columns
                                                  if c not in ("model", "robust_iou")}), on="model",
                            how="left" if label == "robust" else "inner")
    if result.real is not None and "real" in reference:
        real = pd.concat([reference["real"], result.real], ignore_index=True)  # tile names start with the source
        ranks = bootstrap_ranks(real, "iou", unit="tile", n_boot=n_boot, seed=seed)
        table = table.merge(ranks.rename(columns={"mean": "real_iou", **{c: f"real_{c}" for c in ranks.columns
                                                                           if c not in ("model", "mean")}}),
                            on="model", how="left")
    table.insert(1, "yours", table.model == result.name)
    table = table.rename(columns={"corruption_mean": "corrupted_iou", "adversarial_mean": "attacked_iou"})
    return table.sort_values("corrupted_iou", ascending=False).reset_index(drop=True)


ADVICE = {  # metric: (text when your model is above the median reference, text when below)
    "clean_iou": ("Your model segments clean images better than the median reference model.",
                  "Your model is less accurate on clean images than the median reference: check its "
                  "training before its robustness."),
    "corrupted_iou": ("Your model segments corrupted images better than the median reference model.",
                      "Your model segments corrupted images worse than the median reference: train with noise "
                      "augmentation and check the worst corruptions below."),
    "attacked_iou": ("Your model keeps more IoU under the attack than the median reference model.",
                     "Your model keeps less IoU under the attack than the median reference: use adversarial "
                     "training if inputs may be manipulated."),
    "robust_iou": ("Your model keeps more IoU under the attack ensemble than the median reference model; before "
                   "calling it robust, check that its APGD runs converged and that FGSM did not beat the iterative "
                   "attacks (the ensemble table's converged and member columns).",
                   "Your model keeps less IoU under the attack ensemble than the median reference: use "
                   "adversarial training if inputs may be manipulated."),
    "real_iou": ("Your model segments the real nuclei images better than the median reference model (all "
                 "trained on synthetic images only).",
                 "Your model segments the real nuclei images worse than the median reference model: the study "
                 "finds that training on randomized acquisitions (fmlib.domain) and adversarial training both "
                 "help on real images."),
    "corruption_robustness": ("Your model keeps a larger share of its own clean IoU under corruptions (the paper's "
                              "ratio; a low clean IoU raises it, so read it after the absolute scores).",
                              "Your model keeps a smaller share of its own clean IoU under corruptions (the "
                              "paper's ratio; secondary to the absolute scores)."),
    "adversarial_robustness": ("Your model keeps a larger share of its own clean IoU under the attack (the paper's "
                               "ratio; secondary to the absolute scores).",
                               "Your model keeps a smaller share of its own clean IoU under the attack (the "
                               "paper's ratio; secondary to the absolute scores)."),
}


def findings(result: AssayResult, comparison: pd.DataFrame, *, n_boot: int = 2000,
             seed: int = 0) -> pd.DataFrame:
    """The book's recommendations applied to your model. Absolute scores first: clean IoU, corrupted
    IoU, attacked IoU, robust IoU under the attack ensemble (when assessed) and for nuclei the IoU on
    the real images; then the paper's two ratios, marked ``secondary``. Each row gives your model's
    mean with a 95 % bootstrap interval over test images (or real tiles) against the median reference
    model. Verdict: *above* or *below* the median (the interval excludes it) or *comparable*; each
    with what to do about it."""
    refs = comparison[~comparison.yours]
    adv = result.adversarial[result.adversarial.attack == headline_attack(result.adversarial)]
    acting = result.acting
    per_image = {"clean_iou": result.clean.set_index("image").iou,
                 "corrupted_iou": acting.groupby("image").iou.mean(),
                 "attacked_iou": adv.groupby("image").iou.mean()}
    if result.robust is not None and "robust_iou" in comparison:
        per_image["robust_iou"] = result.robust.groupby("image").iou.mean()
    if result.real is not None and "real_iou" in comparison:
        per_image["real_iou"] = result.real.iou
    # the paper's ratios: the ratio of the mean degraded to the mean clean IoU over the resampled images
    ratios = {"corruption_robustness": acting.groupby("image")[["iou", "clean_iou"]].mean(),
              "adversarial_robustness": adv.groupby("image")[["iou", "clean_iou"]].mean()}
    rows = []
    for metric in [*per_image, *ratios]:
        if metric in ratios:
            pair = ratios[metric].to_numpy()
            est, lo, hi = bootstrap_ci(np.arange(len(pair)), n_boot=n_boot, seed=seed, statistic=lambda rows, pair=pair:
                                       ratio_of_means(*pair[rows.astype(int)].T))
        else:
            est, lo, hi = bootstrap_ci(per_image[metric].to_numpy(), n_boot=n_boot, seed=seed)
        median = float(refs[metric].median())
        verdict = "above" if lo > median else ("below" if hi < median else "comparable")
        text = ADVICE[metric][0] if verdict == "above" else (
            ADVICE[metric][1] if verdict == "below" else "Your model is within the reference models' middle range.")
        rows.append({"metric": metric, "kind": "secondary (ratio)" if metric.endswith("_robustness") else "absolute",
                     "yours": est, "ci_low": lo, "ci_high": hi, "reference_median": median,
                     "reference_best": float(refs[metric].max()), "verdict": verdict, "recommendation": text})
    return pd.DataFrame(rows)


def resolution(result: AssayResult, *, loss: str | None = None,
               costly: float = 0.95) -> pd.DataFrame:
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
