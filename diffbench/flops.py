"""FLOPs of the U-Net and model FLOP utilisation (MFU) of training and sampling.

Forward FLOPs are counted once per architecture by ``torch.utils.flop_counter.FlopCounterMode``
on the actual U-Net built on the meta device (no memory, no random draws, no device needed);
convolutions, linear layers and attention, 2 FLOPs per multiply-add. A training step costs
3 × forward (backward ≈ 2 × forward), so training TFLOP/s = 3 × forward FLOPs × images/s and
MFU = that ÷ the GPU's dense bf16 peak (989 TFLOP/s on the H100 and H200, SXM). Sampling costs
one forward per network pass: NFE, twice that under classifier-free guidance (one batched pair).
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from diffbench.unet import UNet, UNetConfig

PEAK_BF16_DENSE_FLOPS = {"H100": 989e12, "H200": 989e12}
TRAINING_FLOPS_PER_FORWARD = 3


def forward_flops(config: UNetConfig) -> float:
    """FLOPs of one forward pass per image of the U-Net ``config`` (batch-independent)."""
    batch = 2
    with torch.device("meta"):
        net = UNet(config).eval()
        x = torch.zeros(batch, config.in_channels, config.image_size, config.image_size)
        t = torch.zeros(batch, dtype=torch.long)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(x, t, None)
    return counter.get_total_flops() / batch


def peak_flops(device_name: str) -> float | None:
    """Dense bf16 peak FLOP/s of a GPU named like torch.cuda.get_device_name(), None if unknown."""
    for model, peak in PEAK_BF16_DENSE_FLOPS.items():
        if model in device_name:
            return peak
    return None


def utilisation(images_per_second: float | None, forward_flops_per_image: float, device_name: str,
                forwards_per_image: float = TRAINING_FLOPS_PER_FORWARD, peak: float | None = None) -> dict:
    """TFLOP/s and MFU of ``forwards_per_image`` forward passes per image (3 for a training step, the network
    passes per image for sampling); ``peak`` FLOP/s overrides the device's. None where unknown."""
    if not images_per_second:
        return {"tflops_per_second": None, "mfu": None, "peak_tflops": None}
    flops = forwards_per_image * forward_flops_per_image * images_per_second
    peak = peak or peak_flops(device_name)
    return {
        "tflops_per_second": flops / 1e12,
        "mfu": flops / peak if peak else None,
        "peak_tflops": peak / 1e12 if peak else None,
    }
