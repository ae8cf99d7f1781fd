"""Noise levels of a discrete schedule, for samplers that step in σ or λ (a helper for plugin authors).

EDM coordinates (Karras et al. 2022, §2 and Table 1, "VP"): σ_t = √((1−ᾱ_t)/ᾱ_t) and x̃ = x/√ᾱ_t, so that
x̃ = x_0 + σ_t ε. DPM-Solver's half log-SNR is λ_t = log(√ᾱ_t/√(1−ᾱ_t)) = −log σ_t.

σ ↔ t: the network was trained at t = 0..T−1 only, where σ_t is strictly increasing. A noise level between
two of them maps to a fractional t, linear in log σ between the neighbouring discrete levels (k-diffusion's
``DiscreteSchedule.sigma_to_t`` with ``quantize=False``); ``sigma_at`` is its exact inverse and returns the
discrete σ_t itself at an integer t. Levels outside [σ_0, σ_{T−1}] raise. The U-Net embeds t as a float, so
it takes fractional t as it is. (EDM's ``round_sigma`` for iDDPM models snaps to the nearest level instead.)

Also: ``sigma_range`` (ends of a σ-grid, with a ``sigma_max`` option), ``predict_x0`` (ε → x̂_0),
``edm_denoiser`` (the ε-model as EDM's D(x̃; σ)) and ``time_batch`` (a time as the tensor ``eps_fn`` takes).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from diffbench.diffusion import NoiseSchedule
from diffbench.samplers import EpsFn

_RELATIVE_SLACK = 1e-9  # rounding allowed beyond [σ_0, σ_{T−1}] before time_at refuses a level


def sigmas(schedule: NoiseSchedule) -> np.ndarray:
    """σ_t = √((1−ᾱ_t)/ᾱ_t) for t = 0..T−1, increasing."""
    alpha_bar = schedule.alpha_bar
    return np.sqrt((1.0 - alpha_bar) / alpha_bar)


def sigma_at(schedule: NoiseSchedule, t: float) -> float:
    """σ at a (fractional) time t ∈ [0, T−1]: σ_t itself at an integer t, else log σ linear in between."""
    if not 0 <= t <= schedule.timesteps - 1:
        raise ValueError(f"time {t!r} is outside 0..{schedule.timesteps - 1}")
    levels = sigmas(schedule)
    if float(t).is_integer():
        return float(levels[int(t)])
    return math.exp(float(np.interp(t, np.arange(schedule.timesteps), np.log(levels))))


def time_at(schedule: NoiseSchedule, sigma: float) -> float:
    """The (fractional) network time of noise level σ, inverse of ``sigma_at``; exact at the discrete σ_t."""
    levels = sigmas(schedule)
    low, high = float(levels[0]), float(levels[-1])
    if not low * (1 - _RELATIVE_SLACK) <= sigma <= high * (1 + _RELATIVE_SLACK):
        raise ValueError(f"noise level sigma={sigma!r} is outside the schedule's range [{low:.6g}, {high:.6g}]")
    return float(np.interp(math.log(sigma), np.log(levels), np.arange(schedule.timesteps)))


def sigma_range(schedule: NoiseSchedule, sigma_max: float | None = None) -> tuple[float, float]:
    """(σ_min, σ_max) of a σ-grid: σ_0 and σ_{T−1}, or a lower top ``sigma_max`` ∈ (σ_0, σ_{T−1}]."""
    levels = sigmas(schedule)
    low, high = float(levels[0]), float(levels[-1])
    if sigma_max is None:
        return low, high
    if not low < sigma_max <= high:
        raise ValueError(
            f"sigma_max must be in ({low:.6g}, {high:.6g}] (this schedule's σ_0, σ_T-1), got {sigma_max!r}"
        )
    return low, float(sigma_max)


def check_sigma_max(sigma_max: object) -> None:
    """A ``sigma_max`` option is null (the schedule's top) or a number > 0 (its range: ``sigma_range``)."""
    if sigma_max is None:
        return
    if isinstance(sigma_max, bool) or not isinstance(sigma_max, (int, float)) or not sigma_max > 0:
        raise ValueError(f"sigma_max must be null (the schedule's largest σ) or a number > 0, got {sigma_max!r}")


def alpha_bar_of_sigma(sigma: float) -> float:
    """ᾱ = 1/(1 + σ²), the inverse of σ = √((1−ᾱ)/ᾱ); 1 at σ = 0."""
    return 1.0 / (1.0 + sigma**2)


def log_snr(sigma: float) -> float:
    """λ = log(√ᾱ/√(1−ᾱ)) = −log σ (+∞ at σ = 0)."""
    return math.inf if sigma == 0 else -math.log(sigma)


def predict_x0(x: torch.Tensor, eps: torch.Tensor, alpha_bar: float) -> torch.Tensor:
    """x̂_0 = (x_t − √(1−ᾱ_t) ε) / √ᾱ_t (Ho et al. eq. 15; DDIM eq. 12's "predicted x_0")."""
    return (x - math.sqrt(1 - alpha_bar) * eps) / math.sqrt(alpha_bar)


def edm_denoiser(eps_fn: EpsFn, x_tilde: torch.Tensor, sigma: float, t: float) -> torch.Tensor:
    """D(x̃; σ) = x̃ − σ ε_θ(x̃/√(1+σ²), t(σ)): an ε-prediction model as EDM's denoiser (EDM Table 1, VP)."""
    return x_tilde - sigma * eps_fn(x_tilde / math.sqrt(1 + sigma**2), time_batch(x_tilde, t))


def time_batch(x: torch.Tensor, t: float) -> torch.Tensor:
    """A (fractional) time as the (B,) float tensor ``eps_fn`` takes: float64 with float64 x, else float32."""
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    return torch.full((x.shape[0],), float(t), dtype=dtype, device=x.device)
