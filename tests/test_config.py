import copy
from pathlib import Path

import pytest
import yaml

from diffbench.config import Params, load_params
from diffbench.errors import ParamsError

ROOT = Path(__file__).resolve().parents[1]
PROFILES = [ROOT / "params.yaml", *sorted((ROOT / "profiles").glob("*/params.yaml"))]


def raw() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def keys(tree: dict, prefix: str = "") -> set[str]:
    out = set()
    for key, value in tree.items():
        out.add(prefix + key)
        if isinstance(value, dict) and key not in ("datasets", "architectures", "training", "samplers", "classifier", "prompts"):
            out |= keys(value, prefix + key + ".")
    return out


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.parent.name)
def test_every_profile_validates(path):
    params = load_params(path)
    assert params.models and params.timesteps >= 1


def test_profiles_have_the_same_keys():
    reference, *others = (yaml.safe_load(p.read_text()) for p in PROFILES)
    assert others and all(keys(reference) == keys(other) for other in others)


def test_models_are_every_dataset_times_every_schedule():
    params = Params(raw())
    names = [m.name for m in params.models]
    assert len(names) == 6 and "cifar10-jpeg-sigmoid" in names


def test_run_names_parse_into_sampler_steps_and_guidance():
    params = Params(raw())
    run = params.run("ddim_quad-20", "none")
    assert (run.kind, run.steps, run.guidance, run.options["spacing"]) == ("ddim", 20, None, "quadratic")
    assert params.run("ddpm-1000").guidance == 1.0


def edit(path: str, value):
    data = copy.deepcopy(raw())
    node = data
    *parents, last = path.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    return data


@pytest.mark.parametrize(
    "path, value, message",
    [
        ("models.schedules", ["linear", "exponential"], "models.schedules: unknown schedule 'exponential'; allowed: cosine, linear, sigmoid"),
        ("models.datasets", ["mnist", "svhn"], "models.datasets: unknown dataset 'svhn'"),
        ("sweep.runs", ["ddim-0"], "must be an integer in 1..1000"),
        ("sweep.runs", ["ddim-1001"], "must be an integer in 1..1000"),
        ("sweep.runs", ["ddpm-50"], "ddpm is ancestral over all T=1000 steps"),
        ("sweep.runs", ["heun-50"], "must be '<sampler setting>-<steps>'"),
        ("samplers.ddim", {"kind": "heun"}, "unknown sampler kind 'heun'; allowed: ddim, ddpm"),
        ("samplers.ddim", {"kind": "ddim", "eta": -0.5}, "samplers.ddim: eta must be a number >= 0"),
        ("guidance.scales", [1, -3], "guidance.scales: a guidance scale must be a number >= 0"),
        ("guidance.schedule", "sigmoidal", "guidance.schedule: 'sigmoidal' is not among models.schedules"),
        ("training.mnist.p_uncond", 1.5, "training.mnist.p_uncond: must be in [0, 1]"),
        ("training.mnist.steps", "many", "training.mnist.steps: must be int"),
        ("training.mnist.stepz", 3, "training.mnist: unknown key(s) ['stepz']"),
        ("sampling.n_samples", 0, "sampling.n_samples: must be >= 1"),
        ("metrics.prc_k", 0, "metrics.prc_k: must be >= 1"),
        ("diffusion.timesteps", 0, "diffusion.timesteps: must be an integer >= 1"),
    ],
)
def test_bad_params_fail_with_one_line_naming_the_field(path, value, message):
    with pytest.raises(ParamsError) as error:
        Params(edit(path, value))
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_and_broken_params_files(tmp_path):
    with pytest.raises(ParamsError, match="params file not found"):
        load_params(tmp_path / "nope.yaml")
    broken = tmp_path / "params.yaml"
    broken.write_text("seed: [0\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(broken)


def test_command_line_scales_parse_like_params():
    params = Params(raw())
    assert params.run("ddim-50", "3").guidance == 3.0
    assert params.run("ddim-50", "none").guidance is None
    with pytest.raises(ParamsError, match="got 'strong'"):
        params.run("ddim-50", "strong")
