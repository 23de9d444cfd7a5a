import numpy as np
import pandas as pd
import pytest

from fmlib import rankings
from fmlib.metrics import corruption_errors


def _corruption_table(clean, drop, *, seeds=(0,), structures=("nuclei",), n_images=6, seed=0):
    """Rows of a corruption table: model m has clean IoU clean[m] and loses drop[m] of it under every
    corruption (two corruptions, five severities), plus image noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for structure in structures:
        for s in seeds:
            for model in clean:
                for image in range(n_images):
                    c = clean[model] + rng.normal(0, 0.01)
                    for corruption in ("defocus", "photon_noise"):
                        for severity in range(1, 6):
                            iou = c * (1 - drop[model] * severity / 5) + rng.normal(0, 0.01)
                            rows.append(dict(model=model, structure=structure, seed=s, image=image,
                                             corruption=corruption, severity=severity, iou=iou, clean_iou=c))
    return pd.DataFrame(rows)


def test_absolute_scores_do_not_reward_an_inaccurate_model():
    # "weak" loses little of a poor clean score; "strong" loses more of a much better one.
    table = _corruption_table({"weak": 0.4, "strong": 0.9}, {"weak": 0.1, "strong": 0.3})
    ranking = rankings.corruption_scores(table, reference_model="strong", n_boot=200)
    by = ranking.set_index("model")
    assert ranking.model.iloc[0] == "strong"               # the headline: absolute corrupted IoU
    assert by.loc["weak", "ratio"] > by.loc["strong", "ratio"]   # the paper's ratio prefers the weak model
    assert by.loc["weak", "mce"] > 1 > by.loc["strong", "mce"] - 1e-9
    shifted = rankings.disagreements(ranking, "corrupted_iou", "ratio", min_shift=1)
    assert set(shifted.model) == {"weak", "strong"}


def test_mce_matches_the_imagenet_c_definition_on_one_seed():
    table = _corruption_table({"a": 0.8, "b": 0.6, "c": 0.7}, {"a": 0.2, "b": 0.3, "c": 0.1})
    ranking = rankings.corruption_scores(table, reference_model="a", n_boot=50).set_index("model")
    errors = corruption_errors(table, "a").groupby("model")[["ce", "rce"]].mean()
    np.testing.assert_allclose(ranking.loc[errors.index, "mce"], errors.ce, rtol=1e-9)
    np.testing.assert_allclose(ranking.loc[errors.index, "relative_mce"], errors.rce, rtol=1e-9)
    assert ranking.loc["a", "mce"] == pytest.approx(1.0)


def test_intervals_hold_the_estimate_and_widen_with_seed_variance():
    quiet = _corruption_table({"a": 0.8, "b": 0.6}, {"a": 0.2, "b": 0.2}, seeds=(0, 1, 2))
    noisy = quiet.copy()
    shift = noisy.seed.map({0: -0.1, 1: 0.0, 2: 0.1})       # training runs that disagree
    noisy["iou"] += shift
    q = rankings.corruption_scores(quiet, reference_model="a", n_boot=400).set_index("model")
    n = rankings.corruption_scores(noisy, reference_model="a", n_boot=400).set_index("model")
    for r in (q, n):
        assert ((r.corrupted_iou_low <= r.corrupted_iou) & (r.corrupted_iou <= r.corrupted_iou_high)).all()
    width = lambda r: (r.corrupted_iou_high - r.corrupted_iou_low).mean()  # noqa: E731
    assert width(n) > 3 * width(q)
    assert q.n_seeds.iloc[0] == "nuclei: 3"


def test_excluded_corruptions_stay_out_and_holes_are_errors():
    table = _corruption_table({"a": 0.8, "b": 0.6}, {"a": 0.2, "b": 0.4})
    only = rankings.corruption_scores(table, reference_model="a", exclude=["photon_noise"], n_boot=20)
    direct = table[table.corruption == "defocus"].groupby("model").iou.mean()
    np.testing.assert_allclose(only.set_index("model").corrupted_iou.loc[direct.index], direct, rtol=1e-9)
    with pytest.raises(ValueError, match="no rows left"):
        rankings.corruption_scores(table, reference_model="a", exclude=["photon_noise", "defocus"])
    with pytest.raises(ValueError, match="reference_model"):
        rankings.corruption_scores(table, reference_model="unet")
    with pytest.raises(ValueError, match="every model needs"):
        rankings.corruption_scores(table.iloc[1:], reference_model="a", n_boot=20)


def test_robust_scores_per_budget_and_over_budgets():
    rng = np.random.default_rng(0)
    rows = [dict(model=m, structure="nuclei", seed=s, image=i, eps_255=e, iou=base - e / 64 + rng.normal(0, 0.01),
                 clean_iou=base)
            for m, base in (("a", 0.9), ("b", 0.5)) for s in (0, 1) for i in range(5) for e in (2.0, 8.0, 32.0)]
    per_eps, overall = rankings.robust_scores(pd.DataFrame(rows), n_boot=100)
    assert sorted(per_eps.eps_255.unique()) == [2.0, 8.0, 32.0]
    assert overall.model.iloc[0] == "a"
    a = per_eps[per_eps.model == "a"].sort_values("eps_255").robust_iou.to_numpy()
    assert (np.diff(a) < 0).all()
    assert {"robust_ratio", "robust_iou_low", "robust_iou_rank_high"} <= set(overall.columns)


def test_paired_changes_pair_each_run_with_its_standard_twin():
    rng = np.random.default_rng(0)
    rows = [dict(structure="nuclei", model=f"m{m}", seed=s, regime=r, clean_iou=0.8 + rng.normal(0, 0.01) +
                 (0.05 if r == "noise" else 0.0))
            for m in range(10) for s in (0, 1) for r in ("standard", "noise", "adversarial")]
    changes = rankings.paired_changes(pd.DataFrame(rows), ["clean_iou"], ["noise", "adversarial"], n_boot=200)
    by = changes.set_index("regime")
    assert list(changes.columns) == ["regime", "key", "change", "ci_low", "ci_high", "p", "pairs", "runs", "p_holm"]
    # two seeds per architecture: 20 paired runs, averaged into 10 architectures, the unit of the test
    assert (by.pairs == 10).all() and (by.runs == 20).all()
    assert by.loc["noise", "change"] == pytest.approx(0.05, abs=0.01) and by.loc["noise", "ci_low"] > 0
    assert by.loc["noise", "p"] < 0.01 and (changes.p_holm >= changes.p).all()
    assert by.loc["adversarial", "ci_low"] < 0 < by.loc["adversarial", "ci_high"]


def test_the_papers_ratio_is_the_ratio_of_the_means_so_one_failed_image_cannot_dominate_it():
    # model "a" fails on one clean image (IoU 0.001) that a corruption happens to improve to 0.05: the
    # mean of per-image ratios would be about 10 (50 / 5 images), the ratio of the means stays near 1
    rows = [dict(model=m, structure="nuclei", seed=0, image=i, corruption="defocus", severity=sev,
                 clean_iou=0.001 if (m == "a" and i == 0) else 0.8,
                 iou=0.05 if (m == "a" and i == 0) else 0.8 - 0.02 * sev)
            for m in ("a", "b") for i in range(5) for sev in range(1, 6)]
    ranking = rankings.corruption_scores(pd.DataFrame(rows), reference_model="b", n_boot=50).set_index("model")
    assert 0.9 < ranking.loc["a", "ratio"] < 1.1 and ranking.loc["b", "ratio"] == pytest.approx(0.74 / 0.8)
    robust = pd.DataFrame(rows).rename(columns={"severity": "eps_255"}).drop(columns="corruption")
    overall = rankings.robust_scores(robust, n_boot=50)[1].set_index("model")
    assert overall.loc["a", "robust_ratio"] < 1.1
