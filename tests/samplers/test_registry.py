import pytest

from diffbench.errors import ParamsError
from diffbench.samplers import REGISTRY, check_steps, get_sampler, make_settings


def test_shipped_samplers_are_registered_with_the_uniform_contract():
    assert {"ddpm", "ddim"} <= set(REGISTRY)
    for module in REGISTRY.values():
        for name in ("NAME", "Settings", "timesteps", "sample"):
            assert hasattr(module, name)


def test_unknown_sampler_lists_the_allowed_ones():
    with pytest.raises(ParamsError, match="allowed: ddim, ddpm"):
        get_sampler("heun")


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
