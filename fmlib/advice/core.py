"""`advise`: which of the benchmark's models to use on a user's own images, and how far to trust it.

1. Read the user's frames (`fmlib.advice.inputs`) and estimate their acquisition without labels
   (`fmlib.acquisition.estimate`: noise model, SNR, background, blur, object diameter).
2. Simulate the matched acquisition with exact masks, and the degradations such a microscope meets
   (`fmlib.advice.ranking.conditions`).
3. Check that the simulator can imitate the frames (`fmlib.advice.realism_check`). Where it cannot,
   the advice says so and recommends nothing: the ranking is then shown for information only.
4. Rank every competent model of the study (`fmlib.competence`; every architecture and every training
   regime the study trains for the structure, every seed) on the matched conditions, with CIs.

The models come from the study's cache; a model missing there is trained first (the time it will take
is announced before, from the committed training times).
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import acquisition, grid
from .._checks import check_real
from ..competence import competence_table
from ..matching import SNR_RANGE, matched_physics
from ..profiles import resolve
from ..runs import GATE_SCORE, model_loader, structure_runs
from ..synthesis import STRUCTURES, Dataset
from .inputs import read_images
from .ranking import condition_scores, conditions, ranking, scores
from .realism_check import check_thresholds, evenly_spaced, matched_distances
from .robust import ATTACK_EPS_255, attacked_candidates, best_seeds, robust_scores, robust_summary

#: At most this many frames (evenly spaced) enter the estimate: enough for its intervals, and a long
#: time series does not make the advice slow.
MAX_FRAMES = 16


@dataclass
class Advice:
    """The advice for one set of images: every estimate, check and score, and the answer."""

    structure: str
    profile: str
    names: list[str]
    estimate: pd.DataFrame           # fmlib.acquisition.estimate
    physics: dict                    # the matched simulator parameters (JSON-ready)
    realism: pd.DataFrame            # fmlib.advice.realism_check.distances
    conditions: dict[str, str]       # condition: why it is tested
    scores: pd.DataFrame             # per candidate, condition and image
    ranking: pd.DataFrame            # one row per model x regime
    by_condition: pd.DataFrame       # each candidate's IoU per condition, with its CI
    excluded: pd.DataFrame           # the study's models that are not competent, with the reason
    recommendation: dict | None      # model, regime, seed, score, low, high, tied_with; None when refused
    refusal: str                     # why nothing is recommended ("" when something is)
    caveats: list[str] = field(default_factory=list)
    robust: pd.DataFrame | None = None  # with attacks: the leading candidates' robust IoU (fmlib.advice.robust)
    frames: list[np.ndarray] = field(default_factory=list, repr=False)
    matched: Dataset | None = field(default=None, repr=False)

    @property
    def answer(self) -> str:
        """The advice in one sentence."""
        if self.recommendation is None:
            return f"No recommendation: {self.refusal}"
        r = self.recommendation
        tied = f"; statistically tied with {', '.join(r['tied_with'])}" if r["tied_with"] else ""
        attacked = ""
        if self.robust is not None:
            row = self.robust[(self.robust.model == r["model"]) & (self.robust.regime == r["regime"])].iloc[0]
            attacked = (f" Under the study's attack ensemble at {row.eps_255:g}/255 its IoU is {row.robust_iou:.2f} "
                        f"[{row.robust_low:.2f}, {row.robust_high:.2f}].")
        return (f"Use {r['model']} trained in the '{r['regime']}' regime: IoU {r['score']:.2f} "
                f"[{r['low']:.2f}, {r['high']:.2f}] on images simulated like yours, averaged over "
                f"{len(self.conditions)} conditions{tied}.{attacked}")

    def to_json(self) -> dict:
        """Every estimate and score, JSON-ready (`advice.json`)."""
        def records(table: pd.DataFrame) -> list[dict]:
            return json.loads(table.to_json(orient="records"))
        return {"structure": self.structure, "profile": self.profile, "images": self.names, "answer": self.answer,
                "recommendation": self.recommendation, "refusal": self.refusal, "caveats": self.caveats,
                "estimate": records(self.estimate), "matched_physics": self.physics, "realism": records(self.realism),
                "conditions": self.conditions, "ranking": records(self.ranking),
                "by_condition": records(self.by_condition), "excluded": records(self.excluded),
                "scores": records(self.scores),
                "robust": None if self.robust is None else records(self.robust)}


def _physics_json(physics: dict) -> dict:
    out = dict(physics)
    out["camera"] = dataclasses.asdict(out["camera"])
    return out


def _evenly(frames: list, names: list, limit: int) -> tuple[list, list]:
    keep = evenly_spaced(len(frames), limit)
    return [frames[i] for i in keep], [names[i] for i in keep]


def _caveats(estimate: pd.DataFrame, structure: str, pixel_size_um: float | None, n_frames: int) -> list[str]:
    values = estimate.set_index("quantity").estimate
    notes = []
    snr = values["snr"]
    if not SNR_RANGE[0] <= snr <= SNR_RANGE[1]:
        bound = min(max(snr, SNR_RANGE[0]), SNR_RANGE[1])
        notes.append(f"Your SNR ({snr:.1f}) is outside the simulator's range {SNR_RANGE}: the matched images are "
                     f"simulated at SNR {bound:.1f}.")
    if not np.isfinite(values["diameter_px"]):
        notes.append("No object diameter could be read from your images: the matched images use the simulator's "
                     "default object size.")
    elif pixel_size_um is not None and structure == "nuclei":
        diameter_um = values["diameter_px"] * pixel_size_um
        if not 3.0 <= diameter_um <= 30.0:
            notes.append(f"The objects read {diameter_um:.1f} µm across at {pixel_size_um} µm per pixel, outside "
                         "the 3-30 µm of nuclei: check the structure and the pixel size.")
    if values["blur_sigma_px"] <= acquisition.MIN_RESOLVED_SIGMA_PX:
        notes.append("The blur is at the pixel scale: it is a bound, and the matched images are in focus.")
    if n_frames < 3:
        notes.append(f"Only {n_frames} frame(s): the estimates have no interval or a wide one; more frames "
                     "make the advice firmer.")
    return notes


def candidates(cfg, structure: str, *, progress: bool = True) -> tuple[list[tuple[str, str, int]], pd.DataFrame]:
    """The competent (model, regime, seed) runs of the study for `structure`, and the excluded models
    with their reasons; missing models are trained first (`fmlib.runs.structure_runs`)."""
    runs = structure_runs(cfg, structure, progress=progress, announce=print if progress else None)
    gate = competence_table(runs, cfg.competence_floor, score=GATE_SCORE)  # judged as notebook 03 judges
    competent = gate[gate.competent][["model", "regime"]]
    chosen = runs.merge(competent, on=["model", "regime"])
    excluded = gate[~gate.competent][["model", "regime", GATE_SCORE, "reason"]].reset_index(drop=True)
    return list(chosen[["model", "regime", "seed"]].itertuples(index=False, name=None)), excluded


def advise(images, structure: str = "nuclei", *, profile: str = "standard", channel: int | None = None,
           pixel_size_um: float | None = None, n_images: int | None = None, thresholds: dict | None = None,
           attacks: bool = False, attack_eps_255: float = ATTACK_EPS_255, seed: int = 0,
           progress: bool = True) -> Advice:
    """Which of the study's models to use on `images`, and how far to trust it.

    Parameters
    ----------
    images : str, Path, ndarray or a sequence of them
        TIFF files, folders of them or numpy arrays of one structure, raw counts of any bit depth
        (`fmlib.advice.read_images`; a 3D stack is a set of 2D frames).
    structure : {"nuclei", "mitochondria", "er"}
    profile : str
        The study profile whose models are ranked (``standard``: the committed book's).
    channel : int, optional
        The channel of a multi-channel stack that shows the structure.
    pixel_size_um : float, optional
        The pixel size, to check the object size (a caveat where it is implausible).
    n_images : int, optional
        Matched images per condition (default: the profile's ``n_test``: 8 at ``standard``).
    thresholds : dict, optional
        Realism thresholds to replace (`fmlib.advice.realism_check.THRESHOLDS`).
    attacks : bool
        Also measure the robust IoU of the leading candidates under the study's attack ensemble
        (`fmlib.advice.robust`; a minute or two per candidate on a CPU at ``standard``), on the first
        ``n_attack_images`` matched images of the profile. It is reported beside the ranking and does
        not change it; a refused advice runs no attack.
    attack_eps_255 : float
        The attacks' budget, in grey levels of 255 on the scaled counts the models see.
    seed : int
        Seed of the matched images and of the bootstraps.

    Returns
    -------
    Advice

    Examples
    --------
    >>> from fmlib.synthesis import make_dataset
    >>> advice = advise(make_dataset("nuclei", 4, 128, snr=6, seed=5).raw, profile="smoke",
    ...                 progress=False)  # doctest: +SKIP
    >>> advice.answer  # doctest: +SKIP
    "Use sim_unet trained in the 'standard' regime: IoU 0.71 [0.65, 0.76] ..."
    """
    if structure not in STRUCTURES:
        raise ValueError(f"structure: expected one of {sorted(STRUCTURES)}, got {structure!r}")
    if pixel_size_um is not None and not (isinstance(pixel_size_um, (int, float)) and pixel_size_um > 0):
        raise ValueError(f"pixel_size_um: expected a positive number of µm, got {pixel_size_um!r}")
    limits = check_thresholds(thresholds)
    attack_eps_255 = check_real("attack_eps_255", attack_eps_255, low=0.0, high=255.0, low_inclusive=False)
    cfg = resolve(profile)
    if structure not in cfg.structures:
        raise ValueError(f"structure: profile {profile!r} trains no model on {structure!r}")
    n_images = int(cfg.n_test) if n_images is None else int(n_images)
    if n_images < 2:
        raise ValueError(f"n_images: expected at least 2 matched images per condition, got {n_images}")
    frames, names = read_images(images, channel=channel, min_side_px=max(64, int(cfg.image_size)))
    frames, names = _evenly(frames, names, MAX_FRAMES)
    estimate, realism = matched_distances(frames, structure, thresholds=limits, seed=seed)
    sets, why = conditions(estimate, structure, frames, n_images=n_images, seed=seed)
    runs, excluded = candidates(cfg, structure, progress=progress)
    if not runs:
        raise ValueError(f"profile: no competent model on {structure!r} in profile {profile!r}; nothing to rank")
    load = model_loader(cfg, structure)
    table = scores(runs, load, sets, progress=progress)
    ranked = ranking(table, seed=seed)
    seeds = best_seeds(table)
    refusal = ""
    off = realism[~realism.within]
    if len(off):
        refusal = ("the simulator cannot imitate your images closely enough to rank models on them: "
                   + "; ".join(f"{r.statistic} distance {r.distance:.2f} > {r.threshold:.2f}" for r in off.itertuples())
                   + ". The ranking below is for information only.")
    robust = None
    if attacks and not refusal:  # minutes per model: not spent on a ranking that is for information only
        attacked = [(m, r, seeds[(m, r)]) for m, r in attacked_candidates(ranked)]
        robust = robust_summary(robust_scores(cfg, attacked, load, sets["as estimated"], eps_255=attack_eps_255,
                                              progress=progress), seed=seed)
    recommendation = None
    if not refusal:
        top = ranked.iloc[0]
        recommendation = {"model": top.model, "regime": top.regime, "seed": seeds[(top.model, top.regime)],
                          "score": float(top.score),
                          "low": float(top.low), "high": float(top.high),
                          "tied_with": [f"{r.model} ({r.regime})" for r in ranked[ranked.tied].itertuples()]}
    return Advice(structure, profile, names, estimate, _physics_json(matched_physics(estimate, structure)), realism,
                  why, table, ranked, condition_scores(table, seed=seed), excluded, recommendation, refusal,
                  _caveats(estimate, structure, pixel_size_um, len(frames)), robust, frames, sets["as estimated"])


def recommended_model(advice: Advice) -> torch.nn.Module:
    """The recommended trained model, in eval mode; ValueError where the advice refused."""
    if advice.recommendation is None:
        raise ValueError(f"advice: nothing was recommended ({advice.refusal})")
    r = advice.recommendation
    trained = grid.trained_model(resolve(advice.profile), r["model"], advice.structure, r["regime"], seed=r["seed"])
    return trained.model.eval()


def export_torchscript(model: torch.nn.Module, path: str | Path, *, size: int = 64) -> Path:
    """`model` traced to a TorchScript file at `path`, checked to give the same logits as the model on
    a second input size (a traced model must not have frozen the size it was traced at)."""
    path = Path(path)
    model = model.eval()
    with torch.no_grad(), warnings.catch_warnings():
        # The models' input checks read shapes as Python values: the tracer warns that it freezes them,
        # and the probe below is what shows that the traced model still takes other sizes.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated, and what `assess` loads
        traced = torch.jit.trace(model, torch.randn(1, 1, size, size), check_trace=False)
        probe = torch.randn(1, 1, 2 * size, size + 32)
        if not torch.allclose(traced(probe), model(probe), atol=1e-4, rtol=1e-4):
            raise RuntimeError("export_torchscript: the traced model differs from the model on a new input size")
    path.parent.mkdir(parents=True, exist_ok=True)
    traced.save(str(path))
    return path


__all__ = ["Advice", "advise", "candidates", "recommended_model", "export_torchscript"]
