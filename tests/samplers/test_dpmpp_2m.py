"""DPM-Solver++(2M)."""

import pytest
import torch

from diffbench.errors import ParamsError
from diffbench.noise import image_noise
from diffbench.samplers import ddim, dpmpp_2m, make_settings
from tests.samplers.gaussian import gaussian_eps_any_t

SEEDS = torch.arange(512)


def run(schedule, kind, steps, **options):
    eps = gaussian_eps_any_t(schedule, 0.3, 0.5)
    x_T = image_noise(SEEDS, 0, (4,)).double()
    module = {"ddim": ddim, "dpmpp_2m": dpmpp_2m}[kind]
    return module.sample(eps, x_T, schedule, steps, None, make_settings(kind, options))


def test_first_and_last_steps_are_first_order_which_is_ddim(linear_schedule):
    """DPM-Solver++'s 1st-order update is DDIM (Lu et al. 2022, §4.1). With two steps, the first (no history)
    and the last (to σ = 0) are both 1st order, so DPM-Solver++(2M) is DDIM there; with three the middle step
    uses the 2nd-order rule and must differ."""
    two = run(linear_schedule, "dpmpp_2m", 2, spacing="uniform")
    assert torch.allclose(two, run(linear_schedule, "ddim", 2), rtol=1e-10, atol=1e-12)
    three = run(linear_schedule, "dpmpp_2m", 3, spacing="uniform")
    assert (three - run(linear_schedule, "ddim", 3)).abs().max() > 1e-3


def test_uniform_spacing_is_ddims_and_logsnr_is_even_in_lambda(linear_schedule):
    from diffbench.samplers._sigma import log_snr, sigma_at

    uniform = dpmpp_2m.timesteps(linear_schedule, 20, dpmpp_2m.Settings(spacing="uniform"))
    assert uniform == ddim.timesteps(linear_schedule, 20, ddim.Settings())
    times = dpmpp_2m.timesteps(linear_schedule, 20, dpmpp_2m.Settings())
    lambdas = torch.tensor([log_snr(sigma_at(linear_schedule, t)) for t in times], dtype=torch.float64)
    gaps = lambdas.diff()
    assert times[0] == 999 and times[-1] == 0
    assert torch.allclose(gaps, gaps[:1].expand_as(gaps), rtol=1e-9)
    assert len(times) == dpmpp_2m.nfe(20, dpmpp_2m.Settings())


def test_settings_validation_names_the_option(linear_schedule):
    for options, message in [
        ({"spacing": "quadratic"}, "spacing must be 'logsnr' or 'uniform'"),
        ({"sigma_max": 0}, "sigma_max must be null"),
        ({"spacing": "uniform", "sigma_max": 80.0}, "sigma_max applies to spacing 'logsnr' only"),
    ]:
        with pytest.raises(ParamsError, match=message):
            make_settings("dpmpp_2m", options)
    with pytest.raises(ValueError, match="sigma_max must be in"):
        dpmpp_2m.timesteps(linear_schedule, 10, make_settings("dpmpp_2m", {"sigma_max": 1e4}))


def test_label_names_the_spacing():
    assert dpmpp_2m.label(dpmpp_2m.Settings()) == "DPM-Solver++(2M), λ-uniform"
    assert dpmpp_2m.label(dpmpp_2m.Settings(spacing="uniform")) == "DPM-Solver++(2M), t-uniform"
