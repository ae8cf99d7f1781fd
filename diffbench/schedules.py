"""Noise schedules β_1..β_T, each a small function returning float64 betas.

- ``linear``: Ho et al. 2020, β linear from 1e-4 to 0.02 (scaled by 1000/T as in improved-diffusion).
- ``cosine``: Nichol & Dhariwal 2021, ᾱ(t) = f(t)/f(0), f(t) = cos²((t/T + s)/(1 + s)·π/2), s = 0.008,
  β_t = min(1 − ᾱ_t/ᾱ_{t−1}, 0.999).
- ``sigmoid``: Chen 2023, "On the importance of noise scheduling for diffusion models" (arXiv 2301.10972),
  Algorithm 1: ᾱ(t) = (σ(e/τ) − σ((t(e − s) + s)/τ)) / (σ(e/τ) − σ(s/τ)) with s = −3, e = 3, τ = 1,
  discretised like the cosine schedule, β ≤ 0.999.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from diffbench.errors import ParamsError

MAX_BETA = 0.999


def linear_betas(timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> np.ndarray:
    """Ho et al. 2020 linear schedule (1e-4 → 0.02 at T=1000; rescaled by 1000/T for other T, β ≤ 0.999)."""
    scale = 1000.0 / timesteps
    return np.minimum(np.linspace(scale * beta_start, scale * beta_end, timesteps, dtype=np.float64), MAX_BETA)


def betas_from_alpha_bar(alpha_bar: Callable[[np.ndarray], np.ndarray], timesteps: int) -> np.ndarray:
    """β_t = min(1 − ᾱ(t/T)/ᾱ((t−1)/T), 0.999) for a continuous ᾱ on [0, 1]."""
    grid = np.arange(timesteps + 1, dtype=np.float64) / timesteps
    values = alpha_bar(grid)
    return np.minimum(1.0 - values[1:] / values[:-1], MAX_BETA)


def cosine_betas(timesteps: int, s: float = 0.008) -> np.ndarray:
    """Nichol & Dhariwal 2021 cosine schedule."""

    def alpha_bar(t: np.ndarray) -> np.ndarray:
        return np.cos((t + s) / (1 + s) * math.pi / 2) ** 2

    return betas_from_alpha_bar(alpha_bar, timesteps)


def sigmoid_betas(timesteps: int, start: float = -3.0, end: float = 3.0, tau: float = 1.0) -> np.ndarray:
    """Chen 2023 sigmoid schedule (Algorithm 1, start=−3, end=3, τ=1)."""

    def sigmoid(z: np.ndarray | float) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-np.asarray(z)))

    v_start, v_end = sigmoid(start / tau), sigmoid(end / tau)

    def alpha_bar(t: np.ndarray) -> np.ndarray:
        return (v_end - sigmoid((t * (end - start) + start) / tau)) / (v_end - v_start)

    return betas_from_alpha_bar(alpha_bar, timesteps)


SCHEDULES: dict[str, Callable[[int], np.ndarray]] = {
    "linear": linear_betas,
    "cosine": cosine_betas,
    "sigmoid": sigmoid_betas,
}


def make_betas(name: str, timesteps: int) -> np.ndarray:
    """Betas of the named schedule; unknown names and T < 1 fail with one line."""
    if name not in SCHEDULES:
        raise ParamsError(f"schedule: unknown schedule {name!r}; allowed: {', '.join(sorted(SCHEDULES))}")
    if not isinstance(timesteps, int) or timesteps < 1:
        raise ParamsError(f"diffusion.timesteps: must be an integer >= 1, got {timesteps!r}")
    return SCHEDULES[name](timesteps)
