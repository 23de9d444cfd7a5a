import numpy as np
import pytest
import torch

from fmlib import checkpoints
from fmlib.checkpoints import DataSpec, load_trained, train, training_key
from fmlib.training import TrainConfig


def test_cached_training_is_reused(tmp_path, monkeypatch):
    spec = DataSpec("mitochondria", n_train=4, n_val=2, size=64)
    config = TrainConfig(max_steps=2, eval_every=1, batch_size=2)
    with pytest.raises(FileNotFoundError, match="train"):
        load_trained("sim_unet", spec, config, cache=tmp_path)
    first = train("sim_unet", spec, config, cache=tmp_path, progress=False)
    monkeypatch.setattr(checkpoints, "fit", lambda *a, **k: pytest.fail("a cached model was retrained"))
    again = train("sim_unet", spec, config, cache=tmp_path, progress=False)
    assert again.key == first.key and again.best_val_iou == first.best_val_iou
    for a, b in zip(first.model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(a, b)


def test_the_training_key_follows_every_input():
    spec = DataSpec("nuclei", n_train=4, n_val=2, size=64)
    config = TrainConfig(max_steps=2)
    key = training_key("sim_unet", 1.0, spec, config)
    assert key == training_key("sim_unet", 1.0, spec, config) and len(key) == 24
    assert key != training_key("unet3", 1.0, spec, config)
    assert key != training_key("sim_unet", 0.5, spec, config)
    assert key != training_key("sim_unet", 1.0, DataSpec("nuclei", n_train=5, n_val=2, size=64), config)
    assert key != training_key("sim_unet", 1.0, spec, config.replace(seed=1))


def test_randomized_training_data_draw_each_acquisition_and_key_apart():
    from fmlib.checkpoints import DataSpec, training_key
    from fmlib.training import TrainConfig

    single, randomized = DataSpec("nuclei", 3, 2, 64), DataSpec("nuclei", 3, 2, 64, randomization=0.5)
    (train, _), (rtrain, rval) = single.make(), randomized.make()
    assert "physics" not in train.metadata[0]
    snrs = {m["physics"]["snr"] for m in rtrain.metadata}
    assert len(snrs) == 3 and all(4.0 - 1e-9 <= s <= 16.0 + 1e-9 for s in snrs)  # 2-20 shrunk halfway to 8
    assert np.array_equal(rtrain.images, randomized.make()[0].images)  # the same spec, the same bytes
    assert not np.array_equal(rtrain.images[0], rval.images[0])        # validation scenes differ
    config = TrainConfig()
    assert training_key("unet3", 0.5, single, config) != training_key("unet3", 0.5, randomized, config)


def test_only_the_randomized_regime_randomizes_its_acquisitions():
    """The paper's protocol is the benchmark: standard and the two defenses train on one acquisition at
    SNR 8; the randomized regime at the study's strength."""
    from fmlib import grid, profiles

    cfg = profiles.resolve("smoke")
    assert grid.data_spec(cfg, "nuclei", "randomized").randomization == 0.5  # the study's default
    for regime in ("standard", "noise", "adversarial"):
        spec = grid.data_spec(cfg, "nuclei", regime)
        assert spec.randomization == 0.0 and spec.snr == 8.0
    quarter = profiles.resolve("smoke", training_randomization=0.25)
    assert grid.data_spec(quarter, "er", "randomized").randomization == 0.25
    with pytest.raises(ValueError, match="training_randomization"):
        profiles.resolve("smoke", training_randomization=1.5)
    with pytest.raises(ValueError, match="regime"):
        grid.data_spec(cfg, "nuclei", "augmented")


def test_the_training_pool_is_simulated_once_and_read_back(tmp_path, monkeypatch):
    spec = DataSpec("nuclei", n_train=3, n_val=2, size=32, seed=4)
    (x, y), (vx, vy) = checkpoints.training_pool(spec, cache=tmp_path)
    train_set, val_set = spec.make()
    np.testing.assert_array_equal(x, train_set.images)
    np.testing.assert_array_equal(vy, val_set.masks)
    monkeypatch.setattr(DataSpec, "make", lambda self: pytest.fail("a cached pool was simulated again"))
    (x2, _), _ = checkpoints.training_pool(spec, cache=tmp_path)
    np.testing.assert_array_equal(x, x2)


def test_a_finished_training_records_its_convergence(tmp_path):
    spec = DataSpec("nuclei", n_train=4, n_val=2, size=32)
    result = train("sim_unet", spec, TrainConfig(max_steps=4, eval_every=2, batch_size=2), cache=tmp_path,
                   progress=False)
    again = load_trained("sim_unet", spec, TrainConfig(max_steps=4, eval_every=2, batch_size=2), cache=tmp_path)
    assert (again.steps, again.converged, again.best_step) == (result.steps, result.converged, result.best_step)
    assert result.steps == 4 and not result.converged  # two validations cannot show a plateau
