"""DDIM (Song, Meng & Ermon 2021, eq. 12) over a sub-sequence τ of the T timesteps.

For consecutive τ_i > τ_{i−1} (ᾱ of the step after the last is 1):
  x̂_0 = (x_τi − √(1−ᾱ_τi) ε_θ(x_τi, τ_i)) / √ᾱ_τi                      (clipped if ``clip_x0``)
  σ_τi = η √((1−ᾱ_τi−1)/(1−ᾱ_τi)) √(1 − ᾱ_τi/ᾱ_τi−1)                   (eq. 16)
  x_τi−1 = √ᾱ_τi−1 x̂_0 + √(1−ᾱ_τi−1−σ²_τi) ε_θ + σ_τi z
η = 0 is the deterministic DDIM; η = 1 with all T steps is DDPM with σ² = β̃.
Spacing (paper §D.2): ``uniform`` τ_i = ⌊i·T/S⌋; ``quadratic`` τ_i = ⌊(i·√(0.8T)/(S−1))²⌋,
made strictly increasing (a repeated step is moved one up), as in the DDIM reference code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from diffbench.diffusion import NoiseSchedule
from diffbench.samplers import EpsFn, NoiseFn
from diffbench.samplers._sigma import predict_x0
from diffbench.samplers._spacing import quadratic_times, uniform_times

NAME = "ddim"


@dataclass(frozen=True)
class Settings:
    """``eta`` ≥ 0 (0 = deterministic); ``spacing``: uniform or quadratic; ``clip_x0``: clip x̂_0."""

    eta: float = 0.0
    spacing: str = "uniform"
    clip_x0: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.eta, (int, float)) or self.eta < 0:
            raise ValueError(f"eta must be a number >= 0, got {self.eta!r}")
        if self.spacing not in ("uniform", "quadratic"):
            raise ValueError(f"spacing must be 'uniform' or 'quadratic', got {self.spacing!r}")


def timesteps(schedule: NoiseSchedule, steps: int, settings: Settings) -> list[int]:
    """The S visited timesteps (0-based), descending."""
    if settings.spacing == "uniform":
        return uniform_times(schedule.timesteps, steps)
    return quadratic_times(schedule.timesteps, steps)


def label(settings: Settings) -> str:
    """Row name in tables: "DDIM η=0", "DDIM η=1", "DDIM η=0, quadratic"."""
    extras = [", quadratic" if settings.spacing == "quadratic" else "", ", x̂₀ clipped" if settings.clip_x0 else ""]
    return f"DDIM η={settings.eta:g}" + "".join(extras)


@torch.no_grad()
def sample(
    eps_fn: EpsFn, x_T: torch.Tensor, schedule: NoiseSchedule, steps: int, noise: NoiseFn, settings: Settings
) -> torch.Tensor:
    """The generalized (η) DDIM sampler from x_T; returns x_0 in model space."""
    alpha_bar = [float(a) for a in schedule.alpha_bar]
    seq = timesteps(schedule, steps, settings)
    x = x_T
    t_batch = torch.empty(x.shape[0], dtype=torch.long, device=x.device)
    for k, (t, t_prev) in enumerate(zip(seq, seq[1:] + [-1]), start=1):
        a_t = alpha_bar[t]
        a_prev = alpha_bar[t_prev] if t_prev >= 0 else 1.0
        eps = eps_fn(x, t_batch.fill_(t))
        x0 = predict_x0(x, eps, a_t)
        if settings.clip_x0:
            x0 = x0.clamp(-1.0, 1.0)
        sigma = settings.eta * math.sqrt((1 - a_prev) / (1 - a_t)) * math.sqrt(1 - a_t / a_prev)
        x = math.sqrt(a_prev) * x0 + math.sqrt(max(1 - a_prev - sigma**2, 0.0)) * eps
        if sigma > 0:
            x = x + sigma * noise(k)
    return x
