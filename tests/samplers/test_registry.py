import dataclasses

import pytest
import torch

from diffbench.errors import ParamsError
from diffbench.noise import image_noise
from diffbench.samplers import REGISTRY, check_steps, get_sampler, make_settings
from tests.samplers.gaussian import gaussian_eps_any_t

SHIPPED = {"ddpm", "ddim", "dpmpp_2m", "euler", "heun"}


def test_shipped_samplers_are_registered_with_the_uniform_contract():
    assert SHIPPED <= set(REGISTRY)
    for module in REGISTRY.values():
        for name in ("NAME", "Settings", "timesteps", "sample"):
            assert hasattr(module, name)
        assert dataclasses.is_dataclass(module.Settings)


def test_unknown_sampler_lists_the_allowed_ones():
    with pytest.raises(ParamsError, match=f"allowed: {', '.join(sorted(REGISTRY))}$"):
        get_sampler("no-such-sampler")


def test_settings_validation_names_the_field():
    with pytest.raises(ParamsError, match="eta must be a number >= 0"):
        make_settings("ddim", {"eta": -1})
    with pytest.raises(ParamsError, match="unknown option"):
        make_settings("ddim", {"etta": 0})
    with pytest.raises(ParamsError, match="spacing"):
        make_settings("ddim", {"spacing": "cubic"})


@pytest.mark.parametrize("steps", [0, -5, 1001, 2.5, True])
def test_steps_outside_1_to_T_fail(steps):
    with pytest.raises(ParamsError, match=r"1\.\.1000"):
        check_steps(steps, 1000)


def accepted_steps(module, schedule, settings):
    """500 steps, or all T for a sampler that refuses to skip (DDPM)."""
    try:
        module.timesteps(schedule, 500, settings)
        return 500
    except ValueError:
        return schedule.timesteps


@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_every_sampler_samples_the_gaussian_and_visits_what_timesteps_lists(kind, linear_schedule):
    """Default settings, data N(0.2, 0.25²) (inside [−1, 1], so x̂_0 clipping stays idle) with the exact ε at
    any t: the output has the data's mean and std, eps_fn sees exactly the times ``timesteps()`` lists, and
    their number is the sampler's NFE. Tolerances: 0.01 absolute on the mean, 3 % on the std. Over 20k draws
    the Monte Carlo 3-sigma bands are 0.005 and 1.5 %; a 1st-order sampler's own bias at 500 steps is about
    1.3 % in std (its error halves per doubling, test_order: 5 % at 100 steps)."""
    module = REGISTRY[kind]
    settings = module.Settings()
    steps = accepted_steps(module, linear_schedule, settings)
    seeds = torch.arange(20_000)
    exact = gaussian_eps_any_t(linear_schedule, 0.2, 0.25)
    seen = []

    def eps(x, t):
        assert t.shape == (x.shape[0],) and (t == t[0]).all()
        seen.append(t[0].item())
        return exact(x, t)

    x_T = image_noise(seeds, 0, (1,)).double()
    x = module.sample(eps, x_T, linear_schedule, steps, lambda k: image_noise(seeds, k, (1,)).double(), settings)
    assert x.mean().item() == pytest.approx(0.2, abs=0.01)
    assert x.std().item() == pytest.approx(0.25, rel=0.03)

    times = list(module.timesteps(linear_schedule, steps, settings))
    assert seen == pytest.approx(times, abs=0)
    assert all(0 <= t <= linear_schedule.timesteps - 1 for t in times)
    assert all(a >= b for a, b in zip(times, times[1:]))
    nfe = module.nfe(steps, settings) if hasattr(module, "nfe") else len(times)  # the contract's default
    assert len(times) == nfe


@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_labels_are_strings(kind):
    module = REGISTRY[kind]
    if hasattr(module, "label"):
        assert isinstance(module.label(module.Settings()), str) and module.label(module.Settings())
