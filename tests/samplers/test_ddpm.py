import pytest
import torch

from diffbench.noise import image_noise
from diffbench.samplers import ddpm, make_settings
from tests.conftest import gaussian_eps

SEEDS = torch.arange(4000)


@pytest.mark.parametrize("variance", ["large", "small"])
def test_ddpm_samples_the_gaussian_data_distribution(linear_schedule, variance):
    """Exercise 4: DDPM-1000 with the analytic ε of N(0.3, 0.5²) data gives that mean and variance."""
    eps = gaussian_eps(linear_schedule, 0.3, 0.5)
    x_T = image_noise(SEEDS, 0, (8,)).double()
    settings = make_settings("ddpm", {"variance": variance, "clip_x0": False})
    x = ddpm.sample(eps, x_T, linear_schedule, 1000, lambda k: image_noise(SEEDS, k, (8,)).double(), settings)
    assert x.mean().item() == pytest.approx(0.3, abs=0.01)
    assert x.std().item() == pytest.approx(0.5, rel=0.03)


def test_ddpm_is_stochastic_given_x_T(linear_schedule):
    eps = gaussian_eps(linear_schedule, 0.0, 1.0)
    x_T = image_noise(SEEDS[:8], 0, (4,))
    settings = make_settings("ddpm", {})
    a = ddpm.sample(eps, x_T, linear_schedule, 1000, lambda k: image_noise(SEEDS[:8], k, (4,)), settings)
    b = ddpm.sample(eps, x_T, linear_schedule, 1000, lambda k: image_noise(SEEDS[:8], 5000 + k, (4,)), settings)
    assert not torch.equal(a, b)


def test_ddpm_refuses_to_skip_steps(linear_schedule):
    with pytest.raises(ValueError, match="all T=1000"):
        ddpm.timesteps(linear_schedule, 50, make_settings("ddpm", {}))


def test_clipping_keeps_predicted_x0_in_range(linear_schedule):
    """Data far outside [−1, 1]: clipped DDPM stays inside, unclipped follows the data."""
    eps = gaussian_eps(linear_schedule, 3.0, 0.1)
    x_T = image_noise(SEEDS[:500], 0, (4,)).double()
    noise = lambda k: image_noise(SEEDS[:500], k, (4,)).double()  # noqa: E731
    clipped = ddpm.sample(eps, x_T, linear_schedule, 1000, noise, make_settings("ddpm", {"clip_x0": True}))
    free = ddpm.sample(eps, x_T, linear_schedule, 1000, noise, make_settings("ddpm", {"clip_x0": False}))
    assert clipped.mean().item() < 1.1
    assert free.mean().item() == pytest.approx(3.0, abs=0.05)
