import pytest
import torch

from fmlib.inference import predict_scores
from fmlib.models import create_model
from fmlib.synthesis import make_dataset
from fmlib.training import PRESETS, TrainConfig, fit


@pytest.fixture(scope="module")
def tiny():
    return make_dataset("nuclei", 4, 64, seed=0)


def test_a_tiny_model_overfits_four_images(tiny):
    torch.manual_seed(0)
    result = fit(create_model("sim_unet"), tiny, tiny,
        TrainConfig(max_steps=60, eval_every=10, batch_size=4, lr=3e-3), progress=False)
    assert result.best_val_iou > 0.9
    scores = predict_scores(result.model, tiny.images, tiny.masks)
    assert scores["iou"].mean() == pytest.approx(result.best_val_iou)  # best weights are loaded
    assert list(result.history.columns[:4]) == ["step", "train_loss", "val_iou", "val_dice"]


# Bit-for-bit reproducibility is promised on the CPU. On CUDA, cuDNN and atomic adds (bilinear
# upsampling, unpooling backward) are not deterministic, so two GPU runs agree only to rounding.
def test_same_seed_same_weights(tiny):
    weights = []
    for _ in range(2):
        torch.manual_seed(0)
        model = create_model("unet3", width=0.25)
        fit(model, tiny, tiny,
            TrainConfig(max_steps=4, eval_every=2, batch_size=2, augment=True, defense="noise"), device="cpu",
            progress=False)
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(*weights)


def test_resuming_gives_the_same_model_as_training_straight(tiny, tmp_path):
    torch.manual_seed(0)
    straight = fit(create_model("sim_unet"), tiny, tiny,
        TrainConfig(max_steps=6, eval_every=2, batch_size=2), device="cpu",
                   progress=False)
    torch.manual_seed(0)
    fit(create_model("sim_unet"), tiny, tiny,
        TrainConfig(max_steps=4, eval_every=2, batch_size=2), checkpoint_dir=tmp_path,
        device="cpu", progress=False)
    torch.manual_seed(0)
    resumed = fit(create_model("sim_unet"), tiny, tiny,
        TrainConfig(max_steps=6, eval_every=2, batch_size=2), checkpoint_dir=tmp_path,
                  device="cpu", progress=False)
    assert len(resumed.history) == 3 and resumed.steps == 6
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("defense, method", [("noise", "pgd"), ("adversarial", "pgd"), ("adversarial", "fgsm_rs")])
def test_defenses_change_training(tiny, defense, method):
    runs = {}
    for d in ("none", defense):
        torch.manual_seed(0)
        model = create_model("sim_unet")
        fit(model, tiny, tiny,
            TrainConfig(max_steps=2, eval_every=2, batch_size=2, defense=d, adv_steps=2, adv_method=method),
            progress=False)
        runs[d] = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert not torch.equal(runs["none"], runs[defense])


def test_auxiliary_losses_train(tiny):
    torch.manual_seed(0)
    result = fit(create_model("icnet", width=0.25), tiny, tiny,
        TrainConfig(max_steps=2, eval_every=2, batch_size=2), progress=False)
    assert result.history.train_loss.iloc[0] > 0


def test_paper_preset_and_bad_config():
    paper = PRESETS["paper"]
    settings = (paper.optimizer, paper.lr, paper.momentum, paper.schedule, paper.step_every)
    assert settings == ("sgd", 0.01, 0.9, "step", 20_000)  # 100 epochs of 800 images in batches of 4
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="lbfgs")
    with pytest.raises(ValueError, match="defense"):
        TrainConfig(defense="magic")
    with pytest.raises(ValueError, match="max_steps"):
        TrainConfig(max_steps=0)
    with pytest.raises(ValueError, match="patience"):
        TrainConfig(patience=0)
    with pytest.raises(ValueError, match="lr_factor|factor"):
        TrainConfig(lr_factor=2.0)


def test_mixed_precision_is_a_no_op_on_the_cpu(tiny):
    weights = []
    for amp in (False, True):
        torch.manual_seed(0)
        model = create_model("sim_unet")
        fit(model, tiny, tiny,
            TrainConfig(max_steps=2, eval_every=2, batch_size=2, mixed_precision=amp), device="cpu", progress=False)
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(*weights)
    with pytest.raises(ValueError, match="mixed_precision"):
        TrainConfig(mixed_precision="yes")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_mixed_precision_on_cuda_trains_in_bfloat16_and_attacks_in_float32(tiny):
    model = create_model("sim_unet").cuda()
    dtypes = []
    hook = model.register_forward_hook(lambda m, i, o: dtypes.append((torch.is_autocast_enabled("cuda"), o.dtype)))
    torch.manual_seed(0)
    result = fit(model, tiny, tiny,
        TrainConfig(max_steps=4, eval_every=2, batch_size=2, mixed_precision=True, defense="adversarial",
                                                adv_method="pgd", adv_steps=2), device="cuda", progress=False)
    hook.remove()
    assert (True, torch.bfloat16) in dtypes            # training forward passes under autocast
    assert (False, torch.float32) in dtypes            # the attack's passes in float32
    assert result.best_val_iou > 0.0


def test_a_run_stops_at_its_plateau_and_says_it_converged(tiny):
    """Four images learned by heart: the validation IoU stops rising, the rule halves the learning rate
    twice and then ends the run, long before the cap."""
    torch.manual_seed(0)
    config = TrainConfig(max_steps=2000, eval_every=5, patience=2, batch_size=4, lr=3e-3)
    result = fit(create_model("sim_unet"), tiny, tiny, config, progress=False)
    assert result.converged and result.steps < config.max_steps
    lrs = sorted(set(result.history.lr.round(12)), reverse=True)
    assert lrs == pytest.approx([3e-3, 1.5e-3, 0.75e-3])   # two reductions, then the verdict
    assert result.steps == result.history.step.iloc[-1]


def test_a_run_cut_by_its_cap_is_not_converged(tiny):
    torch.manual_seed(0)
    result = fit(create_model("sim_unet"), tiny, tiny, TrainConfig(max_steps=6, eval_every=2, batch_size=2),
                 progress=False)
    assert not result.converged and result.steps == 6


def test_a_cosine_schedule_that_decays_to_zero_is_not_evidence(tiny):
    """The same flat tail, but reached at a vanished learning rate: no plateau verdict."""
    torch.manual_seed(0)
    config = TrainConfig(max_steps=40, eval_every=2, patience=3, batch_size=4, lr=1e-6, schedule="cosine",
                         min_delta=0.5)
    result = fit(create_model("sim_unet"), tiny, tiny, config, progress=False)
    # min_delta 0.5: every window is a plateau by score, so only the learning rate can refuse the verdict
    assert result.converged and result.steps < 40  # at the start the rate is the base rate: a plateau
    late = TrainConfig(max_steps=40, eval_every=2, patience=3, batch_size=4, lr=1e-6, schedule="cosine",
                       min_delta=0.5, min_lr_ratio=1.0)
    torch.manual_seed(0)
    assert not fit(create_model("sim_unet"), tiny, tiny, late, progress=False).converged


def test_augmentation_applies_one_symmetry_to_image_and_mask():
    from fmlib.training import _augment

    x = torch.arange(2 * 16, dtype=torch.float32).reshape(2, 1, 4, 4)
    xa, ya = _augment(x, x.clone(), torch.Generator().manual_seed(0))
    assert torch.equal(xa, ya)
    for original, moved in zip(x, xa):
        assert sorted(original.flatten().tolist()) == sorted(moved.flatten().tolist())
