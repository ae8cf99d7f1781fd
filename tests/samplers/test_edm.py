"""Euler and Heun in EDM's σ-space."""

import pytest
import torch

from diffbench.errors import ParamsError
from diffbench.noise import image_noise
from diffbench.samplers import ddim, euler, heun, make_settings
from tests.samplers.gaussian import gaussian_eps_any_t

SEEDS = torch.arange(512)


def no_noise(k):
    raise AssertionError("a deterministic sampler asked for noise")


@pytest.mark.parametrize("steps", [1, 7, 10, 50])
def test_euler_on_the_model_timesteps_is_deterministic_ddim(linear_schedule, steps):
    """Euler's d = (x̃ − D)/σ is ε_θ, so its step in σ is DDIM's η = 0 step: the same numbers up to rounding."""
    eps = gaussian_eps_any_t(linear_schedule, 0.3, 0.5)
    x_T = image_noise(SEEDS, 0, (8,)).double()
    a = euler.sample(eps, x_T, linear_schedule, steps, no_noise, make_settings("euler", {"grid": "model"}))
    b = ddim.sample(eps, x_T, linear_schedule, steps, no_noise, make_settings("ddim", {"eta": 0.0}))
    assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)
    assert euler.timesteps(linear_schedule, steps, euler.Settings(grid="model")) == ddim.timesteps(
        linear_schedule, steps, ddim.Settings()
    )


def test_euler_equals_ddim_with_a_network_too(linear_schedule, tiny_unet):
    """Same with a U-Net in float32: float times (Euler) and long times (DDIM) embed alike."""
    eps = lambda x, t: tiny_unet(x, t)  # noqa: E731
    x_T = image_noise(SEEDS[:4], 0, (1, 8, 8))
    a = euler.sample(eps, x_T, linear_schedule, 5, no_noise, make_settings("euler", {"grid": "model"}))
    b = ddim.sample(eps, x_T, linear_schedule, 5, no_noise, make_settings("ddim", {}))
    assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)


def test_heun_runs_a_network_at_fractional_times(linear_schedule, tiny_unet):
    seen = []

    def eps(x, t):
        seen.append(t)
        return tiny_unet(x, t)

    x = heun.sample(eps, image_noise(SEEDS[:2], 0, (1, 8, 8)), linear_schedule, 4, no_noise, heun.Settings())
    assert torch.isfinite(x).all()
    assert all(t.dtype == torch.float32 and t.shape == (2,) for t in seen)
    assert any(t[0] != t[0].round() for t in seen)


@pytest.mark.parametrize("grid", ["karras", "model"])
def test_heun_evaluates_each_level_twice_but_the_first(linear_schedule, grid):
    settings = make_settings("heun", {"grid": grid})
    levels = euler.timesteps(linear_schedule, 6, make_settings("euler", {"grid": grid}))
    times = heun.timesteps(linear_schedule, 6, settings)
    assert times == [levels[0], levels[1], levels[1], levels[2], levels[2], levels[3], levels[3], levels[4],
                     levels[4], levels[5], levels[5]]
    assert len(times) == heun.nfe(6, settings) == 11
    assert heun.nfe(18, settings) == 35  # EDM's 35 NFE


def test_one_heun_step_is_one_euler_step(linear_schedule):
    """With one level the only step goes to σ = 0, where Heun keeps Euler."""
    eps = gaussian_eps_any_t(linear_schedule, 0.3, 0.5)
    x_T = image_noise(SEEDS, 0, (4,)).double()
    a = heun.sample(eps, x_T, linear_schedule, 1, no_noise, heun.Settings())
    b = euler.sample(eps, x_T, linear_schedule, 1, no_noise, euler.Settings())
    assert torch.equal(a, b)


@pytest.mark.parametrize("kind", ["euler", "heun"])
def test_settings_validation_names_the_option(kind, linear_schedule):
    for options, message in [
        ({"grid": "uniform"}, "grid must be 'karras' or 'model'"),
        ({"rho": 0}, "rho must be a number > 0"),
        ({"rho": True}, "rho must be a number > 0"),
        ({"sigma_max": -1.0}, "sigma_max must be null"),
        ({"sigma_max": "80"}, "sigma_max must be null"),
        ({"grid": "model", "sigma_max": 80.0}, "sigma_max applies to grid 'karras' only"),
    ]:
        with pytest.raises(ParamsError, match=message):
            make_settings(kind, options)
    module = {"euler": euler, "heun": heun}[kind]
    with pytest.raises(ValueError, match=r"sigma_max must be in \(0\.01\d*, 157\.4\d*\]"):
        module.timesteps(linear_schedule, 10, make_settings(kind, {"sigma_max": 500.0}))


def test_labels_name_the_method_and_grid():
    assert euler.label(euler.Settings()) == "Euler, Karras ρ=7"
    assert heun.label(heun.Settings(sigma_max=80.0)) == "Heun (EDM), Karras ρ=7, σ_max=80"
    assert heun.label(heun.Settings(grid="model")) == "Heun (EDM), model timesteps"
