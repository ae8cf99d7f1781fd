"""The forward process q(x_t | x_0) of Ho et al. 2020 and the ε-prediction loss L_simple.

Timesteps are 0-based: index t ∈ {0..T−1} is the paper's t+1, so ᾱ[0] = 1 − β_1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from diffbench.schedules import make_betas


@dataclass(frozen=True)
class NoiseSchedule:
    """β_t and the quantities derived from it, in float64 (cast per use)."""

    name: str
    betas: np.ndarray

    @classmethod
    def named(cls, name: str, timesteps: int) -> "NoiseSchedule":
        """The schedule ``name`` (linear, cosine, sigmoid) with T = ``timesteps``."""
        return cls(name=name, betas=make_betas(name, timesteps))

    @property
    def timesteps(self) -> int:
        return len(self.betas)

    @property
    def alphas(self) -> np.ndarray:
        return 1.0 - self.betas

    @property
    def alpha_bar(self) -> np.ndarray:
        return np.cumprod(self.alphas)

    def tensor(self, values: np.ndarray, device: torch.device | str) -> torch.Tensor:
        """A float32 tensor of per-timestep values on ``device``."""
        return torch.as_tensor(values, dtype=torch.float32, device=device)


def broadcast(values: torch.Tensor, t: torch.Tensor, ndim: int) -> torch.Tensor:
    """values[t] shaped (B, 1, 1, ...) to broadcast against a batch of ``ndim`` dims."""
    return values[t].reshape(-1, *([1] * (ndim - 1)))


def to_model_space(images: torch.Tensor) -> torch.Tensor:
    """uint8 N×H×W×C → float N×C×H×W in [−1, 1] (x/127.5 − 1): the space the model and q(x_t | x_0) work in."""
    return images.permute(0, 3, 1, 2).float() / 127.5 - 1.0


def q_sample(schedule: NoiseSchedule, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε (Ho et al. eq. 4)."""
    alpha_bar = schedule.tensor(schedule.alpha_bar, x0.device)
    a = broadcast(alpha_bar, t, x0.ndim)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def q_step(schedule: NoiseSchedule, x_prev: torch.Tensor, t: int, noise: torch.Tensor) -> torch.Tensor:
    """One forward step x_t = √(1 − β_t) x_{t−1} + √β_t ε (Ho et al. eq. 2)."""
    beta = float(schedule.betas[t])
    return (1 - beta) ** 0.5 * x_prev + beta**0.5 * noise


def simple_loss(
    model: torch.nn.Module,
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    labels: torch.Tensor | None,
    generator: torch.Generator | None = None,
    part: slice | None = None,
) -> torch.Tensor:
    """L_simple = E‖ε − ε_θ(x_t, t)‖² with t uniform over all T steps (Ho et al. eq. 14).

    ``part``: this process's rows of a global batch ``x0``. t and ε are drawn for the whole batch, so every
    process draws the same numbers and data-parallel training sees the one-process batch.
    """
    batch = x0.shape[0]
    t = torch.randint(0, schedule.timesteps, (batch,), device=x0.device, generator=generator)
    noise = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
    if part is not None:
        x0, t, noise = x0[part], t[part], noise[part]
        labels = None if labels is None else labels[part]
    x_t = q_sample(schedule, x0, t, noise)
    prediction = model(x_t, t, labels)
    return torch.nn.functional.mse_loss(prediction.float(), noise.float())
