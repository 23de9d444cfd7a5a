"""The competence gate: a model that did not learn its task is flagged and never ranked."""

import pandas as pd
import pytest

from fmlib import competence, rankings


def _runs(**columns):
    base = dict(model=["unet", "segnet", "pspnet"], structure="er", regime="standard", seed=0,
                iou=[0.9, 0.4, 0.6], converged=[True, True, True])
    return pd.DataFrame({**base, **columns})


def test_a_run_under_the_floor_or_unconverged_is_not_competent():
    verdicts = competence.run_verdicts(_runs(converged=[False, True, True]), floor=0.7, score="iou")
    assert verdicts.competent.tolist() == [False, False, False]
    assert "not converged" in verdicts.reason[0]
    assert "0.400 under the floor 0.70" in verdicts.reason[1]


def test_the_gate_judges_the_score_it_is_given():
    """The study judges each run on the gate's own clean scenes (gate_iou), not the evaluation images."""
    runs = _runs(gate_iou=[0.9, 0.72, 0.69])
    verdicts = competence.run_verdicts(runs, floor=0.7, score="gate_iou")
    assert verdicts.competent.tolist() == [True, True, False]
    assert "0.690 under the floor 0.70" in verdicts.reason[2]  # not rounded up to the floor
    gate = competence.competence_table(runs, 0.7, score="gate_iou")
    assert gate.gate_iou.tolist() == [0.9, 0.72, 0.69] and "iou" not in gate  # the score judged, by its name
    with pytest.raises(ValueError, match="missing columns \\['gate_iou'\\]"):
        competence.run_verdicts(_runs(), floor=0.7, score="gate_iou")


def test_a_stride_limited_model_is_named_as_such():
    verdicts = competence.run_verdicts(_runs(attainable_iou=[1.0, 0.95, 0.55]), floor=0.7, score="iou")
    assert verdicts.stride_limited.tolist() == [False, False, True]
    assert "output stride caps it at 0.55" in verdicts.reason[2]
    assert "output stride" not in verdicts.reason[1]  # a trainable model that failed is a training failure


def test_every_seed_must_pass():
    runs = pd.DataFrame(dict(model="unet", structure="nuclei", regime="standard", seed=[0, 1, 2],
                             iou=[0.9, 0.92, 0.5], converged=True))
    gate = competence.competence_table(runs, 0.7, score="iou")
    assert len(gate) == 1 and not gate.competent[0]
    assert gate.reason[0].startswith("seed 2:")
    assert gate.n_runs[0] == 3


def test_a_model_under_the_floor_is_excluded_from_a_ranking():
    gate = competence.competence_table(_runs(), 0.7, score="iou")
    robust = pd.DataFrame([dict(model=m, structure="er", regime="standard", seed=0, eps_255=8, image=i,
                                clean_iou=0.9, iou=v) for m, v in (("unet", 0.5), ("segnet", 0.9), ("pspnet", 0.8))
                           for i in range(4)])
    ranked = rankings.robust_scores(competence.only_competent(robust, gate), n_boot=50)[1]
    assert ranked.model.tolist() == ["unet"]  # segnet's high robust IoU is not ranked: it never learned
    assert competence.excluded(gate).model.tolist() == ["segnet", "pspnet"]


def test_the_gate_is_per_structure_and_regime():
    gate = pd.DataFrame(dict(model=["unet", "unet"], structure=["nuclei", "er"], regime="standard",
                             competent=[True, False]))
    table = pd.DataFrame(dict(model="unet", structure=["nuclei", "er"], regime="standard", score=[1, 2]))
    assert competence.only_competent(table, gate).structure.tolist() == ["nuclei"]
    # without a structure column, a model is kept only where no row of the gate fails it
    assert competence.only_competent(table[["model", "score"]], gate).empty


def test_an_unjudged_model_is_not_ranked():
    gate = competence.competence_table(_runs(), 0.7, score="iou")
    table = pd.DataFrame(dict(model=["unet", "fcn"], structure="er", regime="standard", score=[1, 2]))
    assert competence.only_competent(table, gate).model.tolist() == ["unet"]


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="runs: missing columns"):
        competence.run_verdicts(pd.DataFrame({"model": ["a"]}), 0.7, score="iou")
    with pytest.raises(ValueError, match="floor"):
        competence.run_verdicts(_runs(), 1.5, score="iou")
    with pytest.raises(ValueError, match="gate"):
        competence.only_competent(pd.DataFrame({"model": ["a"]}), pd.DataFrame({"model": ["a"]}))


def test_a_ranking_across_structures_holds_only_models_competent_on_every_one():
    gate = pd.DataFrame(dict(model=["unet", "unet", "pspnet", "pspnet"], structure=["nuclei", "er"] * 2,
                             regime="standard", competent=[True, True, True, False]))
    table = pd.DataFrame(dict(model=["unet", "unet", "pspnet", "pspnet", "unet"],
                              structure=["nuclei", "er", "nuclei", "er", "nuclei"],
                              regime=["standard"] * 4 + ["noise"], iou=[0.9, 0.8, 0.9, 0.5, 0.7]))
    ranked = competence.for_ranking(table, gate)
    assert set(ranked.model) == {"unet"} and set(ranked.regime) == {"standard"}
    assert competence.ranked_models(gate, structures=["nuclei"]) == ["unet", "pspnet"]


def test_the_examples_in_the_docstrings_hold():
    import doctest

    assert doctest.testmod(competence).failed == 0
