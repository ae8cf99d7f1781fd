import pytest
import torch

from diffbench.noise import image_noise
from diffbench.samplers import ddim, ddpm, make_settings
from tests.conftest import gaussian_eps

SEEDS = torch.arange(4000)


def noise_fn(k):
    return image_noise(SEEDS, k, (8,)).double()


def run(schedule, steps, **options):
    eps = gaussian_eps(schedule, mean=0.3, std=0.5)
    x_T = image_noise(SEEDS, 0, (8,)).double()
    return ddim.sample(eps, x_T, schedule, steps, noise_fn, make_settings("ddim", options))


def test_ddim_samples_the_gaussian_data_distribution(linear_schedule):
    """Exercise 4: with the analytic ε of N(0.3, 0.5²) data, DDIM recovers mean and variance."""
    x = run(linear_schedule, 500)
    assert x.mean().item() == pytest.approx(0.3, abs=0.01)
    assert x.std().item() == pytest.approx(0.5, rel=0.03)


def test_ddim_error_shrinks_with_steps(linear_schedule):
    errors = [abs(run(linear_schedule, steps).std().item() - 0.5) for steps in (10, 50, 500)]
    assert errors[0] > errors[1] > errors[2]


def test_eta_zero_is_deterministic_and_eta_one_is_not(linear_schedule):
    eps = gaussian_eps(linear_schedule, 0.0, 1.0)
    x_T = image_noise(SEEDS[:16], 0, (8,))
    outputs = {}
    for eta in (0.0, 1.0):
        settings = make_settings("ddim", {"eta": eta})
        a = ddim.sample(eps, x_T, linear_schedule, 20, lambda k: image_noise(SEEDS[:16], k, (8,)), settings)
        b = ddim.sample(eps, x_T, linear_schedule, 20, lambda k: image_noise(SEEDS[:16], 100 + k, (8,)), settings)
        outputs[eta] = torch.equal(a, b)
    assert outputs == {0.0: True, 1.0: False}


def test_ddim_eta_one_over_all_steps_is_ddpm_with_posterior_variance(linear_schedule):
    eps = gaussian_eps(linear_schedule, 0.3, 0.5)
    x_T = image_noise(SEEDS[:256], 0, (8,)).double()
    noise = lambda k: image_noise(SEEDS[:256], k, (8,)).double()  # noqa: E731
    a = ddim.sample(eps, x_T, linear_schedule, 1000, noise, make_settings("ddim", {"eta": 1.0}))
    b = ddpm.sample(eps, x_T, linear_schedule, 1000, noise, make_settings("ddpm", {"variance": "small", "clip_x0": False}))
    assert torch.allclose(a, b, atol=1e-9)


@pytest.mark.parametrize("spacing", ["uniform", "quadratic"])
@pytest.mark.parametrize("steps", [1, 10, 20, 50, 100, 1000])
def test_timesteps_are_distinct_descending_and_in_range(linear_schedule, spacing, steps):
    if spacing == "quadratic" and steps > 800:
        pytest.skip("quadratic spacing tops out at sqrt(0.8 T)^2 = 800")
    seq = ddim.timesteps(linear_schedule, steps, make_settings("ddim", {"spacing": spacing}))
    assert len(seq) == steps
    assert seq[-1] == 0 and seq[0] < 1000
    assert all(a > b for a, b in zip(seq, seq[1:]))


def test_uniform_spacing_matches_the_ddim_paper(linear_schedule):
    seq = ddim.timesteps(linear_schedule, 50, make_settings("ddim", {}))
    assert seq[::-1] == list(range(0, 1000, 20))
    quad = ddim.timesteps(linear_schedule, 10, make_settings("ddim", {"spacing": "quadratic"}))[::-1]
    assert quad[:3] == [0, 9, 39]  # ⌊(i·√800/9)²⌋ for i = 0, 1, 2
    assert quad[-1] in (799, 800)  # (√800)² up to rounding
