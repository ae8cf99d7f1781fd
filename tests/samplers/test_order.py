"""Each deterministic sampler's error falls with the number of steps at its order (log–log slope −p).

Data N(0.3, 0.5²) with the exact ε at any t: the probability-flow ODE then has a closed-form solution, and
``exact_output`` is where each sampler must land as steps → ∞ from its own first level (which moves with S
on the uniform grids) through its own last step (σ_0 → 0, the same x̂_0 step for every S). The error is
|Var(output) − Var(exact)|; the ODE is linear, so it is |a_S² − a²|·Var(x_T) for the sampler's gain a_S and
any x_T, free of Monte Carlo noise. Steps 25…200 divide T = 1000, so the uniform grids are exactly evenly
spaced in t (no ⌊·⌋ jitter).

Tolerance: a p-th order method has error C·S^(−p)·(1 + O(1/S)); the O(1/S) term biases a fitted slope by
about 0.1 at most over 25…200 steps. 0.25 is a quarter of the gap between orders 1 and 2, so a sampler that
lost its order fails: Heun without its correction fits −0.97, DPM-Solver++ kept at 1st order −0.98, and with
its extrapolation weight 1/r instead of 1/(2r) −1.24 (λ-uniform), all tried by hand.
"""

import math

import numpy as np
import pytest
import torch

from diffbench.noise import image_noise
from diffbench.samplers import REGISTRY, make_settings
from diffbench.samplers._sigma import sigma_at
from tests.samplers.gaussian import exact_output, gaussian_eps_any_t

MEAN, STD = 0.3, 0.5
STEPS = (25, 50, 100, 200)
SLOPE_TOLERANCE = 0.25


def variance_error(schedule, kind, options, steps):
    module, settings = REGISTRY[kind], make_settings(kind, options)
    x_T = image_noise(torch.arange(64), 0, (4,)).double()
    out = module.sample(gaussian_eps_any_t(schedule, MEAN, STD), x_T, schedule, steps, None, settings)
    times = module.timesteps(schedule, steps, settings)
    exact = exact_output(x_T, sigma_at(schedule, times[0]), sigma_at(schedule, times[-1]), MEAN, STD)
    return abs(out.var().item() - exact.var().item())


@pytest.mark.parametrize(
    "kind, options, order",
    [
        ("ddim", {}, 1),
        ("euler", {}, 1),
        ("euler", {"grid": "model"}, 1),
        ("heun", {}, 2),
        ("heun", {"grid": "model"}, 2),
        ("dpmpp_2m", {}, 2),
        ("dpmpp_2m", {"spacing": "uniform"}, 2),
    ],
)
def test_variance_error_falls_at_the_samplers_order(linear_schedule, kind, options, order):
    errors = [variance_error(linear_schedule, kind, options, steps) for steps in STEPS]
    slope = np.polyfit(np.log(STEPS), np.log(errors), 1)[0]
    assert slope == pytest.approx(-order, abs=SLOPE_TOLERANCE), f"errors {errors}"
    assert all(math.isfinite(e) and e > 0 for e in errors)
