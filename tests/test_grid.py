import pytest

from fmlib import grid, study


def test_defended_regimes_only_on_the_defense_structures():
    cfg = study.resolve("smoke", models=["unet3"], defense_structures=["nuclei"])
    jobs = grid.training_jobs(cfg)
    assert {(j.structure, j.regime) for j in jobs} == {("nuclei", "standard"), ("nuclei", "noise"),
                                                       ("nuclei", "adversarial"), ("mitochondria", "standard"),
                                                       ("er", "standard")}
    assert grid.regimes_for(cfg, "er") == ["standard"]
    assert grid.regimes_for(cfg, "nuclei") == ["standard", "noise", "adversarial"]


def test_train_config_follows_the_study_parameters():
    cfg = study.resolve("smoke", loss="bce", lr=1e-3)
    config = grid.train_config(cfg, "adversarial")
    assert (config.loss, config.lr, config.defense, config.adv_method) == ("bce", 1e-3, "adversarial", cfg.adv_method)
    assert grid.train_config(study.resolve("smoke"), "standard").loss == "bce+dice"
    with pytest.raises(ValueError, match="regime"):
        grid.train_config(cfg, "mixup")
    with pytest.raises(ValueError, match="loss"):
        study.resolve("smoke", loss="focal")
