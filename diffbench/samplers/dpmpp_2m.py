"""DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2): multistep, 2nd order, data prediction.

Here α_t = √ᾱ_t, σ_t = √(1−ᾱ_t) (the paper's VP notation), λ_t = log(α_t/σ_t), and the data prediction is
x_θ(x_t, t) = (x_t − σ_t ε_θ(x_t, t))/α_t. Over times t_0 > … > t_{M−1} and the clean end t_M (σ = 0, α = 1),
with h_i = λ_{t_i} − λ_{t_{i−1}}:
  x_{t_i} = (σ_{t_i}/σ_{t_{i−1}}) x_{t_{i−1}} − α_{t_i} (e^{−h_i} − 1) D_i
  D_1 = x_θ(x_{t_0}, t_0)                                                   (first step: 1st order)
  D_i = (1 + 1/(2r_i)) x_θ(x_{t_{i−1}}, t_{i−1}) − 1/(2r_i) x_θ(x_{t_{i−2}}, t_{i−2}),  r_i = h_{i−1}/h_i
The last step, to λ = ∞, is 1st order (r_M = 0 there), as in k-diffusion's ``sample_dpmpp_2m`` and diffusers'
``final_sigmas_type="zero"``: it returns x_θ(x_{t_{M−1}}, t_{M−1}). The 2nd-order rule is undefined for that
step, so this is not an option. x_T is the sample at t_0, as in DDIM.

``spacing``: ``logsnr`` (uniform in λ from λ_{T−1}, or that of the ``sigma_max`` option, to λ_0; fractional
network times, see ``_sigma``) or ``uniform`` (the DDIM uniform timesteps ⌊i·T/S⌋).
One network evaluation per step: NFE = S.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from diffbench.diffusion import NoiseSchedule
from diffbench.samplers import EpsFn, NoiseFn
from diffbench.samplers._sigma import (
    alpha_bar_of_sigma, check_sigma_max, log_snr, predict_x0, sigma_at, time_batch,
)
from diffbench.samplers._spacing import log_snr_times, uniform_times

NAME = "dpmpp_2m"


@dataclass(frozen=True)
class Settings:
    """``spacing``: logsnr (uniform in λ) or uniform (in t); ``sigma_max``: top of the logsnr spacing
    (EDM σ = √((1−ᾱ)/ᾱ); null: the schedule's largest)."""

    spacing: str = "logsnr"
    sigma_max: float | None = None

    def __post_init__(self) -> None:
        if self.spacing not in ("logsnr", "uniform"):
            raise ValueError(f"spacing must be 'logsnr' or 'uniform', got {self.spacing!r}")
        check_sigma_max(self.sigma_max)
        if self.sigma_max is not None and self.spacing != "logsnr":
            raise ValueError(f"sigma_max applies to spacing 'logsnr' only, got spacing={self.spacing!r}")


def timesteps(schedule: NoiseSchedule, steps: int, settings: Settings) -> list[float]:
    """The S network times t_0 > … > t_{S−1}, descending."""
    if settings.spacing == "uniform":
        return [float(t) for t in uniform_times(schedule.timesteps, steps)]
    return log_snr_times(schedule, steps, settings.sigma_max)


def nfe(steps: int, settings: Settings) -> int:
    """One evaluation per step."""
    return steps


def label(settings: Settings) -> str:
    """Row name in tables, e.g. "DPM-Solver++(2M), λ-uniform"."""
    if settings.spacing == "uniform":
        return "DPM-Solver++(2M), t-uniform"
    top = "" if settings.sigma_max is None else f", σ_max={settings.sigma_max:g}"
    return f"DPM-Solver++(2M), λ-uniform{top}"


@torch.no_grad()
def sample(
    eps_fn: EpsFn, x_T: torch.Tensor, schedule: NoiseSchedule, steps: int, noise: NoiseFn, settings: Settings
) -> torch.Tensor:
    """Algorithm 2 from x_T to the clean end; returns x_0 in model space."""
    times = timesteps(schedule, steps, settings)
    edm_sigmas = [sigma_at(schedule, t) for t in times] + [0.0]  # σ/α, the EDM noise level
    alpha_bars = [alpha_bar_of_sigma(s) for s in edm_sigmas]
    alphas = [math.sqrt(a) for a in alpha_bars]
    sigmas = [s * a for s, a in zip(edm_sigmas, alphas)]
    lambdas = [log_snr(s) for s in edm_sigmas]
    x = x_T
    x0_prev, h_prev = None, None
    for i, t in enumerate(times, start=1):
        x0 = predict_x0(x, eps_fn(x, time_batch(x, t)), alpha_bars[i - 1])
        h = lambdas[i] - lambdas[i - 1]
        if x0_prev is None or i == len(times):
            D = x0
        else:
            r = h_prev / h
            D = (1 + 1 / (2 * r)) * x0 - 1 / (2 * r) * x0_prev
        x = (sigmas[i] / sigmas[i - 1]) * x - alphas[i] * math.expm1(-h) * D
        x0_prev, h_prev = x0, h
    return x
