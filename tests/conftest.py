"""Shared fixtures: small schedules, analytic ε for Gaussian data, tiny U-Nets."""

from __future__ import annotations

import pytest
import torch

from diffbench.diffusion import NoiseSchedule
from diffbench.unet import UNet, UNetConfig

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch on one thread for a whole test module (``pytestmark = pytest.mark.usefixtures(...)``): on a 2-core
    CPU shared with another job, the 2-thread pool made tiny per-resample operations 20-50 times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def linear_schedule() -> NoiseSchedule:
    return NoiseSchedule.named("linear", 1000)


def gaussian_eps(schedule: NoiseSchedule, mean: float, std: float):
    """The optimal ε for data x_0 ~ N(mean, std²): ε* = −√(1−ᾱ)·score(x_t) (curriculum exercise 4).

    x_t ~ N(√ᾱ·mean, ᾱ·std² + 1 − ᾱ), so score = −(x_t − √ᾱ·mean)/(ᾱ·std² + 1 − ᾱ).
    """
    alpha_bar = torch.tensor(schedule.alpha_bar, dtype=torch.float64)

    def eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = alpha_bar[t].reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)
        score = -(x - a.sqrt() * mean) / (a * std**2 + 1 - a)
        return -(1 - a).sqrt() * score

    return eps


def tiny_unet_config(num_classes: int = 10, image_size: int = 8, channels: int = 1) -> UNetConfig:
    return UNetConfig(
        image_size=image_size, in_channels=channels, channels=16, channel_mult=(1, 2), num_res_blocks=1,
        attn_resolutions=(4,), dropout=0.1, num_classes=num_classes, norm_groups=8,
    )


@pytest.fixture
def tiny_unet() -> UNet:
    torch.manual_seed(0)
    net = UNet(tiny_unet_config())
    # Zero-initialised output layers would make every ε zero; give them weights.
    for p in net.parameters():
        if p.abs().sum() == 0:
            torch.nn.init.normal_(p, std=0.02)
    return net.eval()
