"""diffbench.group_norm: GroupNorm from per-channel moments computes what F.group_norm computes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from diffbench import group_norm
from diffbench.group_norm import channel_moments
from diffbench.unet import UNet
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


def test_group_norm_layers_switch_inside_the_block_only():
    torch.manual_seed(0)
    layer = torch.nn.GroupNorm(4, 16)
    with torch.no_grad():
        layer.weight.normal_(), layer.bias.normal_()
    x = torch.randn(2, 16, 6, 6) + 3
    native = layer(x)
    assert torch.equal(native, F.group_norm(x, 4, layer.weight, layer.bias, layer.eps))
    with group_norm.implementation("channel_moments"):
        assert group_norm.current() == "channel_moments"
        moments = layer(x)
    assert group_norm.current() == "native"
    assert not torch.equal(moments, native) and torch.allclose(moments, native, atol=1e-4)
    with pytest.raises(ValueError, match="'welford': not one of native, channel_moments"):
        with group_norm.implementation("welford"):
            pass
    assert group_norm.current() == "native"


def test_the_unet_predicts_and_learns_the_same_with_either_implementation():
    """Same ε and the same gradients (to fp32 rounding): a switch of kernels, not of the model."""
    torch.manual_seed(0)
    net = UNet(tiny_unet_config())
    for p in net.parameters():
        if p.abs().sum() == 0:
            torch.nn.init.normal_(p, std=0.02)
    x, t, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 10, 500, 999]), torch.tensor([0, 1, 2, 10])

    def eps_and_grads():
        net.zero_grad()
        torch.manual_seed(1)  # the same dropout masks
        eps = net(x, t, y)
        eps.square().mean().backward()
        return eps.detach(), [p.grad.clone() for p in net.parameters()]

    eps_native, grads_native = eps_and_grads()
    with group_norm.implementation("channel_moments"):
        eps_moments, grads_moments = eps_and_grads()
    assert torch.allclose(eps_moments, eps_native, atol=1e-4, rtol=1e-3)
    for native, moments in zip(grads_native, grads_moments, strict=True):
        assert torch.allclose(moments, native, atol=1e-5, rtol=1e-2)


def test_a_model_compiled_under_either_implementation_runs_that_one():
    """TorchDynamo reuses a traced graph for another instance of the same class without guarding on
    nn.GroupNorm.forward: the switch must drop compiled code, or a variant would measure the other forward."""
    graphs = []

    def backend(graph_module, example_inputs):
        graphs.append(any("mean" in str(node.target) for node in graph_module.graph.nodes))
        return graph_module.forward

    x, t, y = torch.randn(2, 1, 8, 8), torch.tensor([1, 500]), torch.tensor([0, 10])
    with torch.no_grad():
        torch.compile(UNet(tiny_unet_config()).eval(), backend=backend)(x, t, y)
        with group_norm.implementation("channel_moments"):
            torch.compile(UNet(tiny_unet_config()).eval(), backend=backend)(x, t, y)
        torch.compile(UNet(tiny_unet_config()).eval(), backend=backend)(x, t, y)
    assert graphs == [False, True, False]  # native (F.group_norm), channel moments (means), native again
