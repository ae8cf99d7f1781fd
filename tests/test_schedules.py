import math

import numpy as np
import pytest

from diffbench.errors import ParamsError
from diffbench.schedules import MAX_BETA, SCHEDULES, make_betas


@pytest.mark.parametrize("name", sorted(SCHEDULES))
@pytest.mark.parametrize("timesteps", [10, 1000])
def test_alpha_bar_decreases_from_near_one_to_near_zero(name, timesteps):
    betas = make_betas(name, timesteps)
    alpha_bar = np.cumprod(1 - betas)
    assert betas.shape == (timesteps,)
    assert np.all(betas > 0) and np.all(betas <= MAX_BETA)
    assert np.all(np.diff(alpha_bar) < 0)
    assert alpha_bar[0] > 0.9
    if timesteps == 1000:
        assert alpha_bar[-1] < 1e-3


def test_linear_endpoints_are_ho_et_al():
    betas = make_betas("linear", 1000)
    assert betas[0] == pytest.approx(1e-4)
    assert betas[-1] == pytest.approx(0.02)
    assert np.allclose(np.diff(betas), np.diff(betas)[0])


def test_cosine_matches_closed_form():
    T, s = 1000, 0.008
    alpha_bar = np.cumprod(1 - make_betas("cosine", T))
    t = np.arange(1, T + 1)
    f = lambda u: math.cos((u / T + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    expected = np.array([f(u) / f(0) for u in t])
    unclipped = expected > 1e-3  # the last steps are capped at β = 0.999
    assert np.allclose(alpha_bar[unclipped], expected[unclipped], rtol=1e-10)
    assert make_betas("cosine", T).max() == pytest.approx(MAX_BETA)


def test_sigmoid_matches_chen_2023():
    T = 1000
    sig = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    alpha = lambda u: (sig(3) - sig(u * 6 - 3)) / (sig(3) - sig(-3))  # noqa: E731
    alpha_bar = np.cumprod(1 - make_betas("sigmoid", T))
    for t in (1, 250, 500, 750):
        assert alpha_bar[t - 1] == pytest.approx(alpha(t / T), rel=1e-9)


def test_unknown_schedule_and_bad_timesteps_fail_with_allowed_values():
    with pytest.raises(ParamsError, match="allowed: cosine, linear, sigmoid"):
        make_betas("quadratic", 1000)
    with pytest.raises(ParamsError, match="timesteps"):
        make_betas("linear", 0)
