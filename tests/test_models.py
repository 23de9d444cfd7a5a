import pytest
import torch

from fmlib.models import MODELS, count_flops, count_parameters, create_model, list_models

ALL = list_models()


def test_the_ten_architectures_are_registered():
    assert ALL == ["unet", "unet3", "sim_unet", "fcn", "segnet", "deeplabv3plus", "pspnet", "icnet", "segformer",
                   "vit_dpt"]
    assert list_models("transformer") == ["segformer", "vit_dpt"]
    assert sum(spec.paper_parameters_m is not None for spec in MODELS.values()) == 8


@pytest.mark.parametrize("name", ALL)
def test_contract_shape_and_input_gradient(name):
    torch.manual_seed(0)
    model = create_model(name, width=0.25)
    x = torch.rand(2, 1, 64, 64, requires_grad=True)
    y = model(x)
    assert y.shape == (2, 1, 64, 64) and y.dtype == torch.float32
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        assert model(torch.rand(1, 1, 96, 64)).shape == (1, 1, 96, 64)


@pytest.mark.parametrize("name", [n for n in ALL if MODELS[n].paper_parameters_m])
def test_width_one_matches_the_papers_parameter_counts(name):
    model = create_model(name, in_channels=3, width=1.0)
    assert count_parameters(model) / 1e6 == pytest.approx(MODELS[name].paper_parameters_m, rel=0.25)


@pytest.mark.parametrize("name", ["pspnet", "icnet"])
def test_auxiliary_outputs_during_training(name):
    model = create_model(name, width=0.25).train()
    logits, aux = model(torch.rand(2, 1, 64, 64), return_aux=True)
    assert logits.shape == (2, 1, 64, 64)
    assert len(aux) == len(MODELS[name].aux_weights) and all(a.shape == logits.shape for a in aux)


def test_normalization_makes_models_blind_to_gain_and_offset():
    torch.manual_seed(0)
    model = create_model("sim_unet").eval()
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), model(0.5 * x + 0.2), atol=1e-4)


def test_width_scales_size_and_flops_are_counted():
    small, large = create_model("unet", width=0.25), create_model("unet", width=0.5)
    assert count_parameters(small) < count_parameters(large) / 3
    assert 0 < count_flops(small, 64) < count_flops(large, 64)


def test_errors_state_the_contract():
    with pytest.raises(ValueError, match="name: unknown model 'unet5'; expected one of unet, unet3"):
        create_model("unet5")
    with pytest.raises(ValueError, match="width"):
        create_model("unet", width=0.0)
    model = create_model("sim_unet")
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.rand(1, 1, 50, 64))
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        model(torch.rand(1, 3, 64, 64))


def test_the_registry_imports_smp_timm_and_torchvision_only_for_the_models_that_use_them():
    # They load torch._dynamo at import, seconds that every notebook kernel and command would pay.
    import subprocess
    import sys

    heavy = ("segmentation_models_pytorch", "timm", "torchvision", "torch._dynamo")
    code = ("import sys; from fmlib import grid; from fmlib.models import create_model; create_model('sim_unet'); "
            f"print([m for m in {heavy!r} if m in sys.modules]); create_model('pspnet', width=0.25); "
            "print('segmentation_models_pytorch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["[]", "True"]
