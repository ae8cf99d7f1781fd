"""Analytic ε for Gaussian data N(mean, std²) at any network time, and the exact ODE solution it implies.

Written independently of ``diffbench.samplers._sigma`` (as k-diffusion's ``DiscreteSchedule.t_to_sigma``): a
fractional t has log σ linear between its integer neighbours; test_sigma checks that the samplers' σ ↔ t map
agrees with it, so the ε a sampler gets at time t is the exact one for the σ it steps with.
"""

from __future__ import annotations

import math

import torch

from diffbench.diffusion import NoiseSchedule


def log_sigmas(schedule: NoiseSchedule) -> torch.Tensor:
    """log σ_t, σ_t = √((1−ᾱ_t)/ᾱ_t), t = 0..T−1, float64."""
    alpha_bar = torch.tensor(schedule.alpha_bar, dtype=torch.float64)
    return 0.5 * ((1 - alpha_bar) / alpha_bar).log()


def sigma_of_time(schedule: NoiseSchedule, t: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
    """σ(t), log-linear between the integer neighbours of t (``table``: precomputed ``log_sigmas``)."""
    table = log_sigmas(schedule) if table is None else table
    t = t.double()
    low, high = t.floor().long(), t.ceil().long()
    w = t - low
    return ((1 - w) * table[low] + w * table[high]).exp()


def gaussian_eps_any_t(schedule: NoiseSchedule, mean: float, std: float):
    """The optimal ε for x_0 ~ N(mean, std²) at (fractional) t: ε* = −√(1−ᾱ)·score(x_t), ᾱ = 1/(1+σ(t)²)."""
    table = log_sigmas(schedule)

    def eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        sigma = sigma_of_time(schedule, t, table).reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)
        a = 1 / (1 + sigma**2)
        score = -(x - a.sqrt() * mean) / (a * std**2 + 1 - a)
        return -(1 - a).sqrt() * score

    return eps


def exact_output(x_T: torch.Tensor, sigma_top: float, sigma_last: float, mean: float, std: float) -> torch.Tensor:
    """Where every sampler here should land as steps → ∞, per sample.

    x_T is the sample at σ_top (x̃ = x_T √(1+σ_top²)). For Gaussian data the probability-flow ODE is linear,
    x̃(σ) − mean ∝ √(std² + σ²), so at σ_last x̃ − mean = (x̃_top − mean)·√((std²+σ_last²)/(std²+σ_top²)).
    Every sampler ends with the same step from σ_last = σ_0 to 0, x̂_0 = mean + (x̃ − mean)·std²/(std²+σ_last²),
    which does not shrink with more steps; so it is part of the target, not of the error.
    """
    x_tilde = x_T * math.sqrt(1 + sigma_top**2)
    gain = std**2 / math.sqrt((std**2 + sigma_last**2) * (std**2 + sigma_top**2))
    return mean + (x_tilde - mean) * gain

