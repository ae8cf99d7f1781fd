"""Euler's method on the probability-flow ODE in EDM's σ-space (Karras et al. 2022, Algorithm 1 without the
Heun correction; k-diffusion ``sample_euler`` with no churn).

In x̃ = x/√ᾱ and σ = √((1−ᾱ)/ᾱ) the ODE is dx̃/dσ = (x̃ − D(x̃; σ))/σ, with the ε-model as denoiser
D(x̃; σ) = x̃ − σ ε_θ(x̃/√(1+σ²), t(σ)) (``_sigma.edm_denoiser``). Over noise levels σ_0 > … > σ_{S−1}, σ_S = 0:
  d_i = (x̃_i − D(x̃_i; σ_i)) / σ_i
  x̃_{i+1} = x̃_i + (σ_{i+1} − σ_i) d_i
The last step lands on x̃_S = D(x̃_{S−1}; σ_{S−1}) = x̂_0. Since d_i = ε_θ, each step is exactly the
deterministic DDIM update (η = 0) written in σ: on the model's own timesteps the two samplers agree.
x_T is taken as the sample at the first level (x̃_0 = x_T/√ᾱ_0), as DDIM does; EDM starts at σ_max·n instead.

``grid``: ``karras`` (EDM's ρ-grid from σ_max = σ_{T−1}, or the ``sigma_max`` option, down to σ_min = σ_0; its
network times are fractional, see ``_sigma``) or ``model`` (the DDIM uniform timesteps ⌊i·T/S⌋).
One network evaluation per step: NFE = S.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diffbench.diffusion import NoiseSchedule
from diffbench.samplers import EpsFn, NoiseFn
from diffbench.samplers._sigma import edm_denoiser, sigma_at
from diffbench.samplers._spacing import GridSettings, grid_label, grid_times

NAME = "euler"


@dataclass(frozen=True)
class Settings(GridSettings):
    """``grid``: karras or model; ``rho``: the Karras grid's ρ > 0; ``sigma_max``: top of the Karras grid
    (null: the schedule's largest σ). Shared with the other grid samplers (``_spacing.GridSettings``)."""


def timesteps(schedule: NoiseSchedule, steps: int, settings: Settings) -> list[float]:
    """The S network times, descending: integers on the model grid, fractional on the Karras grid."""
    return grid_times(schedule, steps, settings)


def nfe(steps: int, settings: Settings) -> int:
    """One evaluation per step."""
    return steps


def label(settings: Settings) -> str:
    """Row name in tables, e.g. "Euler, Karras ρ=7"."""
    return grid_label("Euler", settings)


@torch.no_grad()
def sample(
    eps_fn: EpsFn, x_T: torch.Tensor, schedule: NoiseSchedule, steps: int, noise: NoiseFn, settings: Settings
) -> torch.Tensor:
    """Euler steps from x_T down to σ = 0; returns x_0 in model space."""
    times = timesteps(schedule, steps, settings)
    levels = [sigma_at(schedule, t) for t in times] + [0.0]
    x = x_T * (1 + levels[0] ** 2) ** 0.5
    for t, sigma, sigma_next in zip(times, levels, levels[1:]):
        d = (x - edm_denoiser(eps_fn, x, sigma, t)) / sigma
        x = x + (sigma_next - sigma) * d
    return x
