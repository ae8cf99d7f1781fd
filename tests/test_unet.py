import pytest
import torch

from diffbench.errors import ParamsError
from diffbench.unet import AttnBlock, UNet, UNetConfig, count_parameters, timestep_embedding
from tests.conftest import tiny_unet_config


def test_cifar10_width_has_ho_et_al_parameter_count():
    assert count_parameters(UNet(UNetConfig())) == 35_746_307  # 35.7M, as in Ho et al. 2020
    conditional = count_parameters(UNet(UNetConfig(num_classes=10)))
    assert conditional - 35_746_307 == 11 * 512  # one embedding row per class + the null label


def test_forward_shapes_and_labels_matter(tiny_unet):
    x, t = torch.randn(3, 1, 8, 8), torch.tensor([0, 10, 999])
    a = tiny_unet(x, t, torch.tensor([1, 2, 3]))
    b = tiny_unet(x, t, torch.tensor([4, 5, 6]))
    null = tiny_unet(x, t, None)
    assert a.shape == x.shape
    assert not torch.allclose(a, b)
    assert torch.equal(null, tiny_unet(x, t, torch.full((3,), 10)))


def test_mnist_shapes_work_at_28px():
    config = UNetConfig(image_size=28, in_channels=1, channels=32, channel_mult=(1, 2, 2), attn_resolutions=(14,),
                        num_classes=10)
    assert UNet(config)(torch.randn(2, 1, 28, 28), torch.tensor([1, 2])).shape == (2, 1, 28, 28)


def test_timestep_embedding_distinguishes_steps():
    emb = timestep_embedding(torch.arange(1000), 64)
    assert emb.shape == (1000, 64)
    assert torch.cdist(emb, emb).add(torch.eye(1000) * 10).min() > 1e-3


def test_impossible_architectures_fail_with_the_field():
    with pytest.raises(ParamsError, match="norm_groups"):
        UNetConfig(channels=20).validate()
    with pytest.raises(ParamsError, match="odd size"):
        UNetConfig(image_size=28, channel_mult=(1, 2, 2, 2)).validate()
    with pytest.raises(ParamsError, match="unknown key"):
        UNetConfig.from_params({"chanels": 3}, 28, 1, 10)
    assert tiny_unet_config().num_classes == 10


def attention_as_convolutions(block: AttnBlock, x: torch.Tensor) -> torch.Tensor:
    """The block written with its 1×1 convolutions and explicit softmax (Ho et al.'s formulation)."""
    b, c, h, w = x.shape
    q, k, v = block.qkv(block.norm(x)).reshape(b, 3, c, h * w).unbind(1)  # each b × c × hw
    weights = torch.softmax(q.transpose(1, 2) @ k / c**0.5, dim=-1)  # b × hw × hw
    return x + block.proj((v @ weights.transpose(1, 2)).reshape(b, c, h, w))


def test_attention_equals_the_convolution_formulation_and_feeds_sdpa_channels_last(monkeypatch):
    torch.manual_seed(0)
    block = AttnBlock(32, 8)
    torch.nn.init.normal_(block.proj.weight, std=0.2)  # zero-initialised: the residual alone would pass
    x = torch.randn(3, 32, 6, 5)
    seen = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(q, k, v, *args, **kwargs):
        seen.append([t.stride(-1) for t in (q, k, v)])
        return sdpa(q, k, v, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    out = block(x)
    torch.testing.assert_close(out, attention_as_convolutions(block, x), rtol=1e-5, atol=1e-5)
    assert seen == [[1, 1, 1]]  # head dim contiguous: flash/memory-efficient kernels, not the fp32 math one
    torch.testing.assert_close(block(x.contiguous(memory_format=torch.channels_last)), out)
