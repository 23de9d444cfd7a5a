import doctest

import numpy as np
import pandas as pd
import pytest
from _models import threshold_segmenter
from skimage.measure import label

from fmlib import simtoreal
from fmlib.checkpoints import DataSpec
from fmlib.profiles import Config
from fmlib.realdata import SELECTION_SOURCE, Tiles
from fmlib.simtoreal import regimes

GATE = pd.DataFrame({"model": ["a", "b", "c", "a", "b"], "structure": "nuclei",
                     "regime": ["standard"] * 3 + ["randomized"] * 2, "competent": [True, False, True, True, True],
                     "reason": ["", "clean IoU 0.20 under the floor 0.70", "", "", ""]})


def test_doctests():
    result = doctest.testmod(regimes, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_competence_marks_only_the_trained_regimes_and_an_unjudged_model_fails():
    scores = pd.DataFrame({"method": ["a", "b", "c", "c", "a (real)", simtoreal.BASELINE],
                           "regime": ["standard", "standard", "randomized", "standard", "real", "-"]})
    marked = simtoreal.with_competence(scores, GATE)
    # c is competent under standard but the gate never judged it randomized: not competent there
    assert marked.competent.tolist() == [True, False, False, True, True, True]
    assert marked.drop(columns="competent").equals(scores)
    # another structure's verdicts do not count
    assert not simtoreal.with_competence(scores, GATE.assign(structure="er")).competent.iloc[0]


def test_competent_models_keep_their_order_and_the_excluded_are_named_with_their_reason():
    assert simtoreal.competent_models(GATE, ["c", "b", "a"], regime="standard") == ["c", "a"]
    assert simtoreal.competent_models(GATE, ["c", "b", "a"], regime="randomized") == ["b", "a"]
    text = simtoreal.excluded_text(GATE, ["a", "b", "c"], regimes=["standard", "randomized"])
    assert text == "b (standard): clean IoU 0.20 under the floor 0.70; c (randomized): not judged"
    assert simtoreal.excluded_text(GATE, ["a"], regimes=["standard", "randomized"]) == "none"
    with pytest.raises(ValueError, match="gate: missing columns"):
        simtoreal.competent_models(GATE.drop(columns="competent"), ["a"], regime="standard")


def test_a_gated_selection_never_picks_an_incompetent_model():
    scores = pd.DataFrame([{"method": m, "regime": "standard", "source": SELECTION_SOURCE, "iou": iou, "tile": k}
                           for m, iou in (("a", 0.5), ("b", 0.9), ("c", 0.6)) for k in range(2)])
    assert simtoreal.best_architecture(scores) == "b"
    gated = simtoreal.with_competence(scores, GATE)
    assert simtoreal.best_architecture(gated[gated.competent]) == "c"  # b is best but not competent


def _candidates(converged):
    return {s: simtoreal.Candidate(None, None, c) for s, c in converged.items()}


def test_candidates_at_grid_strengths_take_the_gates_verdict_and_the_others_its_rule():
    scores = pd.DataFrame({"method": "b", "source": "synthetic_test", "strength": [0.0, 0.5, 0.25, 1.0],
                           "iou": [0.9, 0.9, 0.9, 0.5]})
    verdicts = simtoreal.candidate_verdicts(
        _candidates({0.0: True, 0.5: True, 0.25: False, 1.0: True}), scores, method="b", gate=GATE,
        grid_strengths={0.0: "standard", 0.5: "randomized"}, floor=0.7).set_index("strength")
    # 0: b's standard model, which the gate excluded (on every seed, whatever this run scores)
    assert not verdicts.loc[0.0, "competent"] and "floor" in verdicts.loc[0.0, "reason"]
    assert verdicts.loc[0.5, "competent"] and verdicts.loc[0.5, "reason"] == ""
    assert not verdicts.loc[0.25, "competent"] and "not converged" in verdicts.loc[0.25, "reason"]
    assert not verdicts.loc[1.0, "competent"] and "under the floor" in verdicts.loc[1.0, "reason"]
    summary = pd.DataFrame({"source": SELECTION_SOURCE, "strength": [0.0, 0.25, 0.5, 1.0],
                            "mean": [0.9, 0.8, 0.6, 0.7]})
    competent = verdicts.index[verdicts.competent]
    assert simtoreal.best_strength(summary) == 0.0
    assert simtoreal.best_strength(summary, strengths=competent) == 0.5
    with pytest.raises(ValueError, match="strengths"):
        simtoreal.best_strength(summary, strengths=[0.75])


def _tiles() -> Tiles:
    masks = np.zeros((2, 32, 32), bool)
    masks[:, 6:14, 6:14] = masks[:, 18:28, 16:26] = True
    return Tiles(np.where(masks, 0.8, 0.15).astype(np.float32), masks, ["t/0", "t/1"],
                 np.stack([label(m) for m in masks]).astype(np.int32))


def test_the_targets_of_each_regime_share_one_baseline_and_load_every_seed():
    loaded = []

    def load(name, regime, seed):
        loaded.append((name, regime, seed))
        return threshold_segmenter(8.0 if name == "good" else -8.0)  # "bad" segments the background

    models = {"randomized": ["good", "bad", "good2"], "standard": ["bad", "good"]}
    seeds = {"randomized": [0, 1], "standard": [0]}
    counts, targets = simtoreal.regime_targets(load, _tiles(), models=models, seeds=seeds,
                                               best={"randomized": "good", "standard": "bad"}, bar_iou=0.8, n_boot=50)
    assert loaded == [(m, "randomized", s) for m in models["randomized"] for s in (0, 1)] + [
        ("bad", "standard", 0), ("good", "standard", 0)]
    assert (counts[counts.method == simtoreal.BASELINE].regime == simtoreal.BASELINE_REGIME).all()
    assert counts[counts.method == simtoreal.BASELINE].seed.nunique() == 1  # counted once
    assert targets.columns[0] == "regime" and targets.regime.tolist() == ["randomized"] * 2 + ["standard"] * 2
    best = targets[targets.target == simtoreal.TARGETS[1]].set_index("regime")
    assert best.loc["randomized", "subject"] == "good" and best.loc["randomized", "estimate"] == pytest.approx(1.0)
    assert best.loc["standard", "estimate"] < 0.5 and best.loc["standard", "verdict"] == "not met"
    assert targets.set_index(["regime", "target"]).n_seeds.to_dict()[("standard", simtoreal.TARGETS[0])] == 1
    pool = list(simtoreal.seeded_pool(load, models, seeds))
    assert [(n, r, s) for n, r, _, s in pool] == loaded[:len(pool)]


def test_the_attacks_run_on_the_attack_regimes_only_and_every_table_names_its_regime():
    cfg = Config(corruptions=["gaussian_blur", "brightness"], seed=0, eps_255=[4], n_attack_images=1, attack_steps=1,
                 ensemble_eps_255=[8], ensemble_steps=2, ensemble_max_steps=2, ensemble_restarts=1)
    loaded = []

    def load(name, regime, seed):
        loaded.append((name, regime, seed))
        return threshold_segmenter(20.0 if (name, regime) == ("a", "randomized") else 8.0)

    models = {"standard": ["a"], "randomized": ["a", "b"], "noise": []}
    corruption, adversarial, robust = simtoreal.regime_robustness(cfg, load, models, _tiles(), seed=3)
    assert loaded == [("a", "standard", 3), ("a", "randomized", 3), ("b", "randomized", 3)]
    assert corruption.groupby("regime").model.unique().map(sorted).to_dict() == {
        "randomized": ["a", "b"], "standard": ["a"]}
    assert "robustness" in corruption.columns
    assert set(adversarial.regime) == {"standard"} and set(adversarial.attack) == {"pgd", "noise"}
    assert set(robust.regime) == {"standard", "randomized"} and set(robust.attack) == {"ensemble"}
    defense = simtoreal.regime_defense(corruption, robust, exclude=["brightness"])
    # paired per architecture: b has no standard twin
    assert defense.index.tolist() == [("corrupted_iou", "a"), ("robust_iou", "a")]
    kept = corruption[(corruption.model == "a") & (corruption.corruption == "gaussian_blur")]
    assert defense.loc[("corrupted_iou", "a"), "change"] == pytest.approx(
        kept[kept.regime == "randomized"].iou.mean() - kept[kept.regime == "standard"].iou.mean())
    with pytest.raises(ValueError, match="models"):
        simtoreal.regime_robustness(cfg, load, {"standard": []}, _tiles())
    # the ensemble kept to the benchmark's regime: the defense table compares the corruptions only
    corruption, _, robust = simtoreal.regime_robustness(cfg, load, models, _tiles(), seed=3,
                                                        ensemble_regimes=["standard"])
    assert set(robust.regime) == {"standard"}
    assert simtoreal.regime_defense(corruption, robust).index.tolist() == [("corrupted_iou", "a")]


def test_a_training_sample_is_the_start_of_the_pool_and_more_draws_of_its_kind():
    spec = DataSpec("nuclei", n_train=3, n_val=2, size=32, seed=4, randomization=0.5)
    pool = spec.make()[0]
    np.testing.assert_array_equal(simtoreal.training_sample(spec, n_images=2).images, pool.images[:2])
    more = simtoreal.training_sample(spec, n_images=5)
    assert len(more.images) == 5 and np.array_equal(more.images[:3], pool.images)
    with pytest.raises(ValueError, match="n_images"):
        simtoreal.training_sample(spec, n_images=0)
