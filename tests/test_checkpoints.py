import pytest
import torch

from fmlib import checkpoints
from fmlib.checkpoints import DataSpec, load_trained, train, training_key
from fmlib.training import TrainConfig


def test_cached_training_is_reused(tmp_path, monkeypatch):
    spec = DataSpec("mitochondria", n_train=4, n_val=2, size=64)
    config = TrainConfig(epochs=1, batch_size=2)
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
    config = TrainConfig(epochs=1)
    key = training_key("sim_unet", 1.0, spec, config)
    assert key == training_key("sim_unet", 1.0, spec, config) and len(key) == 24
    assert key != training_key("unet3", 1.0, spec, config)
    assert key != training_key("sim_unet", 0.5, spec, config)
    assert key != training_key("sim_unet", 1.0, DataSpec("nuclei", n_train=5, n_val=2, size=64), config)
    assert key != training_key("sim_unet", 1.0, spec, config.replace(seed=1))
