"""EDM's deterministic sampler: Heun's 2nd-order method in σ-space (Karras et al. 2022, Algorithm 1 with
S_churn = 0; NVlabs/edm ``edm_sampler``, k-diffusion ``sample_heun``).

In x̃ = x/√ᾱ and σ = √((1−ᾱ)/ᾱ) the probability-flow ODE is dx̃/dσ = (x̃ − D(x̃; σ))/σ, with the ε-model as
denoiser D(x̃; σ) = x̃ − σ ε_θ(x̃/√(1+σ²), t(σ)) (``_sigma.edm_denoiser``). Over σ_0 > … > σ_{S−1}, σ_S = 0:
  d_i = (x̃_i − D(x̃_i; σ_i)) / σ_i
  x̃_{i+1} = x̃_i + (σ_{i+1} − σ_i) d_i                               (Euler step)
  if σ_{i+1} ≠ 0:  d'_i = (x̃_{i+1} − D(x̃_{i+1}; σ_{i+1})) / σ_{i+1}
                   x̃_{i+1} = x̃_i + (σ_{i+1} − σ_i) (d_i + d'_i)/2      (2nd-order correction)
The last step, to σ = 0, stays Euler (d' would divide by 0) and lands on x̂_0 = D(x̃_{S−1}; σ_{S−1}).
x_T is taken as the sample at the first level (x̃_0 = x_T/√ᾱ_0), as DDIM does; EDM starts at σ_max·n instead.

``grid``: ``karras`` (EDM's ρ-grid from σ_max = σ_{T−1}, or the ``sigma_max`` option, down to σ_min = σ_0; its
network times are fractional, see ``_sigma``) or ``model`` (the DDIM uniform timesteps ⌊i·T/S⌋).
``steps`` = S noise levels (EDM's ``num_steps``); two evaluations per step but one at the last:
NFE = 2S − 1 (EDM's 18 steps = 35 NFE).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diffbench.diffusion import NoiseSchedule
from diffbench.samplers import EpsFn, NoiseFn
from diffbench.samplers._sigma import edm_denoiser, sigma_at
from diffbench.samplers._spacing import GridSettings, grid_label, grid_times

NAME = "heun"


@dataclass(frozen=True)
class Settings(GridSettings):
    """``grid``: karras or model; ``rho``: the Karras grid's ρ > 0; ``sigma_max``: top of the Karras grid
    (null: the schedule's largest σ). Shared with the other grid samplers (``_spacing.GridSettings``)."""


def timesteps(schedule: NoiseSchedule, steps: int, settings: Settings) -> list[float]:
    """The 2S − 1 network times in evaluation order: t_0, then t_1..t_{S−1} twice each (non-increasing)."""
    times = grid_times(schedule, steps, settings)
    return times[:1] + [t for t in times[1:] for _ in range(2)]


def nfe(steps: int, settings: Settings) -> int:
    """Two evaluations per step, one at the last: 2S − 1."""
    return 2 * steps - 1


def label(settings: Settings) -> str:
    """Row name in tables, e.g. "Heun (EDM), Karras ρ=7"."""
    return grid_label("Heun (EDM)", settings)


@torch.no_grad()
def sample(
    eps_fn: EpsFn, x_T: torch.Tensor, schedule: NoiseSchedule, steps: int, noise: NoiseFn, settings: Settings
) -> torch.Tensor:
    """Heun steps (Euler at the last) from x_T down to σ = 0; returns x_0 in model space."""
    times = grid_times(schedule, steps, settings) + [None]
    levels = [sigma_at(schedule, t) for t in times[:-1]] + [0.0]
    x = x_T * (1 + levels[0] ** 2) ** 0.5
    for t, t_next, sigma, sigma_next in zip(times, times[1:], levels, levels[1:]):
        d = (x - edm_denoiser(eps_fn, x, sigma, t)) / sigma
        x_next = x + (sigma_next - sigma) * d
        if sigma_next != 0:
            d_prime = (x_next - edm_denoiser(eps_fn, x_next, sigma_next, t_next)) / sigma_next
            x_next = x + (sigma_next - sigma) * (d + d_prime) / 2
        x = x_next
    return x
