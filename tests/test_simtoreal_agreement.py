"""The paper's real-image claim as it was made: rank agreement by robustness (fmlib.simtoreal.agreement)."""

import doctest
import math

import numpy as np
import pandas as pd
import pytest
import torch

from fmlib import simtoreal
from fmlib.models import create_model
from fmlib.profiles import Config
from fmlib.realdata import Tiles
from fmlib.simtoreal import agreement


def _corruption_rows(models, *, seed=0, structure="nuclei", regime="standard", iou=None, clean=None,
                     corruptions=("gaussian_blur", "defocus", "brightness"), severities=(1, 2), images=(0, 1)):
    """A corruption table: ``iou(model, corruption, severity, image)`` and ``clean(model, image)``."""
    rows = [{"model": m, "structure": structure, "regime": regime, "seed": seed, "image": k, "corruption": c,
             "severity": s, "iou": iou(m, c, s, k), "clean_iou": clean(m, k)}
            for m in models for c in corruptions for s in severities for k in images]
    return pd.DataFrame(rows)


def _attack_rows(models, *, iou, clean, budgets=(1.0, 4.0, 8.0), attacks=("pgd", "noise"), seed=0):
    return pd.DataFrame([{"model": m, "structure": "nuclei", "regime": "standard", "seed": seed, "image": k,
                          "attack": a, "eps_255": e, "iou": iou(m, a, e, k), "clean_iou": clean(m, k)}
                         for m in models for a in attacks for e in budgets for k in (0, 1)])


def _real(table):
    return table.drop(columns=["structure", "regime", "seed"])


MODELS = ["a", "b", "c", "d", "e"]
LEVEL = {m: 0.3 + 0.1 * k for k, m in enumerate(MODELS)}  # a worst, e best


# ----------------------------------------------------------------------------------------------
# The paired scores
# ----------------------------------------------------------------------------------------------

def test_corruption_pairs_keep_the_first_seed_the_standard_nuclei_and_the_shared_conditions():
    def iou(m, c, s, k):
        return LEVEL[m] - 0.01 * s - 0.02 * k

    wanted = _corruption_rows(MODELS, iou=iou, clean=lambda m, k: 0.9)
    # rows that must not count: another seed, another structure, another regime, a synthetic-only severity
    noise = [_corruption_rows(MODELS, seed=1, iou=lambda *a: 0.0, clean=lambda m, k: 0.9),
             _corruption_rows(MODELS, structure="er", iou=lambda *a: 0.0, clean=lambda m, k: 0.9),
             _corruption_rows(MODELS, regime="noise", iou=lambda *a: 0.0, clean=lambda m, k: 0.9),
             _corruption_rows(MODELS, severities=(3,), iou=lambda *a: 0.0, clean=lambda m, k: 0.9)]
    synthetic = pd.concat([wanted, *noise], ignore_index=True)
    # the real side lacks defocus for one model, and has a corruption the synthetic side lacks
    real = _real(_corruption_rows(MODELS, iou=lambda m, c, s, k: 1.0 - LEVEL[m], clean=lambda m, k: 0.8))
    real = real[~((real.model == "a") & (real.corruption == "defocus"))]
    real = pd.concat([real, _real(_corruption_rows(MODELS, corruptions=("stripes",), iou=lambda *a: 0.0,
                                                   clean=lambda m, k: 0.8))], ignore_index=True)
    shared = simtoreal.shared_conditions(synthetic, real, kind="corruption", seed=0, exclude=["brightness"])
    assert shared.to_dict("list") == {"corruption": ["gaussian_blur", "gaussian_blur"], "severity": [1, 2]}
    pairs = simtoreal.robustness_pairs(synthetic, real, kind="corruption", seed=0, exclude=["brightness"])
    assert list(pairs) == ["corruption_absolute", "corruption_ratio"]
    absolute, ratio = pairs["corruption_absolute"], pairs["corruption_ratio"]
    assert list(absolute.index) == MODELS and list(absolute.columns) == ["synthetic", "real"]
    # mean over severities 1, 2 and images 0, 1: LEVEL - 0.015 - 0.01
    np.testing.assert_allclose(absolute.synthetic, [LEVEL[m] - 0.025 for m in MODELS])
    np.testing.assert_allclose(absolute.real, [1.0 - LEVEL[m] for m in MODELS])
    np.testing.assert_allclose(ratio.synthetic, absolute.synthetic / 0.9)
    np.testing.assert_allclose(ratio.real, absolute.real / 0.8)


def test_the_ratio_is_the_ratio_of_means_not_the_mean_of_per_image_ratios():
    # the mean of per-image ratios is unbounded where a clean IoU nears zero (fmlib.metrics.ratio_of_means)
    clean = {0: 0.9, 1: 0.3}
    synthetic = _corruption_rows(["a", "b"], iou=lambda m, c, s, k: 0.3 if k else 0.6,
                                 clean=lambda m, k: clean[k], corruptions=("gaussian_blur",))
    pairs = simtoreal.robustness_pairs(synthetic, _real(synthetic), kind="corruption", seed=0)
    expected = 0.45 / 0.6
    np.testing.assert_allclose(pairs["corruption_ratio"].synthetic, expected)
    assert not math.isclose(expected, (0.6 / 0.9 + 0.3 / 0.3) / 2)


def test_adversarial_pairs_keep_the_attack_and_the_budgets_of_both_sides():
    def iou(m, a, e, k):
        return 0.0 if a == "noise" else LEVEL[m] / e

    synthetic = _attack_rows(MODELS, iou=iou, clean=lambda m, k: 0.8)
    real = _real(_attack_rows(MODELS, iou=iou, clean=lambda m, k: 0.5, budgets=(4.0, 8.0, 16.0)))
    real["eps_255"] = real.eps_255.astype(int)  # the budgets match by value, whatever their dtype
    shared = simtoreal.shared_conditions(synthetic, real, kind="adversarial", seed=0)
    assert shared.eps_255.tolist() == [4.0, 8.0]
    pairs = simtoreal.robustness_pairs(synthetic, real, kind="adversarial", seed=0)
    absolute = pairs["adversarial_absolute"]
    np.testing.assert_allclose(absolute.synthetic, [LEVEL[m] * (1 / 4 + 1 / 8) / 2 for m in MODELS])
    np.testing.assert_allclose(absolute.real, absolute.synthetic)
    np.testing.assert_allclose(pairs["adversarial_ratio"].real, absolute.real / 0.5)


def test_only_models_on_both_sides_are_paired():
    synthetic = _attack_rows(["a", "b", "c"], iou=lambda *a: 0.5, clean=lambda m, k: 0.8)
    real = _real(_attack_rows(["b", "c", "z"], iou=lambda *a: 0.5, clean=lambda m, k: 0.8))
    pairs = simtoreal.robustness_pairs(synthetic, real, kind="adversarial", seed=0)
    assert list(pairs["adversarial_absolute"].index) == ["b", "c"]


def test_real_tables_of_robustness_tables_pair_with_a_study_table():
    torch.manual_seed(0)
    nets = [("a", create_model("sim_unet").eval()), ("b", create_model("sim_unet").eval())]
    rng = np.random.default_rng(0)
    masks = rng.uniform(size=(2, 32, 32)) > 0.7
    tiles = Tiles((np.where(masks, 0.8, 0.2) + rng.normal(0, 0.01, masks.shape)).astype(np.float32), masks,
                  ["t/0", "t/1"])
    cfg = Config(corruptions=["gaussian_blur"], seed=0, eps_255=[4], n_attack_images=1, attack_steps=1)
    real_corruption, real_adversarial = simtoreal.robustness_tables(cfg, nets, tiles, progress=False)
    study = {"corruption": real_corruption.assign(structure="nuclei", regime="standard", seed=0),
             "adversarial": real_adversarial.assign(structure="nuclei", regime="standard", seed=0)}
    for kind, real in (("corruption", real_corruption), ("adversarial", real_adversarial)):
        pairs = simtoreal.robustness_pairs(study[kind], real, kind=kind, seed=0)
        for paired in pairs.values():
            assert list(paired.index) == ["a", "b"]
            np.testing.assert_allclose(paired.synthetic, paired.real)


# ----------------------------------------------------------------------------------------------
# Agreements and verdicts
# ----------------------------------------------------------------------------------------------

def test_absolute_and_ratio_agreements_can_disagree_and_each_gets_its_own_verdict():
    # Synthetic: accurate models lose more (absolute order a<...<e, ratio order e<...<a).
    # Real: the same absolute order, but a model's clean IoU is what it keeps, so the ratio order flips.
    synthetic_clean = {m: 0.5 + 0.1 * k for k, m in enumerate(MODELS)}
    real_clean = {m: 0.95 - 0.05 * k for k, m in enumerate(MODELS)}

    def synthetic_iou(m, c, s, k):
        return synthetic_clean[m] - 0.05 * (1 + MODELS.index(m))

    def real_iou(m, c, s, k):
        return 0.2 + 0.05 * MODELS.index(m)

    synthetic = _corruption_rows(MODELS, iou=synthetic_iou, clean=lambda m, k: synthetic_clean[m])
    real = _real(_corruption_rows(MODELS, iou=real_iou, clean=lambda m, k: real_clean[m]))
    pairs = simtoreal.robustness_pairs(synthetic, real, kind="corruption", seed=0)
    table = simtoreal.agreement_table(pairs, n_boot=200, seed=0).set_index("agreement")
    assert table.loc["corruption_absolute", "r"] == pytest.approx(1.0)
    assert table.loc["corruption_absolute", "verdict"] == "supported"
    assert table.loc["corruption_ratio", "r"] == pytest.approx(-1.0)
    assert table.loc["corruption_ratio", "verdict"] == "contradicted"
    # 5 models: an exact test over 120 pairings; a perfect (anti-)correlation is 1 of them each way
    assert table.p.tolist() == pytest.approx([2 / 120, 2 / 120])
    assert table.n.tolist() == [5, 5]
    assert table.loc["corruption_ratio", "ranked_by"] == simtoreal.AGREEMENTS["corruption_ratio"]


def test_agreement_table_keeps_the_order_and_names_the_clean_agreement_apart():
    paired = pd.DataFrame({"synthetic": [0.1, 0.2, 0.3, 0.4], "real": [0.4, 0.1, 0.3, 0.2]})
    pairs = {name: paired for name in simtoreal.AGREEMENTS}
    table = simtoreal.agreement_table(pairs, n_boot=50)
    assert table.agreement.tolist() == list(simtoreal.AGREEMENTS)
    assert list(table.columns) == ["agreement", "ranked_by", "r", "low", "high", "p", "p_holm", "n", "verdict",
                                   "meaning"]
    assert "clean-IoU agreement" in table.ranked_by.iloc[0] and "not the paper's claim" in table.ranked_by.iloc[0]
    assert simtoreal.HEADLINE == "corruption_absolute" and simtoreal.HEADLINE in simtoreal.AGREEMENTS
    assert table.meaning.tolist() == [simtoreal.RANK_MEANINGS[v] for v in table.verdict]


def test_rank_agreement_carries_a_two_sided_permutation_p():
    rising = pd.DataFrame({"synthetic": [0.1, 0.2, 0.3, 0.4], "real": [0.2, 0.3, 0.5, 0.9]})
    result = simtoreal.rank_agreement(rising, n_boot=50)
    assert result.p == pytest.approx(2 / 24)  # exact over 4! pairings, both tails
    untestable = simtoreal.rank_agreement(rising.iloc[:2], n_boot=50)
    assert untestable.verdict == "not testable" and math.isnan(untestable.p)


def test_long_pairs_stack_every_agreement():
    paired = pd.DataFrame({"synthetic": [0.1, 0.2], "real": [0.3, 0.4]}, index=pd.Index(["a", "b"], name="model"))
    table = simtoreal.long_pairs({"clean": paired, "corruption_ratio": paired})
    assert list(table.columns) == ["agreement", "model", "synthetic", "real"]
    assert table.agreement.tolist() == ["clean", "clean", "corruption_ratio", "corruption_ratio"]
    assert table.model.tolist() == ["a", "b", "a", "b"]


def test_ranking_table_keeps_one_training_seed_when_asked():
    synthetic = pd.DataFrame({"structure": "nuclei", "regime": "standard", "model": ["a", "a", "b", "b"],
                              "seed": [0, 1, 0, 1], "iou": [0.8, 0.0, 0.6, 1.0]})
    scores = pd.DataFrame({"method": ["a", "b"], "regime": "standard", "source": "dsb2018", "iou": [0.5, 0.4]})
    assert simtoreal.ranking_table(synthetic, scores, models=["a", "b"], seed=0).synthetic.tolist() == [0.8, 0.6]
    assert simtoreal.ranking_table(synthetic, scores, models=["a", "b"]).synthetic.tolist() == [0.4, 0.8]
    with pytest.raises(ValueError, match="seed"):
        simtoreal.ranking_table(synthetic.drop(columns="seed"), scores, models=["a", "b"], seed=0)


# ----------------------------------------------------------------------------------------------
# Contracts
# ----------------------------------------------------------------------------------------------

def _study():
    return _attack_rows(["a", "b"], iou=lambda *a: 0.5, clean=lambda m, k: 0.8)


@pytest.mark.parametrize("change, match", [
    (lambda s, r: (s, r, {"kind": "robust"}), "kind"),
    (lambda s, r: (s.drop(columns="seed"), r, {}), r"synthetic: missing column\(s\) \['seed'\]"),
    (lambda s, r: (s, r.drop(columns="clean_iou"), {}), r"real: missing column\(s\) \['clean_iou'\]"),
    (lambda s, r: (s, r, {"seed": 3}), r"seed 3 \(seeds present: \[0\]\)"),
    (lambda s, r: (s, r, {"attack": "apgd"}), "no rows with attack 'apgd'"),
    (lambda s, r: (s, r.assign(model="z"), {}), "no model on both sides"),
    (lambda s, r: (s, r.assign(eps_255=32.0), {}), "no eps_255 that every model has"),
])
def test_bad_inputs_raise_naming_what_is_wrong(change, match):
    synthetic, real, kw = change(_study(), _real(_study()))
    kw = {"kind": "adversarial", "seed": 0, **kw}
    with pytest.raises(ValueError, match=match):
        simtoreal.robustness_pairs(synthetic, real, **kw)


def test_excluding_every_corruption_raises():
    synthetic = _corruption_rows(["a"], iou=lambda *a: 0.5, clean=lambda m, k: 0.8, corruptions=("brightness",))
    with pytest.raises(ValueError, match="no rows with a corruption outside"):
        simtoreal.robustness_pairs(synthetic, _real(synthetic), kind="corruption", seed=0, exclude=["brightness"])


def test_agreement_table_contracts():
    with pytest.raises(ValueError, match="pairs"):
        simtoreal.agreement_table({})
    with pytest.raises(ValueError, match=r"pairs\['x'\]: missing column"):
        simtoreal.agreement_table({"x": pd.DataFrame({"synthetic": [0.1, 0.2, 0.3]})})
    with pytest.raises(ValueError, match="n_boot"):
        simtoreal.agreement_table({"x": pd.DataFrame({"synthetic": [0.1], "real": [0.2]})}, n_boot=0)
    with pytest.raises(ValueError, match="pairs"):
        simtoreal.long_pairs({})


def test_docstring_examples():
    result = doctest.testmod(agreement, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 5 and not result.failed


def test_the_agreements_of_a_table_are_holm_corrected_together():
    perfect = pd.DataFrame({"synthetic": [0.1, 0.2, 0.3, 0.4, 0.5], "real": [0.2, 0.3, 0.4, 0.5, 0.6]})
    # two agreements of 5 models: p = 2/120 each, Holm 1/30, below the level
    two = simtoreal.agreement_table({"clean": perfect, "corruption_absolute": perfect}, n_boot=50)
    assert two.p_holm.tolist() == pytest.approx([2 / 60, 2 / 60]) and set(two.verdict) == {"supported"}
    # five of them: the smallest Holm-adjusted p any pairing of 5 models could give is 5 * 2/120 > 0.05
    five = simtoreal.agreement_table({name: perfect for name in simtoreal.AGREEMENTS}, n_boot=50)
    assert set(five.verdict) == {"not testable"}
