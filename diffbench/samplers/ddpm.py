"""DDPM ancestral sampling (Ho et al. 2020, Algorithm 2), always over all T steps.

For t = T..1:  x̂_0 = (x_t − √(1−ᾱ_t) ε_θ(x_t, t)) / √ᾱ_t   (clipped to [−1, 1] if ``clip_x0``)
               x_{t−1} = μ̃_t(x_t, x̂_0) + σ_t z,   z ~ N(0, I) for t > 1, z = 0 at t = 1
with the posterior mean μ̃_t = β_t√ᾱ_{t−1}/(1−ᾱ_t) x̂_0 + (1−ᾱ_{t−1})√α_t/(1−ᾱ_t) x_t
(without clipping this is exactly eq. 11's 1/√α_t (x_t − β_t/√(1−ᾱ_t) ε_θ)), and
σ_t² = β_t (``variance: large``, Ho et al.'s CIFAR-10 choice) or β̃_t = β_t(1−ᾱ_{t−1})/(1−ᾱ_t) (``small``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from diffbench.diffusion import NoiseSchedule
from diffbench.samplers import EpsFn, NoiseFn
from diffbench.samplers._sigma import predict_x0

NAME = "ddpm"


@dataclass(frozen=True)
class Settings:
    """``variance``: large (σ²=β) or small (σ²=β̃); ``clip_x0``: clip x̂_0 to [−1, 1] as Ho et al. do."""

    variance: str = "large"
    clip_x0: bool = True

    def __post_init__(self) -> None:
        if self.variance not in ("large", "small"):
            raise ValueError(f"variance must be 'large' or 'small', got {self.variance!r}")


def timesteps(schedule: NoiseSchedule, steps: int, settings: Settings) -> list[int]:
    """All T timesteps, descending (0-based). Ancestral sampling cannot skip steps."""
    if steps != schedule.timesteps:
        raise ValueError(f"ddpm runs all T={schedule.timesteps} steps; got steps={steps} (use ddim to skip)")
    return list(range(schedule.timesteps - 1, -1, -1))


def label(settings: Settings) -> str:
    """Row name in tables: "DDPM (σ²=β)" or "DDPM (σ²=β̃)", with ", no clipping" when x̂_0 is not clipped."""
    variance = "β" if settings.variance == "large" else "β̃"
    return f"DDPM (σ²={variance})" + ("" if settings.clip_x0 else ", no clipping")


def _coefficients(schedule: NoiseSchedule, settings: Settings) -> dict[str, np.ndarray]:
    alpha_bar = schedule.alpha_bar
    alpha_bar_prev = np.append(1.0, alpha_bar[:-1])
    betas = schedule.betas
    posterior_var = betas * (1 - alpha_bar_prev) / (1 - alpha_bar)
    variance = posterior_var if settings.variance == "small" else np.append(posterior_var[1], betas[1:])
    return {
        "alpha_bar": alpha_bar,
        "coef_x0": betas * np.sqrt(alpha_bar_prev) / (1 - alpha_bar),
        "coef_xt": (1 - alpha_bar_prev) * np.sqrt(schedule.alphas) / (1 - alpha_bar),
        "sigma": np.sqrt(variance),
    }


@torch.no_grad()
def sample(
    eps_fn: EpsFn, x_T: torch.Tensor, schedule: NoiseSchedule, steps: int, noise: NoiseFn, settings: Settings
) -> torch.Tensor:
    """Algorithm 2 of Ho et al. from x_T; returns x_0 in model space ([−1, 1])."""
    coef = {k: [float(v) for v in values] for k, values in _coefficients(schedule, settings).items()}
    x = x_T
    t_batch = torch.empty(x.shape[0], dtype=torch.long, device=x.device)
    for k, t in enumerate(timesteps(schedule, steps, settings), start=1):
        eps = eps_fn(x, t_batch.fill_(t))
        x0 = predict_x0(x, eps, coef["alpha_bar"][t])
        if settings.clip_x0:
            x0 = x0.clamp(-1.0, 1.0)
        x = coef["coef_x0"][t] * x0 + coef["coef_xt"][t] * x
        if t > 0:
            x = x + coef["sigma"][t] * noise(k)
    return x
