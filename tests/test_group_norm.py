"""diffbench.group_norm: GroupNorm from per-channel moments computes what F.group_norm computes."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from diffbench.group_norm import GroupNorm, channel_moments
from diffbench.unet import UNet, UNetConfig
from tests.conftest import tiny_unet_config


@pytest.mark.parametrize("offset", [0.0, 10.0])  # a mean 10 σ from zero: E[x²] − E[x]² must still hold
@pytest.mark.parametrize("shape,groups", [((3, 64, 8, 8), 32), ((2, 12, 5, 7), 3), ((2, 8, 16), 4)])
def test_channel_moments_equal_group_norm_in_fp32(shape, groups, offset):
    torch.manual_seed(0)
    x = torch.randn(shape, dtype=torch.float64).float() * 2 + offset
    weight, bias = torch.randn(shape[1]), torch.randn(shape[1])
    expected = F.group_norm(x, groups, weight, bias, 1e-5)
    assert torch.allclose(channel_moments(x, groups, weight, bias, 1e-5), expected, atol=2e-4, rtol=1e-4)
    assert torch.allclose(channel_moments(x, groups, None, None, 1e-5), F.group_norm(x, groups, eps=1e-5),
                          atol=2e-4, rtol=1e-4)


def test_a_mean_far_from_zero_keeps_the_variance_in_fp32():
    """Unshifted, E[x²] − E[x]² at a mean 1,000 σ from zero lost the variance in fp32 (error 0.46 of the unit
    output); about each channel's first pixel, the moments are as exact as F.group_norm's own (9e-5)."""
    torch.manual_seed(0)
    x = torch.randn(4, 64, 16, 16, dtype=torch.float64) + 1000.0
    x[:, ::2] += torch.randn(1, 32, 1, 1, dtype=torch.float64) * 50  # channels of a group with other means
    exact = F.group_norm(x, 32, eps=1e-5)
    moments = channel_moments(x.float(), 32, None, None, 1e-5).double()
    native = F.group_norm(x.float(), 32, eps=1e-5).double()
    assert (moments - exact).abs().max() < 3 * (native - exact).abs().max() + 1e-5 < 1e-3


def test_a_constant_group_normalises_to_its_bias_without_nans():
    x = torch.full((2, 4, 3, 3), 7.0)
    bias = torch.arange(4.0)
    out = channel_moments(x, 2, torch.ones(4), bias, 1e-5)
    assert torch.isfinite(out).all() and torch.allclose(out, bias.view(1, 4, 1, 1).expand_as(out), atol=1e-3)


def test_the_result_has_group_norms_dtype_with_and_without_autocast():
    x = torch.randn(2, 8, 4, 4).bfloat16()
    weight, bias = torch.ones(8), torch.zeros(8)
    assert channel_moments(x, 4, weight.bfloat16(), bias.bfloat16(), 1e-5).dtype == torch.bfloat16
    with torch.autocast("cpu", dtype=torch.bfloat16):
        native = F.group_norm(x, 4, weight, bias, 1e-5)
        moments = channel_moments(x, 4, weight, bias, 1e-5)
    assert moments.dtype == native.dtype
    assert torch.allclose(moments.float(), native.float(), atol=0.05)  # both rounded to bf16


def test_the_layer_is_group_norm_with_either_statistics():
    torch.manual_seed(0)
    native, moments = GroupNorm(4, 16), GroupNorm(4, 16, moments=True)
    with torch.no_grad():
        native.weight.normal_(), native.bias.normal_()
    moments.load_state_dict(native.state_dict())  # the same parameters and keys as nn.GroupNorm's
    assert list(moments.state_dict()) == list(torch.nn.GroupNorm(4, 16).state_dict())
    x = torch.randn(2, 16, 6, 6) + 3
    assert torch.equal(native(x), F.group_norm(x, 4, native.weight, native.bias, native.eps))
    assert not torch.equal(moments(x), native(x)) and torch.allclose(moments(x), native(x), atol=1e-4)
    assert "moments=True" in repr(moments) and "moments" not in repr(native)


def moments_unet(net: UNet) -> UNet:
    """A copy of ``net`` whose GroupNorm layers use per-channel moments, with the same weights."""
    twin = UNet(replace(net.config, group_norm_moments=True))
    twin.load_state_dict(net.state_dict())
    return twin


def test_the_unet_predicts_and_learns_the_same_with_either_setting():
    """Same ε and the same gradients (to fp32 rounding): a switch of kernels, not of the model."""
    torch.manual_seed(0)
    net = UNet(tiny_unet_config())
    for p in net.parameters():
        if p.abs().sum() == 0:
            torch.nn.init.normal_(p, std=0.02)
    twin = moments_unet(net)
    assert {m.moments for m in twin.modules() if isinstance(m, GroupNorm)} == {True}
    x, t, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 10, 500, 999]), torch.tensor([0, 1, 2, 10])

    def eps_and_grads(model):
        model.zero_grad()
        torch.manual_seed(1)  # the same dropout masks
        eps = model(x, t, y)
        eps.square().mean().backward()
        return eps.detach(), [p.grad.clone() for p in model.parameters()]

    eps_native, grads_native = eps_and_grads(net)
    eps_moments, grads_moments = eps_and_grads(twin)
    assert torch.allclose(eps_moments, eps_native, atol=1e-4, rtol=1e-3)
    for native, moments in zip(grads_native, grads_moments, strict=True):
        assert torch.allclose(moments, native, atol=1e-5, rtol=1e-2)


def test_a_compiled_unet_runs_its_own_setting():
    """TorchDynamo reuses a traced graph for another instance of the same class where its guards pass: the
    setting must be guarded, or a model compiled after one of the other setting would run that one's graph."""
    ran = []  # per call of a compiled model: whether the graph it ran computes channel means

    def backend(graph_module, example_inputs):
        means = any("mean" in str(node.target) for node in graph_module.graph.nodes)

        def run(*args):
            ran.append(means)
            return graph_module.forward(*args)
        return run

    torch._dynamo.reset()
    x, t, y = torch.randn(2, 1, 8, 8), torch.tensor([1, 500]), torch.tensor([0, 10])
    with torch.no_grad():
        for moments in (False, True, False):
            net = UNet(replace(tiny_unet_config(), group_norm_moments=moments)).eval()
            assert torch.allclose(torch.compile(net, backend=backend)(x, t, y), net(x, t, y), atol=1e-5)
    assert ran == [False, True, False]  # native (F.group_norm), channel moments (means), native again


def test_an_unknown_architecture_key_is_named():
    from diffbench.errors import ParamsError

    with pytest.raises(ParamsError, match=r"^architectures: unknown key\(s\) \['group_norm'\]"):
        UNetConfig.from_params({"group_norm": "moments"}, 8, 1, 10)
