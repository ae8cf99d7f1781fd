"""Step spacings, descending, that samplers share (a helper for plugin authors).

Over the network's own timesteps (0-based, DDIM paper §D.2):
- ``uniform_times``: τ_i = ⌊i·T/S⌋, i = 0..S−1;
- ``quadratic_times``: τ_i = ⌊(i·√(0.8T)/(S−1))²⌋, made strictly increasing (a repeated step is moved one
  up), as in the DDIM reference code.
Over noise levels σ (both return the S levels the network sees, σ = 0 after the last one is implied):
- ``karras_sigmas``: σ_i = (σ_max^(1/ρ) + i/(S−1)·(σ_min^(1/ρ) − σ_max^(1/ρ)))^ρ (EDM eq. 5);
- ``log_snr_sigmas``: uniform in λ = −log σ (DPM-Solver's "logSNR" spacing; k-diffusion's exponential).
Both put σ_max and σ_min exactly at the ends. ``karras_times`` and ``log_snr_times`` are these levels'
network times on a schedule (``_sigma.time_at``; σ_min = σ_0, σ_max = σ_{T−1} or a lower ``sigma_max``).
``GridSettings`` / ``grid_times`` / ``grid_label``: the options, network times and row name of a sampler that
steps over the Karras grid or the model's own timesteps (the Euler and Heun plugins share them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from diffbench.diffusion import NoiseSchedule
from diffbench.samplers._sigma import check_sigma_max, sigma_range, time_at


def uniform_times(total: int, steps: int) -> list[int]:
    """The S timesteps ⌊i·T/S⌋, descending (DDIM "uniform")."""
    return [i * total // steps for i in range(steps)][::-1]


def quadratic_times(total: int, steps: int) -> list[int]:
    """The S timesteps ⌊(i·√(0.8T)/(S−1))²⌋ made strictly increasing, descending (DDIM "quadratic")."""
    top = math.sqrt(0.8 * total)
    seq = [int((i * top / max(steps - 1, 1)) ** 2) for i in range(steps)]
    for i in range(1, steps):
        seq[i] = max(seq[i], seq[i - 1] + 1)
    if seq[-1] >= total:
        raise ValueError(f"quadratic spacing cannot place {steps} distinct steps below T={total}")
    return seq[::-1]


def karras_sigmas(sigma_min: float, sigma_max: float, steps: int, rho: float) -> list[float]:
    """EDM's S noise levels from σ_max down to σ_min, uniform in σ^(1/ρ)."""
    if steps == 1:
        return [sigma_max]
    top, bottom = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    inner = [(top + i / (steps - 1) * (bottom - top)) ** rho for i in range(1, steps - 1)]
    return [sigma_max, *inner, sigma_min]


def log_snr_sigmas(sigma_min: float, sigma_max: float, steps: int) -> list[float]:
    """S noise levels from σ_max down to σ_min, uniform in λ = −log σ."""
    if steps == 1:
        return [sigma_max]
    lam_min, lam_max = -math.log(sigma_max), -math.log(sigma_min)
    inner = [math.exp(-(lam_min + i / (steps - 1) * (lam_max - lam_min))) for i in range(1, steps - 1)]
    return [sigma_max, *inner, sigma_min]


def karras_times(schedule: NoiseSchedule, steps: int, rho: float, sigma_max: float | None = None) -> list[float]:
    """The network times of ``karras_sigmas`` between σ_0 and σ_{T−1} (or ``sigma_max``), descending."""
    low, high = sigma_range(schedule, sigma_max)
    return [time_at(schedule, sigma) for sigma in karras_sigmas(low, high, steps, rho)]


def log_snr_times(schedule: NoiseSchedule, steps: int, sigma_max: float | None = None) -> list[float]:
    """The network times of ``log_snr_sigmas`` between σ_0 and σ_{T−1} (or ``sigma_max``), descending."""
    low, high = sigma_range(schedule, sigma_max)
    return [time_at(schedule, sigma) for sigma in log_snr_sigmas(low, high, steps)]


@dataclass(frozen=True)
class GridSettings:
    """``grid``: karras or model; ``rho``: the Karras grid's ρ > 0; ``sigma_max``: top of the Karras grid
    (null: the schedule's largest σ)."""

    grid: str = "karras"
    rho: float = 7.0
    sigma_max: float | None = None

    def __post_init__(self) -> None:
        if self.grid not in ("karras", "model"):
            raise ValueError(f"grid must be 'karras' or 'model', got {self.grid!r}")
        if isinstance(self.rho, bool) or not isinstance(self.rho, (int, float)) or not self.rho > 0:
            raise ValueError(f"rho must be a number > 0, got {self.rho!r}")
        check_sigma_max(self.sigma_max)
        if self.sigma_max is not None and self.grid != "karras":
            raise ValueError(f"sigma_max applies to grid 'karras' only, got grid={self.grid!r}")


def grid_times(schedule: NoiseSchedule, steps: int, settings: GridSettings) -> list[float]:
    """The S network times of the levels, descending: integers on the model grid, fractional on the Karras grid."""
    if settings.grid == "model":
        return [float(t) for t in uniform_times(schedule.timesteps, steps)]
    return karras_times(schedule, steps, settings.rho, settings.sigma_max)


def grid_label(method: str, settings: GridSettings) -> str:
    """Row name in tables, e.g. "Heun (EDM), Karras ρ=7, σ_max=80" or "Euler, model timesteps"."""
    if settings.grid == "model":
        return f"{method}, model timesteps"
    top = "" if settings.sigma_max is None else f", σ_max={settings.sigma_max:g}"
    return f"{method}, Karras ρ={settings.rho:g}{top}"
