"""diffusers' side of the throughput benchmark: UNet2DModel in the DDPM CIFAR-10 configuration (trained
inside diffbench's Trainer) and DDIM sampling with its own scheduler loop (DDIMScheduler.step)."""

from __future__ import annotations

import importlib.util

import torch
from torch import nn

from bench_common import timed


def available() -> bool:
    """Is diffusers importable here?"""
    return importlib.util.find_spec("diffusers") is not None


class DiffusersEps(nn.Module):
    """diffusers' UNet2DModel in the DDPM CIFAR-10 configuration, called like ours (labels ignored)."""

    null_label = 0

    def __init__(self):
        super().__init__()
        from diffusers import UNet2DModel

        self.unet = UNet2DModel(
            sample_size=32, in_channels=3, out_channels=3, layers_per_block=2,
            block_out_channels=(128, 256, 256, 256),
            down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.unet(x, t).sample


def counted_forward_flops(model: nn.Module, shape: tuple[int, int, int], device: torch.device) -> float:
    """FLOPs of one forward pass per image of ``model`` (C×H×W), counted where it lives."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(2, *shape, device=device)
    t = torch.zeros(2, dtype=torch.long, device=device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x, t, None)
    return counter.get_total_flops() / 2


def ddim_rate(shape: tuple[int, int, int], batch: int, compile_model: bool, steps: int, timesteps: int,
              device: torch.device) -> float:
    """Images/s of DDIM-``steps`` (eta 0, linear schedule) through diffusers' scheduler loop, bf16 on a GPU."""
    from diffusers import DDIMScheduler

    unet = DiffusersEps().unet.to(device).eval().requires_grad_(False)
    forward = torch.compile(unet) if compile_model else unet
    scheduler = DDIMScheduler(num_train_timesteps=timesteps, beta_schedule="linear", clip_sample=False)
    scheduler.set_timesteps(steps)

    def run() -> None:
        x = torch.randn(batch, *shape, device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"), torch.no_grad():
            for t in scheduler.timesteps:
                eps = forward(x, t).sample.float()
                x = scheduler.step(eps, t, x).prev_sample

    return batch / timed(run, warmup=1, iters=2, device=device)
