import copy
from pathlib import Path

import pytest
import yaml

from diffbench.config import Params, load_params
from diffbench.errors import ParamsError

ROOT = Path(__file__).resolve().parents[1]
PROFILES = [ROOT / "params.yaml", *sorted((ROOT / "profiles").glob("*/params.yaml"))]
OPTIONAL = {"report_banner"}
# sections whose children are names a profile chooses (datasets, settings, shards), not a fixed schema
FREE_FORM = ("datasets", "architectures", "training", "samplers", "classifier", "prompts", "shards",
             "n_samples_per_setting")


def raw() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def keys(tree: dict, prefix: str = "") -> set[str]:
    out = set()
    for key, value in tree.items():
        out.add(prefix + key)
        if isinstance(value, dict) and key not in FREE_FORM:
            out |= keys(value, prefix + key + ".")
    return out


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.parent.name)
def test_every_profile_validates(path):
    params = load_params(path)
    assert params.models and params.timesteps >= 1


def test_profiles_have_the_same_keys():
    reference, *others = (keys(yaml.safe_load(p.read_text())) - OPTIONAL for p in PROFILES)
    assert others and all(reference == other for other in others)


def test_models_are_every_dataset_times_every_schedule():
    params = Params(raw())
    names = [m.name for m in params.models]
    assert len(names) == 6 and "cifar10-jpeg-sigmoid" in names


def test_sampler_settings_are_validated_with_their_defaults():
    settings = Params(raw()).sampler_settings("ddim_quad")
    assert (settings.eta, settings.spacing, settings.clip_x0) == (0.0, "quadratic", False)


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
        ("sweep.runs", ["ddim-0"], "sweep.runs: 'ddim-0' must be '<sampler setting>-<steps>'"),
        ("sweep.runs", ["ddim-1001"], "must be an integer in 1..1000"),
        ("sweep.runs", ["ddpm-50"], "ddpm runs all T=1000 steps; got steps=50"),
        ("sweep.runs", ["nosuch-50"], "sweep.runs: 'nosuch-50': no sampler setting 'nosuch'"),
        ("sweep.runs", ["ddim"], "must be '<sampler setting>-<steps>'"),
        ("samplers.ddim", {"kind": "nosuch"}, "unknown sampler kind 'nosuch'; allowed: ddim, ddpm"),
        ("sampling.n_samples_per_setting", {"ddpm": 0}, "sampling.n_samples_per_setting.ddpm: must be an integer >= 1"),
        ("sampling.n_samples_per_setting", {"nosuch": 10}, "sampling.n_samples_per_setting.nosuch: no such sampler"),
        ("shards", {"a": ["mnist-linear"]}, "shards: models in no shard: mnist-cosine"),
        ("shards.mnist", ["mnist-linear", "mnist-sqrt"], "shards.mnist: unknown model 'mnist-sqrt'"),
        ("report_banner", 3, "report_banner: must be a text"),
        ("sampling.n_samples", 6, "n=6 is too few; precision/recall with metrics.prc_k=3 on half-samples needs n >= 8"),
        ("samplers.ddim", {"kind": "ddim", "eta": -0.5}, "samplers.ddim.eta: eta must be a number >= 0"),
        ("guidance.scales", [1, -3], "guidance.scales: a guidance scale must be a number >= 0"),
        ("guidance.schedule", "sigmoidal", "guidance.schedule: 'sigmoidal' is not among models.schedules"),
        ("training.mnist.p_uncond", 1.5, "training.mnist.p_uncond: must be in [0, 1]"),
        ("training.mnist.steps", "many", "training.mnist.steps: must be int"),
        ("training.mnist.stepz", 3, "training.mnist: unknown key(s) ['stepz']"),
        ("training.mnist.chosen_by", 3, "training.mnist.chosen_by: must be a text, got 3"),
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


def test_unknown_sections_are_refused():
    with pytest.raises(ParamsError, match=r"unknown section\(s\) \['sampler'\]"):
        Params(raw() | {"sampler": {}})
