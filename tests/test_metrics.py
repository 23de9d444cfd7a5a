import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fmlib.metrics import (
    adversarial_score,
    bootstrap_ci,
    bootstrap_ranks,
    bootstrap_scores,
    correlation_ci,
    corruption_errors,
    image_quality,
    relative_robustness,
    robustness_ratio,
    segmentation_scores,
)


def test_image_quality_of_known_noise():
    rng = np.random.default_rng(0)
    clean = np.full((64, 64), 0.1)
    mask = np.zeros((64, 64), bool)
    mask[16:48, 16:48] = True
    clean[mask] = 0.5
    noisy = clean + rng.normal(0, 0.04, clean.shape)
    q = image_quality(clean, noisy, mask)
    assert q["snr"] == pytest.approx(0.4 / 0.04, rel=0.05)
    assert q["psnr_db"] == pytest.approx(20 * np.log10(1 / 0.04), abs=0.3)
    assert q["ssim"] < 1.0
    identical = image_quality(clean, clean, mask)
    assert identical["ssim"] == pytest.approx(1.0) and identical["snr"] == float("inf")


def test_image_quality_rejects_bad_shapes():
    with pytest.raises(ValueError, match="mask"):
        image_quality(np.zeros((8, 8)), np.zeros((8, 8)), np.zeros((4, 4)))
    with pytest.raises(ValueError, match="mask"):
        image_quality(np.zeros((8, 8)), np.zeros((8, 8)), np.zeros((8, 8)))



def test_segmentation_scores_match_hand_counts():
    pred = np.zeros((1, 4, 4), bool)
    truth = np.zeros((1, 4, 4), bool)
    pred[0, :2] = True          # 8 pixels
    truth[0, 1:3] = True        # 8 pixels, 4 shared
    s = segmentation_scores(pred, truth)
    assert s["iou"][0] == pytest.approx(4 / 12, rel=1e-4) and s["dice"][0] == pytest.approx(8 / 16, rel=1e-4)
    assert s["precision"][0] == pytest.approx(0.5, rel=1e-4) and s["recall"][0] == pytest.approx(0.5, rel=1e-4)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000))
def test_iou_and_dice_are_consistent(seed):
    rng = np.random.default_rng(seed)
    pred, truth = rng.random((2, 3, 8, 8)) > 0.5
    s = segmentation_scores(pred, truth)
    assert np.all((0 <= s["iou"]) & (s["iou"] <= s["dice"]) & (s["dice"] <= 1))
    np.testing.assert_allclose(s["dice"], 2 * s["iou"] / (1 + s["iou"]), atol=1e-4)  # Dice = 2 IoU / (1 + IoU)


def test_robustness_scores():
    assert relative_robustness([0.4, 0.9], [0.8, 0.9]) == pytest.approx(0.75)
    table = pd.DataFrame({"model": "m", "eps": [1, 1, 2, 2], "iou": [0.8, 0.6, 0.4, 0.2], "clean_iou": 0.8})
    score = adversarial_score(table, by=["model"])
    assert score.score[0] == pytest.approx(np.mean([0.875, 0.375]))


def test_corruption_errors_of_the_reference_are_one():
    rows = []
    for model, drop in (("ref", 0.1), ("better", 0.05)):
        for severity in (1, 2):
            for image in range(3):
                rows.append({"model": model, "corruption": "blur", "severity": severity, "image": image,
                             "iou": 0.9 - drop * severity, "clean_iou": 0.9})
    ce = corruption_errors(pd.DataFrame(rows), "ref").set_index("model")
    assert ce.loc["ref", "ce"] == pytest.approx(1) and ce.loc["ref", "rce"] == pytest.approx(1)
    assert ce.loc["better", "rce"] == pytest.approx(0.5)
    assert ce.loc["better", "ce"] == pytest.approx((0.15 + 0.2) / (0.2 + 0.3))
    with pytest.raises(ValueError, match="reference"):
        corruption_errors(pd.DataFrame(rows), "nobody")


def test_bootstrap_intervals_cover_and_are_deterministic():
    values = np.random.default_rng(1).normal(0.7, 0.1, 200)
    est, lo, hi = bootstrap_ci(values, seed=3)
    assert lo < 0.7 < hi and lo < est < hi and hi - lo < 0.05
    assert bootstrap_ci(values, seed=3) == (est, lo, hi)
    table = pd.DataFrame({"model": np.repeat(["a", "b"], 50), "image": np.tile(range(50), 2),
                          "iou": np.r_[np.full(50, 0.9), np.full(50, 0.5)]
                          + np.random.default_rng(2).normal(0, .01, 100)})
    scores = bootstrap_scores(table, "iou", ["model"]).set_index("model")
    assert scores.loc["a", "ci_low"] > scores.loc["b", "ci_high"]
    ranks = bootstrap_ranks(table, "iou")
    assert list(ranks.model) == ["a", "b"] and list(ranks.rank_ci_high) == [1, 2]


def test_correlations_with_confidence_intervals():
    x = np.arange(10.0)
    r, lo, hi = correlation_ci(x, x**3, method="spearman")
    assert r == pytest.approx(1) and lo == pytest.approx(1)
    assert correlation_ci(x, x**3, method="pearson")[0] < 1
    r, lo, hi = correlation_ci(x, np.random.default_rng(0).normal(size=10))
    assert lo < r < hi
    with pytest.raises(ValueError, match="method"):
        correlation_ci(x, x, method="kendall")


@given(st.lists(st.floats(0, 1), min_size=1, max_size=20), st.lists(st.floats(0, 1), min_size=1, max_size=20))
def test_the_robustness_ratio_is_the_papers_ratio_elementwise(degraded, clean):
    n = min(len(degraded), len(clean))
    d, c = np.array(degraded[:n]), np.array(clean[:n])
    ratio = robustness_ratio(d, c)
    assert np.array_equal(ratio, d / np.maximum(c, 1e-5)) and np.all(np.isfinite(ratio))
    assert relative_robustness(d, c) == float(np.mean(ratio))
    series = robustness_ratio(pd.Series(d), pd.Series(c))
    assert isinstance(series, pd.Series)


def test_the_papers_ratio_of_means_stays_bounded_where_a_clean_iou_nearly_fails():
    from fmlib.metrics import ratio_of_means, relative_robustness

    degraded, clean = np.array([0.05, 0.8, 0.8]), np.array([0.001, 0.9, 0.9])
    assert relative_robustness(degraded, clean) > 10  # the per-image mean, as the paper's code averages it
    assert ratio_of_means(degraded, clean) == pytest.approx(degraded.mean() / clean.mean())
    assert ratio_of_means(np.zeros(3), np.zeros(3)) == 0.0  # a model that fails on every clean image
    per_row = ratio_of_means(np.array([[0.4, 0.6], [0.2, 0.2]]), np.array([[0.8, 0.8], [0.4, 0.4]]), axis=1)
    np.testing.assert_allclose(per_row, [0.625, 0.5])
