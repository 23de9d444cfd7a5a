import doctest
import math

import numpy as np
import pandas as pd
import pytest
import torch
from _models import threshold_segmenter

from fmlib import grid, simtoreal
from fmlib.checkpoints import DataSpec, checkpoint_folder
from fmlib.domain import randomized_dataset
from fmlib.metrics import robustness_ratio
from fmlib.models import create_model
from fmlib.profiles import Config, model_width, resolve
from fmlib.realdata import REAL_TEST_SOURCES, SELECTION_SOURCE, Tiles
from fmlib.simtoreal import comparisons
from fmlib.training import TrainConfig

SOURCES = [SELECTION_SOURCE, *REAL_TEST_SOURCES]


def _discs(n: int, size: int = 32, seed: int = 0) -> Tiles:
    """Bright discs on a dark background: tiles that Otsu segments almost perfectly."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    masks = np.stack([(yy - rng.uniform(10, size - 10)) ** 2 + (xx - rng.uniform(10, size - 10)) ** 2 < 36
                      for _ in range(n)])
    images = np.where(masks, 0.8, 0.15) + rng.normal(0, 0.01, masks.shape)
    return Tiles(images.astype(np.float32), masks, [f"discs{seed}/{k}" for k in range(n)])


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model("sim_unet").eval()


def _scores(rows: list[tuple[str, str, str, float]]) -> pd.DataFrame:
    """A score table with two tiles per (method, regime, source), both at the given IoU."""
    return pd.DataFrame([{"image": k, "tile": f"t/{k}", "iou": iou, "method": method, "regime": regime,
                          "source": source} for method, regime, source, iou in rows for k in range(2)])


# ----------------------------------------------------------------------------------------------
# Tiles
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n_tiles, n", [(10, 4), (64, 4), (5, 5), (7, 2), (101, 17)])
def test_spread_indices_cover_the_tiles_evenly_without_duplicates(n_tiles, n):
    picked = simtoreal.spread_indices(n_tiles, n)
    assert len(picked) == n and len(set(picked.tolist())) == n
    assert picked[0] == 0 and picked[-1] == n_tiles - 1
    assert np.all(np.diff(picked) > 0)
    gaps = np.diff(picked)
    assert gaps.max() - gaps.min() <= 1  # evenly spread


def test_spread_indices_round_to_the_nearest_tile():
    assert simtoreal.spread_indices(64, 4).tolist() == [0, 21, 42, 63]
    assert simtoreal.spread_indices(64, 5).tolist() == [0, 16, 32, 47, 63]  # 15.75, 31.5, 47.25 rounded


def test_spread_indices_are_capped_at_the_number_of_tiles():
    assert simtoreal.spread_indices(3, 8).tolist() == [0, 1, 2]
    assert simtoreal.spread_indices(1, 4).tolist() == [0]
    assert simtoreal.spread_indices(0, 4).tolist() == []
    with pytest.raises(ValueError, match="n"):
        simtoreal.spread_indices(5, -1)


def test_spread_tiles_keep_images_masks_and_names_together():
    tiles = _discs(9)
    picked = simtoreal.spread_tiles(tiles, 3)
    assert picked.names == ["discs0/0", "discs0/4", "discs0/8"]
    np.testing.assert_array_equal(picked.images, tiles.images[[0, 4, 8]])
    np.testing.assert_array_equal(picked.masks, tiles.masks[[0, 4, 8]])
    assert len(simtoreal.spread_tiles(tiles, 50).names) == 9


def test_validation_split_holds_out_the_first_fifth():
    tiles = _discs(11)
    train, val = simtoreal.validation_split(tiles)
    assert val.names == ["discs0/0", "discs0/1"] and train.names == [f"discs0/{k}" for k in range(2, 11)]
    np.testing.assert_array_equal(train.images, tiles.images[2:])
    train, val = simtoreal.validation_split(_discs(3))
    assert len(val.names) == 1 and len(train.names) == 2  # at least one validation tile
    with pytest.raises(ValueError, match="tiles"):
        simtoreal.validation_split(_discs(1))


def test_as_tiles_names_synthetic_images():
    ds = randomized_dataset("nuclei", 2, 32, seed=0)
    tiles = simtoreal.as_tiles(ds)
    assert tiles.names == ["synthetic/0", "synthetic/1"] and tiles.images is ds.images


# ----------------------------------------------------------------------------------------------
# Score tables
# ----------------------------------------------------------------------------------------------

def test_pool_scores_score_every_model_on_every_source_and_the_baseline_on_the_test_sources():
    tiles = {SELECTION_SOURCE: _discs(3, seed=1), "dsb2018": _discs(2, seed=2), "bbbc007_test": _discs(4, seed=3)}
    loaded = []

    def pool():  # a generator: each model is loaded when it is scored
        for name, regime, seed in (("a", "standard", 0), ("b", "standard", 1), ("a", "noise", 2)):
            loaded.append(name)
            yield name, regime, _model(seed)

    scores = simtoreal.pool_scores(pool(), tiles, sources=SOURCES, baseline_sources=REAL_TEST_SOURCES)
    assert list(scores.columns) == ["image", "tile", "iou", "dice", "precision", "recall", "method", "regime",
                                    "source"]
    assert loaded == ["a", "b", "a"] and scores.index.equals(pd.RangeIndex(len(scores)))
    models = scores[scores.method != simtoreal.BASELINE]
    assert len(models) == 3 * (3 + 2 + 4)
    assert models.groupby(["method", "regime"]).source.unique().map(list).tolist() == [SOURCES] * 3
    baseline = scores[scores.method == simtoreal.BASELINE]
    assert (baseline.regime == simtoreal.BASELINE_REGIME).all()
    assert baseline.source.tolist() == ["dsb2018"] * 2 + ["bbbc007_test"] * 4  # never the selection source
    assert baseline.tile.tolist() == tiles["dsb2018"].names + tiles["bbbc007_test"].names
    assert baseline.index.min() > models.index.max()  # rows after the models'
    assert (baseline.iou > 0.8).all()  # Otsu finds bright discs
    # Without baseline sources, only the models.
    only = simtoreal.pool_scores([("a", "standard", _model(0))], tiles, sources=["dsb2018"], baseline_sources=[])
    assert set(only.method) == {"a"} and len(only) == 2
    with pytest.raises(ValueError, match="models"):
        simtoreal.pool_scores([], tiles, baseline_sources=[])


def test_source_scores_add_the_columns_in_order():
    tiles = {"x": _discs(2), "y": _discs(3, seed=1)}
    table = simtoreal.source_scores(_model(0), tiles, ["y", "x"], method="m", strength=0.5)
    assert list(table.columns[-3:]) == ["method", "strength", "source"]
    assert table.source.tolist() == ["y"] * 3 + ["x"] * 2 and (table.strength == 0.5).all()
    # Positional-only model and tiles: any column name is free, "model" included.
    assert (simtoreal.source_scores(_model(0), tiles, ["x"], model="m").model == "m").all()
    # A predictor replaces the plain prediction: the reference masks score IoU 1 on every tile.
    oracle = simtoreal.source_scores(_model(0), tiles, ["x"], predictor=lambda _, t: t.masks > 0, method="m")
    assert np.allclose(oracle.iou, 1.0) and (oracle.method == "m").all()


def test_candidate_scores_have_one_block_per_strength():
    tiles = {"x": _discs(2)}
    candidates = {0.0: simtoreal.Candidate(_model(0), None), 1.0: simtoreal.Candidate(_model(1), None)}
    table = simtoreal.candidate_scores(candidates, tiles, ["x"], method="unet")
    assert table.strength.tolist() == [0.0, 0.0, 1.0, 1.0] and (table.method == "unet").all()
    assert table.iou.iloc[0] != table.iou.iloc[2]  # each strength's own model


# ----------------------------------------------------------------------------------------------
# Choosing on the selection source
# ----------------------------------------------------------------------------------------------

def test_the_best_architecture_is_chosen_on_the_selection_source_only():
    scores = _scores([("a", "standard", SELECTION_SOURCE, 0.5), ("a", "standard", "dsb2018", 0.9),
                      ("b", "standard", SELECTION_SOURCE, 0.6), ("b", "standard", "dsb2018", 0.2),
                      ("c", "noise", SELECTION_SOURCE, 0.95),  # best, but not in the standard regime
                      (simtoreal.BASELINE, "-", "dsb2018", 0.99)])
    assert simtoreal.best_architecture(scores) == "b"
    assert simtoreal.best_architecture(scores, regime="noise") == "c"
    with pytest.raises(ValueError, match="test source"):
        simtoreal.best_architecture(scores, source="dsb2018")
    with pytest.raises(ValueError, match="no rows"):
        simtoreal.best_architecture(scores, regime="adversarial")


def test_the_best_strength_is_chosen_on_the_selection_source():
    summary = pd.DataFrame({"source": [SELECTION_SOURCE] * 3 + ["dsb2018"] * 3, "strength": [0.0, 0.5, 1.0] * 2,
                            "mean": [0.4, 0.6, 0.5, 0.9, 0.1, 0.2]})
    assert simtoreal.best_strength(summary) == 0.5
    assert isinstance(simtoreal.best_strength(summary), float)
    with pytest.raises(ValueError, match="test source"):
        simtoreal.best_strength(summary, source="bbbc007_test")
    with pytest.raises(ValueError, match="test source"):
        simtoreal.best_strength(summary, source="ndev_scratch")


# ----------------------------------------------------------------------------------------------
# Training the comparisons
# ----------------------------------------------------------------------------------------------

def _weights(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_the_real_reference_trains_on_the_training_part_with_its_seed(tmp_path, monkeypatch):
    tiles = _discs(6)
    kwargs = dict(epochs=2, batch_size=2, lr=1e-3, loss="bce+dice", seed=3, cache=tmp_path)
    fitted = simtoreal.fit_real_reference("sim_unet", tiles, **kwargs)
    train, _ = simtoreal.validation_split(tiles)
    per_epoch = len(train.images) // 2  # steps per pass over the training part, validated after each
    assert fitted.config == TrainConfig(max_steps=2 * per_epoch, eval_every=per_epoch, schedule="cosine",
                                        batch_size=2, lr=1e-3, loss="bce+dice", seed=3)
    assert 0 < fitted.steps <= 2 * per_epoch
    other_seed = simtoreal.fit_real_reference("sim_unet", tiles, **{**kwargs, "seed": 4})
    assert not torch.equal(_weights(fitted.model), _weights(other_seed.model))
    # Cached: the same tiles and arguments load the same weights and history, without training again.
    monkeypatch.setattr(comparisons, "fit", lambda *a, **k: pytest.fail("trained the cached reference again"))
    again = simtoreal.fit_real_reference("sim_unet", tiles, **kwargs)
    assert torch.equal(_weights(fitted.model), _weights(again.model)) and not again.model.training
    assert (again.steps, again.best_step, again.converged, again.key) == (fitted.steps, fitted.best_step,
                                                                         fitted.converged, fitted.key)
    pd.testing.assert_frame_equal(again.history, fitted.history)
    with pytest.raises(pytest.fail.Exception, match="trained the cached reference again"):  # other tiles
        simtoreal.fit_real_reference("sim_unet", tiles._replace(images=tiles.images[::-1].copy()), **kwargs)


def test_randomized_candidates_train_on_their_own_scenes_at_each_strength(tmp_path, monkeypatch):
    monkeypatch.setenv("FMROBUST_CACHE", str(tmp_path))
    config = TrainConfig(max_steps=2, eval_every=1, batch_size=2, seed=5)
    candidates = simtoreal.randomized_candidates("sim_unet", [1.0, 0.5, 0.0], config, n_train=4, n_val=1, size=32,
                                                 seed=5, progress=False, n_shown=3)
    assert list(candidates) == [1.0, 0.5, 0.0]
    for strength, (model, train_set, converged) in candidates.items():
        spec = DataSpec("nuclei", n_train=4, n_val=1, size=32, snr=8.0, seed=5, randomization=strength)
        np.testing.assert_array_equal(train_set.images, spec.make()[0].images[:3])  # the first of its pool
        assert isinstance(model, torch.nn.Module) and isinstance(converged, bool)
        # trained through the study's cache, under the key of its data specification
        assert (checkpoint_folder("sim_unet", 1.0, spec, config) / "done.json").exists()
    physics = [candidates[s].train_set.metadata[0]["physics"]["snr"] for s in (1.0, 0.5)]
    assert physics[0] != physics[1]
    # Strength 0 is the paper's single acquisition at SNR 8; asked again, every strength is loaded, not retrained.
    assert "physics" not in candidates[0.0].train_set.metadata[0]
    again = simtoreal.randomized_candidates("sim_unet", [0.5], config, n_train=4, n_val=1, size=32, seed=5,
                                            progress=False, cache=tmp_path)
    assert torch.equal(_weights(again[0.5].model), _weights(candidates[0.5].model))


def test_the_candidates_at_the_grids_strengths_are_the_grids_own_models(tmp_path, monkeypatch):
    monkeypatch.setenv("FMROBUST_CACHE", str(tmp_path))
    cfg = resolve("smoke", n_train=4, n_val=1, image_size=32, max_steps=2, eval_every=1)
    for regime, strength in (("standard", 0.0), ("randomized", cfg.training_randomization)):
        job = next(j for j in grid.training_jobs(cfg) if (j.model, j.structure, j.regime, j.seed) == (
            "sim_unet", "nuclei", regime, cfg.seed))
        grid.train_job(job, progress=False)
        candidate = simtoreal.randomized_candidates(
            "sim_unet", [strength], grid.train_config(cfg, "randomized", model="sim_unet"), n_train=cfg.n_train,
            n_val=cfg.n_val, size=cfg.image_size, seed=cfg.seed, width=model_width(cfg, "sim_unet"),
            progress=False)[strength]
        trained = grid.trained_model(cfg, "sim_unet", "nuclei", regime).model
        assert torch.equal(_weights(candidate.model), _weights(trained))


def test_robustness_tables_label_models_and_add_the_robustness():
    cfg = Config(corruptions=["gaussian_blur"], seed=0, eps_255=[4], n_attack_images=1, attack_steps=1)
    tiles = _discs(2)
    corruption, adversarial = simtoreal.robustness_tables(cfg, [("a", _model(0)), ("b", _model(1))], tiles,
                                                          progress=False)
    assert corruption.model.tolist() == ["a"] * 10 + ["b"] * 10  # 2 tiles x 5 severities each
    np.testing.assert_array_equal(corruption.robustness, robustness_ratio(corruption.iou, corruption.clean_iou))
    assert set(adversarial.attack) == {"pgd", "noise"} and set(adversarial.model) == {"a", "b"}
    assert list(corruption.columns[-2:]) == ["model", "robustness"]


def test_robust_tables_give_each_model_the_ensembles_worst_case_on_the_first_attack_tiles():
    cfg = Config(seed=0, ensemble_eps_255=[8, 32], n_attack_images=2, attack_steps=1, ensemble_steps=2,
                 ensemble_max_steps=2, ensemble_restarts=1)
    tiles = _discs(3)
    # thresholds at 0.5 segment the discs of `_discs`: clean IoU 1, gradients everywhere
    robust = simtoreal.robust_tables(cfg, [("a", threshold_segmenter(8.0)), ("b", threshold_segmenter(30.0))], tiles,
                                     progress=False)
    assert set(robust.attack) == {"ensemble"} and robust.model.tolist() == ["a"] * 4 + ["b"] * 4
    assert sorted(robust.image.unique()) == [0, 1]  # the first n_attack_images tiles only
    assert (robust.iou <= robust.paper_attacks_iou + 1e-9).all()  # never weaker than FGSM, I-FGSM, PGD
    with pytest.raises(ValueError, match="models"):
        simtoreal.robust_tables(cfg, [], tiles, progress=False)


# ----------------------------------------------------------------------------------------------
# The sim-to-real bar
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("model_iou, otsu_iou, verdict", [
    (0.80, 0.60, "met"),
    (0.75, 0.60, "met"),  # the bar is inclusive
    (0.70, 0.60, "not met: it beats Otsu but stays below the IoU bar"),
    (0.80, 0.85, "not met"),  # above the bar but not above Otsu
    (0.50, 0.60, "not met"),
])
def test_bar_verdict(model_iou, otsu_iou, verdict):
    assert simtoreal.bar_verdict(model_iou, otsu_iou, bar_iou=0.75) == verdict


def _bar_tables(dsb_b: float, otsu: float):
    scores = _scores([("a", "standard", SELECTION_SOURCE, 0.5), ("a", "standard", "dsb2018", 0.95),
                      ("b", "noise", SELECTION_SOURCE, 0.7), ("b", "noise", "dsb2018", dsb_b),
                      ("a", "real", SELECTION_SOURCE, 0.99), ("a", "real", "dsb2018", 0.99),  # not a candidate
                      (simtoreal.BASELINE, "-", "dsb2018", otsu)])
    randomized = pd.DataFrame([{"iou": iou, "method": "a", "strength": strength, "source": source}
                               for strength, source, iou in ((0.5, SELECTION_SOURCE, 0.6), (0.5, "dsb2018", 0.3),
                                                             (1.0, SELECTION_SOURCE, 0.9), (1.0, "dsb2018", 0.3))])
    return scores, randomized


@pytest.mark.parametrize("dsb_b, otsu, verdict", [
    (0.8, 0.6, "met"),
    (0.7, 0.6, "not met: it beats Otsu but stays below the IoU bar"),
    (0.8, 0.9, "not met"),
])
def test_the_bar_picks_on_the_selection_source_and_judges_on_the_dsb_image(dsb_b, otsu, verdict):
    scores, randomized = _bar_tables(dsb_b, otsu)
    bar = simtoreal.sim_to_real_bar(scores, randomized, regimes=["standard", "noise"], strength=0.5, bar_iou=0.75)
    assert sorted(bar.candidates.index) == ["a (randomized, strength 0.5)", "a (standard)", "b (noise)"]
    # b is best on the selection source, though a (standard) is far better on the DSB image.
    assert bar.model == "b (noise)" and bar.model_iou == pytest.approx(dsb_b)
    assert bar.baseline_iou == pytest.approx(otsu) and bar.bar_iou == 0.75 and bar.verdict == verdict
    assert bar.best_any_model == "a (standard)" and bar.best_any_iou == pytest.approx(0.95)


def test_the_randomized_candidate_joins_the_bar_at_the_chosen_strength_only():
    scores, randomized = _bar_tables(0.8, 0.6)
    bar = simtoreal.sim_to_real_bar(scores, randomized, regimes=["standard", "noise"], strength=1.0, bar_iou=0.75)
    assert bar.model == "a (randomized, strength 1)" and bar.verdict == "not met"  # 0.3 on the DSB image
    assert "a (randomized, strength 0.5)" not in bar.candidates.index
    with pytest.raises(ValueError, match="test source"):
        simtoreal.sim_to_real_bar(scores, randomized, regimes=["standard"], strength=1.0, bar_iou=0.75,
                                  source="dsb2018")
    with pytest.raises(ValueError, match="bar_iou"):
        simtoreal.sim_to_real_bar(scores, randomized, regimes=["standard"], strength=1.0, bar_iou=75)


# ----------------------------------------------------------------------------------------------
# Rank agreement
# ----------------------------------------------------------------------------------------------

def test_ranking_table_pairs_the_standard_models_on_the_test_sources():
    synthetic = pd.DataFrame({"structure": ["nuclei"] * 4 + ["er"], "regime": ["standard"] * 3 + ["noise", "standard"],
                              "model": ["a", "b", "c", "a", "a"], "iou": [0.8, 0.6, 0.7, 0.0, 0.0]})
    scores = _scores([("a", "standard", "dsb2018", 0.5), ("a", "standard", "bbbc007_test", 0.3),
                      ("a", "standard", SELECTION_SOURCE, 0.0),  # the selection source does not count
                      ("b", "standard", "dsb2018", 0.2), ("a", "noise", "dsb2018", 0.0),
                      ("c (trained on real)", "standard", "dsb2018", 0.9)])
    paired = simtoreal.ranking_table(synthetic, scores, models=["a", "b", "c"])
    assert list(paired.columns) == ["synthetic", "real"] and list(paired.index) == ["a", "b"]  # c: no real score
    assert paired.loc["a"].tolist() == pytest.approx([0.8, 0.4])
    assert paired.loc["b"].tolist() == pytest.approx([0.6, 0.2])


def _paired(synthetic, real):
    return pd.DataFrame({"synthetic": synthetic, "real": real}, index=[f"m{k}" for k in range(len(real))])


def test_rank_agreement_verdicts():
    agree = simtoreal.rank_agreement(_paired([0.5, 0.6, 0.7, 0.8, 0.9], [0.1, 0.3, 0.35, 0.5, 0.6]), n_boot=200)
    assert agree.verdict == "supported" and agree.r == pytest.approx(1.0) and agree.low > 0 and agree.n == 5
    assert agree.meaning == simtoreal.RANK_MEANINGS["supported"]
    reverse = simtoreal.rank_agreement(_paired([0.5, 0.6, 0.7, 0.8, 0.9], [0.6, 0.5, 0.35, 0.3, 0.1]), n_boot=200)
    assert reverse.verdict == "contradicted" and reverse.r == pytest.approx(-1.0) and reverse.high < 0
    rng = np.random.default_rng(0)
    mixed = simtoreal.rank_agreement(_paired(rng.uniform(size=8), rng.uniform(size=8)), n_boot=200)
    assert mixed.verdict == "inconclusive" and mixed.low < 0 < mixed.high
    assert "cannot tell" in mixed.meaning


@pytest.mark.parametrize("paired", [
    _paired([0.8, 0.7], [0.5, 0.4]),  # two models
    _paired([0.8, 0.8, 0.8], [0.1, 0.2, 0.3]),  # constant synthetic scores
    _paired([0.8, 0.7, 0.6], [0.2, 0.2, 0.2]),  # constant real scores
])
def test_rank_agreement_is_not_testable_with_few_models_or_constant_scores(paired):
    agreement = simtoreal.rank_agreement(paired, n_boot=50)
    assert agreement.verdict == "not testable" and agreement.n == len(paired)
    assert math.isnan(agreement.r) and math.isnan(agreement.low) and math.isnan(agreement.high)
    assert agreement.meaning == simtoreal.RANK_MEANINGS["not testable"]


def test_every_verdict_has_a_meaning():
    assert set(simtoreal.RANK_MEANINGS) == {"supported", "contradicted", "inconclusive", "not testable"}


def test_docstring_examples():
    from fmlib.simtoreal import comparisons, objects, scores, tiles, verdicts

    results = [doctest.testmod(m, optionflags=doctest.NORMALIZE_WHITESPACE) for m in (tiles, scores, comparisons,
                                                                                       verdicts, objects)]
    assert sum(r.attempted for r in results) >= 5 and not any(r.failed for r in results)


def test_object_scores_of_a_pool_and_the_baseline_say_who_labelled_each_source():
    from fmlib import realdata

    real = realdata.nuclei_tiles(64)
    sources = list(realdata.ALL_REAL_TEST_SOURCES)
    tiles = {s: simtoreal.spread_tiles(real[s], 3) for s in sources}
    assert all(t.labels is not None and len(t.labels) == 3 for t in tiles.values())
    torch.manual_seed(0)
    pool = [("sim_unet", "standard", create_model("sim_unet").eval())]
    counts = simtoreal.object_counts(pool, tiles, sources)
    assert set(counts.method) == {"sim_unet", simtoreal.BASELINE}
    assert dict(zip(counts.source, counts.labelling)) == {"dsb2018": "expert", "bbbc007_test": "automatic",
                                                          "ndev_scratch": "automatic"}
    assert len(counts) == 2 * 3 * 3 * 10  # methods x sources x tiles x thresholds
    scores = simtoreal.object_scores(counts, n_boot=50)
    assert set(scores.metric) == {"f1", "ap"} and len(scores) == 2 * 3 * 11
    otsu = simtoreal.predicted_instances(None, tiles["dsb2018"])
    assert np.array_equal(otsu[0], realdata.otsu_watershed(tiles["dsb2018"].images[0]))
    with pytest.raises(ValueError, match="instance labels"):
        simtoreal.object_counts(pool, {"dsb2018": tiles["dsb2018"]._replace(labels=None)}, ["dsb2018"])
    # A labeller stands in for the model's own nuclei (a size normalizer, say), not for the baseline's:
    # here the reference labels, found perfectly at every threshold.
    oracle = simtoreal.object_counts(pool, tiles, ["dsb2018"], labeller=lambda _, t: t.labels)
    found = oracle[oracle.method == "sim_unet"]
    assert (found.fp == 0).all() and (found.fn == 0).all() and found.tp.sum() > 0
    assert oracle[oracle.method == simtoreal.BASELINE].fp.sum() == counts[
        (counts.method == simtoreal.BASELINE) & (counts.source == "dsb2018")].fp.sum()


def test_object_scores_average_the_training_seeds_of_an_architecture():
    from fmlib import realdata

    tiles = {"dsb2018": simtoreal.spread_tiles(realdata.nuclei_tiles(64)["dsb2018"], 3)}
    torch.manual_seed(0)
    nets = [create_model("sim_unet").eval() for _ in range(2)]
    pool = (("sim_unet", "standard", net, seed) for seed, net in enumerate(nets))  # a generator will do
    counts = simtoreal.object_counts(pool, tiles, ["dsb2018"])
    assert set(counts[counts.method == "sim_unet"].seed) == {0, 1}
    assert counts[counts.method == simtoreal.BASELINE].seed.isna().all()
    scores = simtoreal.object_scores(counts, n_boot=50).set_index(["method", "metric", "threshold"])
    per_seed = simtoreal.object_scores(counts[counts.seed == 1].drop(columns="seed"), n_boot=50).set_index(
        ["method", "metric", "threshold"])
    first = simtoreal.object_scores(counts[counts.seed == 0].drop(columns="seed"), n_boot=50).set_index(
        ["method", "metric", "threshold"])
    model = scores.loc["sim_unet"]
    assert (model.n_seeds == 2).all() and (scores.loc[simtoreal.BASELINE].n_seeds == 1).all()
    assert np.allclose(model.estimate, (first.loc["sim_unet"].estimate + per_seed.loc["sim_unet"].estimate) / 2)
    with pytest.raises(ValueError, match="models: expected"):
        simtoreal.object_counts([("sim_unet", "standard")], tiles, ["dsb2018"])


def test_object_score_values_name_each_quoted_score_and_the_table_has_a_column_per_score():
    rows = [{"source": "s", "labelling": "expert", "method": m, "regime": r, "metric": metric, "threshold": t,
             "estimate": e, "ci_low": e - 0.1, "ci_high": e + 0.1}
            for m, r, e in (("a", "standard", 0.8), (simtoreal.BASELINE, simtoreal.BASELINE_REGIME, 0.6))
            for metric, t in (("f1", 0.5), ("f1", 0.75), ("f1", 0.9), ("f1", 0.95), ("ap", np.nan))]
    scores = pd.DataFrame(rows)
    values = simtoreal.object_score_values(scores, {"best": ("a", "standard"),
                                                    "otsu": (simtoreal.BASELINE, simtoreal.BASELINE_REGIME)}, ["s"])
    assert len(values) == 2 * 2 * 3  # labels x metrics x (estimate, low, high)
    assert values["s_best_f1"] == 0.8 and values["s_otsu_ap_low"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="methods: no f1 score of 'b'"):
        simtoreal.object_score_values(scores, {"x": ("b", "standard")}, ["s"])
    table = simtoreal.object_score_table(scores)
    assert set(table.columns) == {"F1 @ IoU 0.5", "F1 @ IoU 0.75", "F1 @ IoU 0.9", "AP"}  # not 0.95
    assert len(table) == 2 and table.loc[("s", "expert", "a", "standard"), "AP"] == 0.8


def test_the_median_architecture_as_objects_against_the_baseline():
    rows = [{"source": src, "method": m, "regime": "standard", "metric": "f1", "threshold": 0.5, "estimate": v,
             "ci_low": v - 0.05, "ci_high": v + 0.05} for src in ("dsb2018", "other")
            for m, v in zip("abcd", (0.55, 0.70, 0.74, 0.80))]
    rows += [{"source": "dsb2018", "method": simtoreal.BASELINE, "regime": simtoreal.BASELINE_REGIME, "metric": "f1",
              "threshold": 0.5, "estimate": 0.73, "ci_low": 0.68, "ci_high": 0.78},
             {"source": "dsb2018", "method": "a", "regime": "standard", "metric": "f1", "threshold": 0.75,
              "estimate": 0.99, "ci_low": 0.9, "ci_high": 1.0}]
    out = simtoreal.median_against_baseline(pd.DataFrame(rows), source="dsb2018")
    assert out["median"] == pytest.approx(0.72) and out["baseline"] == 0.73  # the other threshold is not mixed in
    assert (out["n_above"], out["n_methods"], out["baseline_low"], out["verdict"]) == (2, 4, 0.68, "within")
    with pytest.raises(ValueError, match="one 'otsu_watershed' row"):
        simtoreal.median_against_baseline(pd.DataFrame(rows), source="other")
    with pytest.raises(ValueError, match="metric"):
        simtoreal.median_against_baseline(pd.DataFrame(rows), source="dsb2018", metric="iou")
