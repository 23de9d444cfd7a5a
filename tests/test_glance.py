import matplotlib
import pandas as pd
import pytest

from fmlib import glance

matplotlib.use("Agg")


def _inputs():
    checks = ["passes", "gradient masking suspected", "passes"]
    per_model = pd.DataFrame({"model": ["a", "b", "c"], "attack_check": checks,
                              **{f"{s}{b}": [v + d for v in (0.80, 0.70, 0.75)]
                                 for s, d0 in (("clean_iou", 0.1), ("corrupted_iou", 0.0))
                                 for b, d in (("", d0), ("_low", d0 - 0.02), ("_high", d0 + 0.02))}})
    by_eps = pd.DataFrame([{"model": m, "eps_255": e, "robust_iou": r, "robust_iou_low": r - 0.05,
                            "robust_iou_high": r + 0.05}
                           for e in (8.0, 32.0) for m, r in (("a", 0.3), ("b", 0.6), ("c", 0.5))])
    gate = pd.DataFrame({"model": ["a", "b", "c", "d", "d"], "structure": ["nuclei"] * 4 + ["er"],
                         "regime": "standard", "competent": [True, True, True, True, False],
                         "reason": ["", "", "", "", "its output stride caps it at 0.58"]})
    real = pd.DataFrame({"source": "dsb2018", "method": ["a", "b", "c", "a"],
                         "regime": ["standard"] * 3 + ["randomized"],
                         "mean": [0.7, 0.6, 0.65, 0.8], "ci_low": 0.5, "ci_high": 0.9, "n": 8})
    return per_model, by_eps, gate, real


def test_rows_are_sorted_by_the_stated_score_and_a_model_that_is_not_competent_is_flagged_never_ranked():
    per_model, by_eps, gate, real = _inputs()
    table = glance.at_a_glance(per_model, by_eps, gate, real, real_regimes=("standard", "randomized"))
    assert table.model.tolist() == ["a", "c", "b", "d"]  # corrupted IoU, best first; d last, unranked
    assert table["rank"].tolist()[:3] == [1, 2, 3] and pd.isna(table["rank"].iloc[3])
    assert table.set_index("model").loc["d", "flags"] == "not competent on er"  # the reasons are in 03's table
    assert pd.isna(table.set_index("model").loc["d", "corrupted_iou"])  # no score shown for it
    assert table.set_index("model").loc["b", "flags"] == "gradient masking suspected"
    assert {"robust_iou_8", "robust_iou_32_low", "real_iou_standard", "real_iou_randomized_high"} <= set(table.columns)
    assert table.set_index("model").loc["a", "real_iou_randomized"] == 0.8
    by_robust = glance.at_a_glance(per_model, by_eps, gate, sort_by="robust_iou")
    assert by_robust.model.tolist()[:3] == ["b", "c", "a"]


def test_bad_input_names_the_argument():
    per_model, by_eps, gate, _ = _inputs()
    with pytest.raises(ValueError, match="sort_by"):
        glance.at_a_glance(per_model, by_eps, gate, sort_by="ratio")
    with pytest.raises(ValueError, match="robust_by_eps: missing columns"):
        glance.at_a_glance(per_model, by_eps.drop(columns="eps_255"), gate)


def test_the_figure_has_one_panel_per_score_and_one_line_per_ranked_model():
    per_model, by_eps, gate, real = _inputs()
    fig = glance.interval_figure(glance.at_a_glance(per_model, by_eps, gate, real))
    assert len(fig.axes) == 5  # clean, corrupted, robust at 8 and at 32, real
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["a", "c", "b"]
