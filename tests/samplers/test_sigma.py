"""The σ ↔ t map and the step spacings that σ-space samplers share."""

import math

import numpy as np
import pytest
import torch

from diffbench.diffusion import NoiseSchedule
from diffbench.samplers._sigma import sigma_at, sigma_range, sigmas, time_at
from diffbench.samplers._spacing import karras_sigmas, karras_times, log_snr_sigmas, log_snr_times
from tests.conftest import gaussian_eps
from tests.samplers.gaussian import gaussian_eps_any_t, sigma_of_time

SCHEDULES = ["linear", "cosine", "sigmoid"]


@pytest.mark.parametrize("name", SCHEDULES)
def test_sigma_of_an_integer_time_maps_back_to_exactly_that_time(name):
    schedule = NoiseSchedule.named(name, 1000)
    alpha_bar = schedule.alpha_bar
    for t in range(schedule.timesteps):
        assert sigma_at(schedule, t) == math.sqrt((1 - alpha_bar[t]) / alpha_bar[t])
        assert time_at(schedule, sigma_at(schedule, t)) == t


@pytest.mark.parametrize("name", SCHEDULES)
def test_time_of_sigma_is_log_linear_between_neighbours_and_monotone(name):
    schedule = NoiseSchedule.named(name, 1000)
    levels = sigmas(schedule)
    for t in (0, 1, 500, 998):
        between = math.sqrt(levels[t] * levels[t + 1])  # halfway in log σ
        assert time_at(schedule, between) == pytest.approx(t + 0.5, abs=1e-9)
    grid = np.geomspace(levels[0], levels[-1], 2000)
    times = [time_at(schedule, float(s)) for s in grid]
    assert times[0] == 0 and times[-1] == schedule.timesteps - 1
    assert all(a < b for a, b in zip(times, times[1:]))
    assert all(sigma_at(schedule, t) == pytest.approx(s, rel=1e-12) for t, s in zip(times, grid))


def test_noise_levels_outside_the_schedule_are_refused(linear_schedule):
    low, high = sigma_range(linear_schedule)
    for sigma in (low / 2, high * 2):
        with pytest.raises(ValueError, match="outside the schedule's range"):
            time_at(linear_schedule, sigma)
    with pytest.raises(ValueError, match="outside 0..999"):
        sigma_at(linear_schedule, 999.5)


def test_sigma_max_must_lie_inside_the_schedule(linear_schedule):
    low, high = sigma_range(linear_schedule)
    assert sigma_range(linear_schedule, 80.0) == (low, 80.0)
    for bad in (low, high * 1.01):
        with pytest.raises(ValueError, match=r"sigma_max must be in \("):
            sigma_range(linear_schedule, bad)


def test_the_tests_fractional_eps_is_the_integer_one_at_integer_times(linear_schedule):
    """The test helper's σ(t) (independent of _sigma) agrees with it, and its ε with conftest's at integer t."""
    t = torch.tensor([0.0, 0.25, 499.5, 998.9, 999.0], dtype=torch.float64)
    expected = torch.tensor([sigma_at(linear_schedule, float(s)) for s in t], dtype=torch.float64)
    assert torch.allclose(sigma_of_time(linear_schedule, t), expected, rtol=1e-12)
    x = torch.linspace(-3, 3, 7, dtype=torch.float64)[:, None].expand(7, 4)
    for step in (0, 17, 999):
        t_long = torch.full((7,), step)
        a = gaussian_eps(linear_schedule, 0.3, 0.5)(x, t_long)
        b = gaussian_eps_any_t(linear_schedule, 0.3, 0.5)(x, t_long.double())
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("steps", [1, 2, 18, 100])
def test_karras_and_log_snr_levels_are_evenly_spaced_and_hit_the_ends(steps):
    karras = karras_sigmas(0.01, 80.0, steps, rho=7.0)
    log_snr = log_snr_sigmas(0.01, 80.0, steps)
    for levels in (karras, log_snr):
        assert len(levels) == steps and levels[0] == 80.0
        assert steps == 1 or levels[-1] == 0.01
        assert all(a > b for a, b in zip(levels, levels[1:]))
    assert np.allclose(np.diff(np.power(karras, 1 / 7)), np.diff(np.power(karras, 1 / 7))[:1], rtol=1e-9)
    assert np.allclose(np.diff(np.log(log_snr)), np.diff(np.log(log_snr))[:1], rtol=1e-9)


@pytest.mark.parametrize("name", SCHEDULES)
def test_sigma_grids_map_to_the_first_and_last_network_times(name):
    schedule = NoiseSchedule.named(name, 1000)
    for times in (karras_times(schedule, 18, rho=7.0), log_snr_times(schedule, 18)):
        assert times[0] == 999 and times[-1] == 0
        assert all(a > b for a, b in zip(times, times[1:]))
    capped = karras_times(schedule, 18, rho=7.0, sigma_max=float(sigmas(schedule)[500]))
    assert capped[0] == 500 and capped[-1] == 0
