import pytest

from fmlib import evaluation, grid, profiles
from fmlib.checkpoints import load_trained, train, training_key
from fmlib.grid import eval_grid


def test_defended_regimes_only_on_the_defense_structures():
    cfg = profiles.resolve("smoke", models=["unet3"], defense_structures=["nuclei"])
    jobs = grid.training_jobs(cfg)
    assert {(j.structure, j.regime) for j in jobs} == {("nuclei", "standard"), ("nuclei", "randomized"),
                                                       ("nuclei", "noise"), ("nuclei", "adversarial"),
                                                       ("mitochondria", "standard"), ("er", "standard")}
    assert grid.regimes_for(cfg, "er") == ["standard"]
    assert grid.regimes_for(cfg, "nuclei") == ["standard", "randomized", "noise", "adversarial"]


def test_every_regime_has_its_seeds_and_its_data():
    cfg = profiles.resolve("smoke", models=["unet3"], defense_structures=["nuclei"], n_seeds=3, n_defense_seeds=1)
    seeds = {}
    for job in grid.training_jobs(cfg):
        seeds.setdefault((job.structure, job.regime), []).append(job.seed)
        assert job.data.randomization == (cfg.training_randomization if job.regime == "randomized" else 0.0)
    assert seeds[("nuclei", "standard")] == [0, 1, 2]
    assert seeds[("nuclei", "randomized")] == seeds[("nuclei", "noise")] == seeds[("nuclei", "adversarial")] == [0]
    assert seeds[("er", "standard")] == [0]
    assert grid.seeds_for(cfg, "nuclei", "adversarial") == [0]


def test_a_family_gets_its_recipe_and_a_model_its_own_over_it():
    cfg = profiles.resolve("smoke", models=["unet3", "segformer", "vit_dpt"],
                           recipes={"transformer": {"lr": 5e-4, "warmup_steps": 7}, "vit_dpt": {"batch_size": 2}})

    def settings(model):
        config = grid.train_config(cfg, "standard", model=model)
        return config.lr, config.warmup_steps, config.batch_size

    assert settings("segformer") == (5e-4, 7, cfg.batch_size)
    assert settings("vit_dpt") == (5e-4, 7, 2)  # its own batch over its family's settings
    assert settings("unet3") == (cfg.lr, 0, cfg.batch_size)
    assert grid.train_config(cfg, "standard") == grid.train_config(profiles.resolve("smoke"), "standard")


def test_the_standard_recipes_re_train_only_the_models_they_name():
    cfg = profiles.resolve("standard")
    assert grid.train_config(cfg, "standard", model="pspnet").batch_size == 16
    for model in ("unet", "icnet", "deeplabv3plus"):  # the other CNNs: the shared recipe
        assert grid.train_config(cfg, "standard", model=model) == grid.train_config(cfg, "standard")


@pytest.mark.parametrize("recipes, match", [
    ({"transformer": {"momentum": 0.9}}, "recipes\\['transformer'\\]: expected a dict with keys among lr"),
    ({"cnns": {"lr": 1e-3}}, "recipes key"),
    ({"pspnet": {"batch_size": 0}}, "recipes\\['pspnet'\\]\\['batch_size'\\]"),
    ([1], "recipes: expected a dict of model family or model name"),
])
def test_a_bad_recipe_is_refused_naming_where(recipes, match):
    with pytest.raises(ValueError, match=match):
        profiles.resolve("smoke", recipes=recipes)


def test_train_config_follows_the_study_parameters():
    cfg = profiles.resolve("smoke", loss="bce", lr=1e-3)
    config = grid.train_config(cfg, "adversarial")
    assert (config.loss, config.lr, config.defense, config.adv_method) == ("bce", 1e-3, "adversarial", cfg.adv_method)
    assert grid.train_config(profiles.resolve("smoke"), "standard").loss == "bce+dice"
    with pytest.raises(ValueError, match="regime"):
        grid.train_config(cfg, "mixup")
    with pytest.raises(ValueError, match="loss"):
        profiles.resolve("smoke", loss="focal")


# ----------------------------------------------------------------------------------------------
# Evaluations, cached
# ----------------------------------------------------------------------------------------------

def test_every_trained_model_gets_its_evaluations_with_its_regimes_attacks():
    cfg = profiles.resolve("smoke", models=["unet3"], defense_structures=["nuclei"])
    jobs = grid.evaluation_jobs(cfg)
    kinds = {}
    for j in jobs:
        kinds.setdefault((j.training.structure, j.training.regime, j.training.seed), []).append(j.kind)
    # every seed: clean, corruption, robust; the first seed also the paper's attacks; the surrogate
    # (unet3 itself here) transfers to itself from its second seed, which only nuclei has
    assert kinds[("nuclei", "standard", 0)] == ["clean", "corruption", "attack", "robust", "transfer"]
    assert kinds[("nuclei", "standard", 1)] == ["clean", "corruption", "robust"]
    # a defended model gets the strength checks too: one FGSM step, noise and the transfer
    assert kinds[("nuclei", "adversarial", 0)] == ["clean", "corruption", "attack", "robust", "transfer"]
    assert ("nuclei", "adversarial", 1) not in kinds  # the defenses train one seed at smoke
    assert ("nuclei", "randomized", 1) not in kinds  # randomized is compared as a defense: one seed at smoke
    assert kinds[("er", "standard", 0)] == ["clean", "corruption", "attack", "robust"]
    transfer = {j.training.regime: j for j in jobs if j.kind == "transfer"}
    assert (transfer["standard"].surrogate.model, transfer["standard"].surrogate.seed) == ("unet3", 1)
    # the adversarially trained unet3 is another model than the surrogate: first seed's examples
    assert (transfer["adversarial"].surrogate.regime, transfer["adversarial"].surrogate.seed) == ("standard", 0)
    attacks = {(j.training.structure, j.training.regime): dict(j.parameters) for j in jobs if j.kind == "attack"}
    assert attacks[("er", "standard")]["attacks"] == tuple(cfg.attacks)
    assert attacks[("er", "standard")]["noise_baseline"]
    assert attacks[("nuclei", "adversarial")]["attacks"] == ("fgsm", cfg.defense_attack)
    assert attacks[("nuclei", "adversarial")]["noise_baseline"]
    with pytest.raises(ValueError, match="kind"):
        grid.evaluation_job(cfg, "robustness", grid.training_jobs(cfg)[0])
    with pytest.raises(ValueError, match="kind: no transfer surrogate"):
        grid.evaluation_job(cfg, "transfer", next(j for j in grid.training_jobs(cfg) if j.structure == "er"))


def test_training_seeds_are_a_grid_dimension():
    cfg = profiles.resolve("smoke", models=["unet3"], n_seeds=3, seed_structures=["nuclei"], seed=5)
    jobs = grid.training_jobs(cfg)
    seeds = {(j.structure, j.regime): sorted(x.seed for x in jobs if (x.structure, x.regime) == (j.structure, j.regime))
             for j in jobs}
    assert seeds[("nuclei", "standard")] == [5, 6, 7]
    assert seeds[("nuclei", "randomized")] == [5]  # compared with standard as a defense: n_defense_seeds
    assert seeds[("nuclei", "adversarial")] == [5]  # the smoke profile's n_defense_seeds
    assert seeds[("er", "standard")] == [5]
    assert len({training_key(j.model, j.width, j.data, j.config) for j in jobs}) == len(jobs)
    # the same scenes for every seed: one data specification per regime's distribution
    assert len({j.data for j in jobs if j.structure == "nuclei" and j.regime != "randomized"}) == 1
    with pytest.raises(ValueError, match="seeds \\[5\\]"):
        grid.trained_model(cfg, "unet3", "er", "standard", seed=6)


def test_an_evaluation_key_follows_only_the_parameters_it_reads():
    def key(kind, **overrides):
        cfg = profiles.resolve("smoke", **overrides)
        return grid.evaluation_key(grid.evaluation_job(cfg, kind, grid.training_jobs(cfg)[0]))

    assert key("corruption") == key("corruption", n_boot=50, attack_steps=7)  # neither is read by a corruption run
    assert key("corruption") != key("corruption", corruptions=["defocus"])
    assert key("attack") != key("attack", attack_steps=7)
    assert key("attack") == key("attack", corruptions=["defocus"])
    assert key("robust") != key("robust", ensemble_steps=7)
    assert key("robust") == key("robust", n_seeds=3)
    assert key("clean") != key("clean", n_test=3)  # another test set
    assert key("clean") != key("clean", max_steps=2)  # another model


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A smoke grid of one model on nuclei, trained into a cache of its own."""
    cache = tmp_path_factory.mktemp("cache")
    cfg = profiles.resolve("smoke", models=["sim_unet"], reference_model="sim_unet", transfer_surrogate="sim_unet",
                           structures=["nuclei"], regimes=["standard"], n_seeds=1,
                           corruptions=["defocus", "photon_noise"], attacks=["fgsm"], eps_255=[2, 8])
    job = grid.training_jobs(cfg)[0]
    train(job.model, job.data, job.config, width=job.width, cache=cache, progress=False)
    return cfg, cache


def test_an_evaluation_is_computed_once_then_read_from_the_cache(trained, monkeypatch):
    import numpy as np
    import pandas as pd

    cfg, cache = trained
    computed = grid.evaluation(cfg, "corruption", "sim_unet", "nuclei", cache=cache)
    assert set(computed.corruption) == {"defocus", "photon_noise"} and len(computed) == 2 * 5 * cfg.n_test
    assert set(computed.model) == {"sim_unet"} and set(computed.regime) == {"standard"}
    path = grid.evaluation_path(grid.evaluation_jobs(cfg)[1], cache)
    assert path.exists() and not list(path.parent.glob(".*.tmp"))  # written whole, no scratch file left

    def fail(*args, **kwargs):
        raise AssertionError("recomputed a cached evaluation")

    monkeypatch.setattr(eval_grid, "corruption_table", fail)
    cached = grid.evaluation(cfg, "corruption", "sim_unet", "nuclei", cache=cache)
    pd.testing.assert_frame_equal(cached, computed)
    # The cache keeps every float bit: the table read back equals the table computed in memory.
    job = grid.training_jobs(cfg)[0]
    net = load_trained(job.model, job.data, job.config, width=job.width, cache=cache).model
    monkeypatch.undo()
    fresh = evaluation.corruption_table(cfg, net, grid.test_set(cfg, "nuclei"))
    assert np.array_equal(fresh.iou.to_numpy(), cached.iou.to_numpy())


def test_a_robust_evaluation_is_the_ensembles_worst_case_with_its_evidence(trained):
    cfg, cache = trained
    table = grid.evaluation(cfg, "robust", "sim_unet", "nuclei", cache=cache)
    assert set(table.attack) == {"ensemble"} and set(table.seed) == {cfg.seed}
    assert len(table) == 2 * cfg.n_attack_images
    assert (table.iou <= table.paper_attacks_iou + 1e-9).all()  # never weaker than the paper's attacks
    assert (table.iou <= table.clean_iou + 1e-9).all()
    apgd = {f"apgd-{loss}" for loss in ("bce", "jaccard", "segpgd")}
    restarts = {f"{m}-r1" for m in apgd}  # the smoke profile's random restart, of one loss
    assert table.converged.dtype == bool and set(table.member) <= {"clean", "fgsm", "ifgsm", "pgd", *apgd, *restarts}
    # how far APGD still fell at the end: non-negative up to rounding, and within the tolerance where converged
    assert (table.tail_drop >= -1e-9).all() and (table.tail_drop[table.converged] <= 0.01 + 1e-9).all()


def test_an_attack_evaluation_runs_the_grids_attacks_and_the_noise_baseline(trained):
    cfg, cache = trained
    table = grid.evaluation(cfg, "attack", "sim_unet", "nuclei", cache=cache)
    assert set(table.attack) == {"fgsm", "noise"} and set(table.eps_255) == {2.0, 8.0}
    assert len(table) == 2 * 2 * cfg.n_attack_images



def test_an_evaluation_outside_the_grid_or_of_an_untrained_model_fails_clearly(trained, tmp_path):
    cfg, cache = trained
    with pytest.raises(ValueError, match="model, structure, regime, seed: .*'unet'.* not in the grid"):
        grid.evaluation(cfg, "clean", "unet", "nuclei", cache=cache)
    with pytest.raises(ValueError, match="kind"):
        grid.evaluation(cfg, "accuracy", "sim_unet", "nuclei", cache=cache)
    with pytest.raises(FileNotFoundError):
        grid.evaluation(cfg, "clean", "sim_unet", "nuclei", cache=tmp_path)  # an empty cache: nothing trained


def test_the_model_loader_gives_the_grid_s_trained_model(trained, monkeypatch):
    import torch

    from fmlib import runs

    cfg, cache = trained
    monkeypatch.setenv("FMROBUST_CACHE", str(cache))
    loaded = runs.model_loader(cfg, "nuclei")("sim_unet", "standard")
    expected = grid.trained_model(cfg, "sim_unet", "nuclei", "standard").model
    assert not loaded.training
    for a, b in zip(loaded.state_dict().values(), expected.state_dict().values()):
        assert torch.equal(a, b)


def test_missing_training_counts_what_the_cache_lacks_and_its_time(trained, monkeypatch, tmp_path):
    from fmlib import runs

    cfg, cache = trained
    monkeypatch.setenv("FMROBUST_CACHE", str(cache))
    assert runs.missing_training(cfg, "nuclei") == ([], 0.0)
    monkeypatch.setenv("FMROBUST_CACHE", str(tmp_path))
    missing, seconds = runs.missing_training(cfg, "nuclei")
    assert [j.model for j in missing] == ["sim_unet"] and seconds > 0
    assert runs.missing_training(cfg, "er") == ([], 0.0)  # not a structure of this grid


def test_structure_runs_gives_each_run_its_convergence_and_clean_score(trained, monkeypatch):
    from fmlib import runs

    cfg, cache = trained
    monkeypatch.setenv("FMROBUST_CACHE", str(cache))
    said = []
    table = runs.structure_runs(cfg, "nuclei", progress=False, announce=said.append)
    assert said == []  # nothing to train, nothing announced
    assert table[["model", "regime", "seed"]].values.tolist() == [["sim_unet", "standard", 0]]
    assert 0 < table.iou.iloc[0] <= 1 and table.converged.dtype == bool
    row = table.iloc[0]
    assert row.n_gate == cfg.n_gate and row.gate_iou_low <= row.gate_iou <= row.gate_iou_high


def test_a_runs_gate_scores_are_computed_once_then_read_from_the_cache(trained):
    import pandas as pd

    from fmlib import runs

    cfg, cache = trained
    job = grid.training_jobs(cfg)[0]
    model = grid.train_job(job, cache=cache, progress=False).model
    per_image, columns = runs.run_gate_scores(cfg, job, model, cache=cache)
    assert runs.gate_path(cfg, job, cache).exists() and len(per_image) == columns["n_gate"] == cfg.n_gate
    again, same = runs.run_gate_scores(cfg, job, None, cache=cache)  # read back: no model needed
    pd.testing.assert_frame_equal(per_image, again)
    assert same == columns and columns["gate_iou"] == per_image.iou.mean()
    other = profiles.resolve("smoke", n_gate=cfg.n_gate + 1)
    assert runs.gate_path(other, job, cache) != runs.gate_path(cfg, job, cache)  # another gate, another key


def test_the_gate_scores_fresh_scenes_that_no_run_trained_validated_or_tested_on(trained):
    from fmlib import runs

    cfg, _ = trained
    gate = runs.gate_set(cfg, "nuclei")
    assert len(gate.images) == cfg.n_gate
    assert (gate.images == runs.gate_set(cfg, "nuclei").images).all()  # the same scenes every time
    seen = [grid.test_set(cfg, "nuclei").masks]
    for regime in ("standard", "randomized"):
        train_set, val_set = grid.data_spec(cfg, "nuclei", regime).make()
        seen += [train_set.masks, val_set.masks]
    seen = [m for masks in seen for m in masks]
    assert not any((g == m).all() for g in gate.masks for m in seen)


def test_a_continuation_trains_an_excluded_run_longer_and_wider(trained, monkeypatch):
    """Only runs the gate excluded although they converged and their stride allows the floor."""
    import pandas as pd

    from fmlib import runs

    cfg, cache = trained
    cfg = profiles.resolve("smoke", models=["sim_unet"], widths={"sim_unet": 0.25}, structures=["nuclei"],
                           regimes=["standard"], n_seeds=1, max_steps=6, eval_every=2, n_train=4, n_val=2, n_test=2,
                           reference_model="sim_unet", transfer_surrogate="sim_unet")
    monkeypatch.setenv("FMROBUST_CACHE", str(cache))
    verdicts = pd.DataFrame({"model": "sim_unet", "structure": "nuclei", "regime": "standard", "seed": 0,
                             "iou": 0.5, "gate_iou": [0.1, 0.1, 0.1], "converged": [True, False, True],
                             "competent": False,
                             "stride_limited": [False, False, True]})
    table = runs.continuation(cfg, verdicts, progress=False)
    assert table.continuation.tolist() == list(runs.CONTINUATIONS)  # the first row only, twice
    assert (table.iou == 0.1).all() and table.continued_iou.between(0, 1).all()  # both on the gate's scenes
    assert (table.reaches_floor == (table.continued_iou >= cfg.competence_floor)).all()
    assert table.steps.max() <= 6
    assert runs.continuation(cfg, verdicts.assign(competent=True), progress=False).empty
