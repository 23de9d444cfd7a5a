import numpy as np
import pandas as pd
import pytest

from fmlib import strength


def _table(curves):
    """An attack table from {attack: [mean IoU at eps 2, 8, 32]}, two images each."""
    return pd.DataFrame([{"model": "m", "attack": a, "eps_255": e, "image": i, "iou": v}
                         for a, values in curves.items() for e, v in zip((2, 8, 32), values) for i in range(2)])


def test_diagnose_flags_each_weaker_attack_that_wins():
    good = {"ensemble": [0.5, 0.3, 0.1], "fgsm": [0.6, 0.5, 0.4], "pgd": [0.55, 0.35, 0.15], "noise": [0.9, 0.9, 0.8]}
    row = strength.diagnose(_table(good), white_box="ensemble", transfer=None).iloc[0]
    assert row.verdict == strength.PASSES and row.monotone_in_eps and row.beats_iterative
    for attack in ("fgsm", "noise"):
        bad = dict(good, **{attack: [0.2, 0.1, 0.05]})
        row = strength.diagnose(_table(bad), white_box="ensemble", transfer=None).iloc[0]
        assert row.verdict == strength.MASKING
    rising = dict(good, ensemble=[0.3, 0.5, 0.7])
    assert not strength.diagnose(_table(rising), white_box="ensemble", transfer=None).monotone_in_eps.iloc[0]
    with pytest.raises(ValueError, match="white_box"):
        strength.diagnose(_table(good), white_box="apgd")


def test_every_verdict_carries_the_margin_of_the_closest_weaker_attack_with_its_ci():
    good = {"ensemble": [0.5, 0.3, 0.1], "fgsm": [0.6, 0.5, 0.4], "noise": [0.9, 0.9, 0.8],
            "transfer": [0.7, 0.5, 0.15]}
    row = strength.diagnose(_table(good), white_box="ensemble", n_boot=200).iloc[0]
    # closest: the transfer at 32 grey levels, 0.05 above the ensemble
    assert (row.weakest_attack, row.weakest_eps_255) == ("transfer", 32)
    assert row.weakest_margin == pytest.approx(0.05)
    assert row.weakest_margin_low <= row.weakest_margin <= row.weakest_margin_high
    masked = strength.diagnose(_table(dict(good, noise=[0.2, 0.1, 0.0])), white_box="ensemble").iloc[0]
    assert masked.verdict == strength.MASKING and masked.weakest_attack == "noise" and masked.weakest_margin < 0
    # the margin pairs images: one image where noise wins by far, one where it loses, give a wide interval
    split = _table(good)
    split.loc[(split.attack == "noise") & (split.image == 0), "iou"] = 0.0
    row = strength.diagnose(split, white_box="ensemble").iloc[0]
    assert row.weakest_margin_low < 0 < row.weakest_margin_high
    with pytest.raises(ValueError, match="image"):
        strength.diagnose(_table(good).drop(columns="image"), white_box="ensemble")


def test_convergence_of_an_iou_curve():
    assert strength.converged([0.9, 0.5, 0.3, 0.25, 0.249, 0.249, 0.249, 0.249])
    assert not strength.converged([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    assert not strength.converged([0.5])


def test_tail_drop_measures_how_far_a_trace_still_falls():
    # a flat tail: nothing left to gain; a straight fall: a quarter of its span in the last quarter
    assert strength.tail_drop([0.9, 0.5, 0.3, 0.3, 0.3]) == 0.0
    assert strength.tail_drop([0.9, 0.8, 0.7, 0.6, 0.5]) == pytest.approx(0.1)
    assert np.isnan(strength.tail_drop([0.5]))
    # converged is the tail drop within the tolerance
    trace = [0.9, 0.8, 0.7, 0.6, 0.59]
    assert strength.converged(trace) == (strength.tail_drop(trace) <= 0.01)


def test_the_attack_check_calls_a_model_measured_only_when_every_structure_passes_and_converged():
    rows = pd.DataFrame({"model": ["a", "a", "b", "b", "c"],
                         "structure": ["nuclei", "er", "nuclei", "er", "nuclei"],
                         "verdict": [strength.PASSES, strength.PASSES, strength.PASSES, strength.MASKING,
                                     strength.PASSES],
                         "apgd_converged": [True, False, False, True, True]})
    checks = strength.attack_check(rows).set_index("model").attack_check
    # masking outranks non-convergence: either way the robust IoU is only an upper bound
    assert checks.to_dict() == {"a": strength.NOT_CONVERGED, "b": strength.MASKING, "c": strength.PASSES}
    with pytest.raises(ValueError, match="apgd_converged"):
        strength.attack_check(rows.drop(columns="apgd_converged"))


def test_the_strength_docstring_examples_hold():
    import doctest

    assert doctest.testmod(strength).failed == 0


def test_a_model_no_better_than_a_constant_prediction_is_degenerate_and_outranks_every_other_check():
    masks = np.zeros((2, 10, 10), bool)
    masks[:, :4] = True  # 40 % foreground: predicting every pixel foreground scores IoU 0.4
    assert strength.constant_prediction_iou(masks) == pytest.approx(0.4)
    flags = strength.degenerate([0.41, 0.45, 0.0], [0.4, 0.4, 0.4])
    assert flags.tolist() == [True, False, True]
    rows = pd.DataFrame({"model": ["a", "a"], "structure": ["er", "nuclei"], "verdict": strength.MASKING,
                         "apgd_converged": False, "degenerate": [True, False]})
    assert strength.attack_check(rows).attack_check.tolist() == [strength.DEGENERATE]
    with pytest.raises(ValueError, match="masks"):
        strength.constant_prediction_iou(np.zeros((4, 4)))


def _robust(iou, *, converged=True, paper=0.6, clean=0.9):
    """Robust-table rows of model m at eps 2, 8, 32 (the ensemble's worst case), two images each."""
    return pd.DataFrame([{"model": "m", "regime": "adversarial", "eps_255": e, "image": i, "iou": v, "clean_iou": clean,
                          "paper_attacks_iou": paper, "converged": converged, "tail_drop": 0.0 if converged else 0.05,
                          "apgd_steps": 100} for e, v in zip((2, 8, 32), iou) for i in range(2)])


def test_ensemble_checks_flag_a_defended_model_whose_transfer_or_single_step_beats_the_ensemble():
    weak = {"fgsm": [0.7, 0.6, 0.5], "noise": [0.9, 0.9, 0.85], "transfer": [0.8, 0.7, 0.6]}
    row = strength.ensemble_checks(_table(weak).assign(regime="adversarial"), _robust([0.5, 0.3, 0.1]),
                                   by=("model", "regime")).iloc[0]
    assert row.verdict == strength.PASSES and row.apgd_converged and row.clean_iou == 0.9
    assert row.ensemble_gain == pytest.approx(np.mean([0.1, 0.3, 0.5]))
    assert row.ensemble_gain_low <= row.ensemble_gain <= row.ensemble_gain_high
    assert row.pgd_verdict is None  # PGD was not among the attacks: its own checks were not run
    for attack in ("fgsm", "transfer"):  # a weaker attack that wins: masking, whatever APGD's convergence
        masked = _table(dict(weak, **{attack: [0.2, 0.05, 0.0]})).assign(regime="adversarial")
        row = strength.ensemble_checks(masked, _robust([0.5, 0.3, 0.1]), by=("model", "regime")).iloc[0]
        assert row.verdict == strength.MASKING
    row = strength.ensemble_checks(_table(dict(weak, pgd=[0.75, 0.7, 0.65])).assign(regime="adversarial"),
                                   _robust([0.5, 0.3, 0.1], converged=False), by=("model", "regime")).iloc[0]
    assert not row.apgd_converged and row.pgd_verdict == strength.MASKING  # one FGSM step beat PGD
    assert strength.attack_check(pd.DataFrame([row]), by=("model",)).attack_check.iloc[0] == strength.NOT_CONVERGED
    with pytest.raises(ValueError, match="robust: no column"):
        strength.ensemble_checks(_table(weak), _robust([0.5, 0.3, 0.1]).drop(columns="converged"), by=("model",))


def test_the_square_check_flags_a_model_where_square_beats_every_gradient_member_and_names_the_images():
    weak = _table({"fgsm": [0.7, 0.6, 0.5], "noise": [0.9, 0.9, 0.85], "transfer": [0.8, 0.7, 0.6]})
    robust = _robust([0.5, 0.3, 0.1]).assign(gradient_iou=lambda r: r.iou, square_iou=lambda r: r.iou + 0.2)
    row = strength.ensemble_checks(weak, robust, by=("model",), n_boot=50).iloc[0]
    assert row.verdict == strength.PASSES and row.beats_square and row.square_wins == 0 and row.square_images == ""
    won = robust.copy()
    won.loc[(won.eps_255 == 8) & (won.image == 1), "square_iou"] = 0.25  # beats the gradient members' 0.3
    won.loc[(won.eps_255 == 32) & (won.image == 0), "square_iou"] = 0.095  # within tol: no win
    row = strength.ensemble_checks(weak, won, by=("model",), n_boot=50).iloc[0]
    assert row.verdict == strength.MASKING and not row.beats_square and row.square_wins == 1
    assert row.square_margin == pytest.approx(0.05) and row.square_images == "1 at 8 (0.050)"
    assert strength.attack_check(pd.DataFrame([row])).attack_check.iloc[0] == strength.MASKING
    wins = strength.square_wins(won, by=("model",))
    assert wins[["image", "eps_255"]].values.tolist() == [[1, 8]] and wins.margin.iloc[0] == pytest.approx(0.05)
    # Square did not run (every image fooled first, or a robust table from before it): not run, never passed
    row = strength.ensemble_checks(weak, robust.assign(square_iou=np.nan), by=("model",), n_boot=50).iloc[0]
    assert row.beats_square is None and row.verdict == strength.PASSES
    with pytest.raises(ValueError, match="square_iou"):
        strength.square_wins(robust.drop(columns="square_iou"), by=("model",))
