"""The run plan: one owner of run names, generations deduplicated across tables, errors in one line."""

import copy
from pathlib import Path

import pytest
import yaml

from diffbench.errors import ParamsError
from diffbench.runs import build_plan, parse_run, parse_scale, scale_text

QUICK = Path(__file__).resolve().parents[1] / "profiles" / "quick" / "params.yaml"


def raw() -> dict:
    return copy.deepcopy(yaml.safe_load(QUICK.read_text()))


def test_run_names_round_trip():
    assert parse_run("ddim_eta1-10", "x") == ("ddim_eta1", 10)
    assert parse_run("dpmpp-2m-20", "x") == ("dpmpp-2m", 20)  # only the last '-' splits
    assert [scale_text(parse_scale(v, "x")) for v in ("none", None, 1, 1.5, "3")] == ["none", "none", "1", "1.5", "3"]


@pytest.mark.parametrize("text", ["ddim", "ddim-0", "ddim-x", "-10", 10])
def test_bad_run_names_fail_in_one_line(text):
    with pytest.raises(ParamsError, match=r"^sweep.runs: .* must be '<sampler setting>-<steps>'"):
        parse_run(text, "sweep.runs")


@pytest.mark.parametrize("value", [-1, "loud", float("nan"), True])
def test_bad_scales_fail_in_one_line(value):
    with pytest.raises(ParamsError, match="guidance scale must be a number >= 0 or 'none'"):
        parse_scale(value, "guidance.scales")


def test_a_generation_two_tables_ask_for_is_planned_once():
    params = raw()
    params["guidance"] |= {"run": "ddim-10", "scales": ["none", 1, 3], "classifier_scales": [0, 3]}
    plan = build_plan(params)
    shared = plan.generation("mnist-cosine", "ddim-10-cfg1")
    assert plan.tables_of(shared) == ["sweep", "guidance"]
    unguided = plan.generation("mnist-cosine", "ddim-10-cfgnone")  # classifier guidance at 0 is the unguided run
    assert plan.tables_of(unguided) == ["guidance", "classifier_guidance"]
    guided = plan.generation("mnist-cosine", "ddim-10-cfgnone-cg3")
    assert guided.guidance is None and guided.classifier_scale == 3
    assert guided.guide_file == "reference_models/mnist-cosine-noisy-classifier/noisy_classifier.pt"
    assert unguided.guide_file == "reference_models/mnist-cosine/model.pt"
    keys = [g.key for g in plan.generations]
    assert len(keys) == len(set(keys))
    sweep = len(plan.models) * len(params["sweep"]["runs"])
    ablation = 2 * len(params["ablation"]["runs"])  # two datasets, one ablation schedule
    assert len(keys) == sweep + ablation + 2 * 2 + 2  # guidance: none and 3 are new, 1 is the sweep's; cg3 is new
    assert [m.name for m in plan.guided_models] == ["mnist-cosine", "cifar10-jpeg-cosine"]


@pytest.mark.parametrize("value", ["none", -1, "x", True])
def test_a_classifier_guidance_scale_is_a_number(value):
    params = raw()
    params["guidance"]["classifier_scales"] = [value]
    with pytest.raises(ParamsError, match="guidance.classifier_scales: a classifier guidance scale must be a number"):
        build_plan(params)


def test_per_setting_sample_counts_and_unknown_settings():
    params = raw()
    params["sampling"]["n_samples_per_setting"] = {"ddpm": 7}
    plan = build_plan(params)
    assert plan.generation("mnist-linear", "ddpm-100-cfg1").n_samples == 7
    assert plan.generation("mnist-linear", "ddim-10-cfg1").n_samples == params["sampling"]["n_samples"]
    with pytest.raises(ParamsError, match="run mnist-linear/ddim-11-cfg1: not planned .* planned runs of mnist-linear"):
        plan.generation("mnist-linear", "ddim-11-cfg1")
    params["sweep"]["runs"] = ["heun2-10"]
    with pytest.raises(ParamsError, match="sweep.runs: 'heun2-10': no sampler setting 'heun2'"):
        build_plan(params)
