import torch

from fmlib.models import create_model, has_straight_through, straight_through


def _net():
    torch.manual_seed(0)
    return create_model("segnet", width=0.125).eval()


def test_straight_through_keeps_the_outputs_and_changes_only_the_gradients():
    net = _net()
    x = torch.rand(2, 1, 64, 64, requires_grad=True)
    out = net(x)
    (grad,) = torch.autograd.grad(out.sum(), x)
    with straight_through(net):
        out_st = net(x)
        (grad_st,) = torch.autograd.grad(out_st.sum(), x)
    assert torch.equal(out, out_st)
    assert (grad - grad_st).abs().max() > 1e-3 * grad_st.abs().max()
    # nearest-neighbour upsampling spreads the gradient over every pixel of a pooling window,
    # max-unpooling over one of four: the BPDA gradient is denser
    assert (grad_st != 0).float().mean() >= (grad != 0).float().mean()


def test_the_switch_is_restored_and_only_models_that_support_it_have_it():
    net = _net()
    assert has_straight_through(net) and not has_straight_through(create_model("unet3", width=0.25))
    try:
        with straight_through(net):
            assert net.net.straight_through
            raise RuntimeError("inside")
    except RuntimeError:
        pass
    assert not net.net.straight_through
