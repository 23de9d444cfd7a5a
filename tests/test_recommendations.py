import numpy as np
import pandas as pd
import pytest

from fmlib import recommendations


def _models(n=8, seed=0, slope=1.0):
    rng = np.random.default_rng(seed)
    corruption = rng.uniform(0.5, 0.9, n)
    clean = rng.uniform(0.7, 0.9, n)
    robust = slope * corruption + rng.normal(0, 0.01, n)
    return pd.DataFrame({"model": [f"m{i}" for i in range(n)], "family": ["cnn"] * (n - 2) + ["transformer"] * 2,
                         "parameters": rng.uniform(1e5, 1e7, n), "clean_iou": clean,
                         "corrupted_iou": corruption, "robust_iou": robust,
                         "corruption_ratio": corruption / clean, "robust_ratio": robust / clean})


def _defenses(n=8, seed=0, noise_gain=0.05):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        for seed in (0, 1):
            base = rng.uniform(0.5, 0.8)
            for regime, gain in (("standard", 0.0), ("noise", noise_gain), ("adversarial", -0.02)):
                corrupted = base + gain + rng.normal(0, 0.005)
                robust = base + (0.1 if regime == "adversarial" else 0.0)
                rows.append({"structure": "nuclei", "model": f"m{i}", "seed": seed, "regime": regime,
                             "clean_iou": 0.85 + gain / 10, "corrupted_iou": corrupted, "robust_iou": robust,
                             "corruption_ratio": corrupted / 0.85, "robust_ratio": robust / 0.85})
    return pd.DataFrame(rows)


def _by_key(findings):
    return {f.key: f for f in findings}


def test_verdicts_follow_the_sign_of_the_confidence_interval():
    found = _by_key(recommendations.evaluate_rules(_models(slope=1.0), _defenses(n=12, noise_gain=0.05), n_boot=300))
    assert found["corruption_vs_adversarial"].verdict == "supported"
    assert found["noise_augmentation"].verdict == "supported"
    assert found["adversarial_training"].verdict == "supported"
    assert found["noise_augmentation"].estimate == pytest.approx(0.05, abs=0.01)
    found = _by_key(recommendations.evaluate_rules(_models(slope=-1.0), _defenses(n=12, noise_gain=-0.05),
                                                   n_boot=300))
    assert found["corruption_vs_adversarial"].verdict == "contradicted"
    assert found["noise_augmentation"].verdict == "contradicted"
    few = _by_key(recommendations.evaluate_rules(_models(n=3), _defenses(n=3), n_boot=100))
    assert few["corruption_vs_adversarial"].verdict == "not testable here"
    assert "real" not in " ".join(few)  # the real-image rules need the real-image tables


def _real_scores(adversarial_gain):
    rows = []
    rng = np.random.default_rng(1)
    for m in range(10):
        for regime, gain in (("standard", 0.0), ("noise", 0.0), ("adversarial", adversarial_gain)):
            for source, n in (("dsb2018", 4), ("bbbc007_test", 12), ("bbbc007_train", 8)):
                for t in range(n):
                    rows.append({"method": f"m{m}", "regime": regime, "source": source, "tile": f"{source}/{t}",
                                 "iou": 0.6 + gain + rng.normal(0, 0.002)})
    rows += [{"method": "otsu_watershed", "regime": "-", "source": "dsb2018", "tile": "dsb2018/0", "iou": 0.7}]
    return pd.DataFrame(rows)


def test_real_image_rules_compare_each_model_with_its_standard_training():
    found = _by_key(recommendations.evaluate_rules(_models(), _defenses(), real_scores=_real_scores(0.1), n_boot=300))
    assert found["adversarial_training_real"].verdict == "supported"
    assert found["adversarial_training_real"].estimate == pytest.approx(0.1, abs=0.005)
    assert found["adversarial_training_real"].n == 10  # models, not tiles
    assert found["noise_augmentation_real"].verdict == "inconclusive"


def test_randomization_rule_pairs_each_architecture_with_its_single_acquisition_twin():
    # ten architectures, each better on real tiles when trained on randomized acquisitions; the unit
    # of the test is the architecture (n = 10), never the tile, and each source weighs the same
    real, single = [], []
    for m in range(10):
        for source, n_tiles in (("dsb2018", 5), ("bbbc007_test", 40), ("bbbc007_train", 40)):
            for t in range(n_tiles):
                tile = {"method": f"m{m}", "source": source, "tile": f"{source}/{t}"}
                gain = 0.3 if source == "dsb2018" else 0.1
                real.append({**tile, "regime": "randomized", "iou": 0.5 + gain + 0.01 * m})
                real.append({**tile, "regime": "noise", "iou": 0.0})  # another regime: not the comparison
                single.append({**tile, "iou": 0.5 + 0.01 * m})
    found = _by_key(recommendations.evaluate_rules(_models(), _defenses(), real_scores=pd.DataFrame(real),
                                                   single_scores=pd.DataFrame(single), n_boot=300))
    rule = found["domain_randomization_real"]
    assert rule.n == 10 and rule.estimate == pytest.approx(0.2)  # (0.3 + 0.1) / 2: sources, not tiles
    assert rule.p_min == pytest.approx(2 / 2**10) and rule.verdict == "supported"
    without = _by_key(recommendations.evaluate_rules(_models(), _defenses(), real_scores=pd.DataFrame(real),
                                                     n_boot=100))
    assert "domain_randomization_real" not in without


def test_randomization_pairs_set_the_randomized_grid_models_against_the_standard_ones():
    rows = [{"method": m, "source": "dsb2018", "tile": t, "regime": regime, "iou": iou}
            for m, (standard, randomized) in {"a": (0.5, 0.8), "b": (0.7, 0.6)}.items() for t in range(2)
            for regime, iou in (("standard", standard), ("randomized", randomized), ("noise", 0.0))]
    rows.append({"method": "c", "source": "dsb2018", "tile": 0, "regime": "randomized", "iou": 0.9})  # no twin
    pairs = recommendations.randomization_pairs(pd.DataFrame(rows))
    assert pairs.index.tolist() == ["a", "b"]
    assert pairs.change.round(3).tolist() == [0.3, -0.1]


def _clean_scores(strides, gap_per_stride, structures=("nuclei", "mitochondria", "er")):
    rows = []
    for i, stride in enumerate(strides):
        base = 0.9 + 0.01 * (i % 3)  # overall accuracy differs by model and must cancel out
        for structure in structures:
            iou = base - (gap_per_stride * stride if structure == "er" else 0.0)
            rows.append({"model": f"m{i}", "structure": structure, "regime": "standard", "iou": iou,
                         "output_stride": stride})
    return pd.DataFrame(rows)


def test_output_stride_rule_correlates_stride_with_the_thin_structure_gap():
    strides = [1, 1, 2, 4, 4, 8, 8, 16]
    rule = _by_key(recommendations.evaluate_rules(_models(), _defenses(), clean_scores=_clean_scores(strides, 0.02),
                                            n_boot=300))["output_stride_thin"]
    assert rule.verdict == "supported" and rule.estimate > 0.9 and rule.n == len(strides)
    rule = _by_key(recommendations.evaluate_rules(_models(), _defenses(), clean_scores=_clean_scores(strides, -0.02),
                                            n_boot=300))["output_stride_thin"]
    assert rule.verdict == "contradicted"
    # one stride for every model (the smoke profile's two U-Nets), or no ER: nothing to test
    for scores in (_clean_scores([1] * 6, 0.02), _clean_scores(strides, 0.02, structures=("nuclei",))):
        rule = _by_key(recommendations.evaluate_rules(_models(), _defenses(), clean_scores=scores,
                                                n_boot=100))["output_stride_thin"]
        assert rule.verdict == "not testable here"


def test_every_claim_is_tested_on_absolute_scores_with_the_ratio_beside_it_and_holm_corrected():
    findings = recommendations.evaluate_rules(_models(), _defenses(), n_boot=100)
    keys = {f.key: f for f in findings}
    for key in ("corruption_vs_adversarial", "clean_vs_corruption", "transformer_vs_cnn", "noise_augmentation"):
        assert keys[key].metric == "absolute" and keys[f"{key}_ratio"].metric == "ratio"
    tested = [f for f in findings if not np.isnan(f.p_value)]
    assert all(f.p_holm >= f.p_value for f in tested)
    assert max(f.p_holm for f in tested) <= 1


def test_a_claim_no_outcome_could_support_is_not_testable_here():
    # one transformer against seven CNNs: the smallest two-sided exact p is 2/8 = 0.25 > 0.05
    models = _models()
    models.loc[models.index[-2], "family"] = "cnn"
    rule = {f.key: f for f in recommendations.evaluate_rules(models, _defenses(), n_boot=100)}["transformer_vs_cnn"]
    assert rule.p_min == pytest.approx(0.25) and rule.verdict == "not testable here"
    assert not np.isnan(rule.estimate)  # the estimate is still reported, with its interval


def test_a_claim_that_cannot_survive_the_holm_correction_is_not_testable_here():
    # 2 against 8 can reach p = 2/45 = 0.044 alone, but in a family of 17 tests no outcome survives Holm
    def finding(key, p, p_min):
        return recommendations.Finding(key, "", "absolute", "", -0.1, -0.2, -0.01, 10, "", p, p_min, "")
    small = [finding(f"strong{i}", 0.001, 0.0001) for i in range(8)]
    weak = [finding(f"weak{i}", 0.5, 0.0001) for i in range(8)]
    family = recommendations.judge([*small, *weak, finding("groups", 2 / 45, 2 / 45)])
    assert family[-1].verdict == "not testable here"
    assert recommendations.attainable_holm_p(family)[-1] > 0.05
    alone = recommendations.judge([finding("groups", 2 / 45, 2 / 45)])[0]
    assert alone.verdict == "contradicted"  # the same test, uncorrected, can decide: the rule is the family's


def test_a_claimed_decrease_is_supported_by_an_interval_below_zero():
    defenses = _defenses(n=12)  # enough architectures for a p that survives the Holm correction
    defenses.loc[defenses.regime == "adversarial", "clean_iou"] -= 0.05  # adversarial training costs accuracy
    cost = {f.key: f for f in recommendations.evaluate_rules(_models(), defenses, n_boot=200)}[
        "adversarial_training_cost"]
    assert cost.claimed_sign == -1 and cost.high < 0 and cost.verdict == "supported"


def test_defense_rules_count_architectures_not_training_seeds():
    # two seeds of each of 8 architectures: 8 paired differences, each the mean over the seeds
    defenses = _defenses(n=8)
    found = _by_key(recommendations.evaluate_rules(_models(), defenses, n_boot=100))
    assert found["noise_augmentation"].n == 8
    wide = defenses.pivot_table(index=["model", "seed"], columns="regime", values="corrupted_iou")
    per_model = (wide["noise"] - wide["standard"]).groupby(level="model").mean()
    assert found["noise_augmentation"].estimate == pytest.approx(per_model.mean())
    # 8 architectures give a sign-flip p of at least 2 / 2**8, so the test says what it can reach
    assert found["noise_augmentation"].p_min == pytest.approx(2 / 2**8)


def test_the_findings_and_recommendations_docstring_examples_hold():
    import doctest

    from fmlib import findings

    assert doctest.testmod(findings).failed == 0 and doctest.testmod(recommendations).failed == 0


def test_adversarial_training_is_not_called_supported_where_its_models_fail_the_attack_checks():
    checks = pd.DataFrame({"model": ["m0", "m1", "m0"], "structure": "nuclei",
                           "regime": ["adversarial", "adversarial", "noise"],
                           "verdict": ["passes", "passes", "gradient masking suspected"], "apgd_converged": True})
    found = _by_key(recommendations.evaluate_rules(_models(), _defenses(n=12), defense_checks=checks, n_boot=300))
    assert found["adversarial_training"].verdict == "supported"  # masking on a noise-trained model only
    for failing in (dict(verdict=["gradient masking suspected", "passes", "passes"]),
                    dict(apgd_converged=[True, False, True])):
        found = _by_key(recommendations.evaluate_rules(_models(), _defenses(n=12), defense_checks=checks.assign(
            **failing), n_boot=300))
        assert found["adversarial_training"].verdict == recommendations.UNCHECKED_DEFENSE
        assert found["noise_augmentation"].verdict == "supported"  # the other findings keep theirs
