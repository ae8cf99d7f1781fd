"""Report building from the runs params plan, on hand-written records (test inputs only; never under reports/)."""

import copy
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from diffbench import layout
from diffbench.config import Params
from diffbench.errors import DiffbenchError
from diffbench.reports import build_reports

QUICK = Path(__file__).resolve().parents[1] / "profiles" / "quick" / "params.yaml"


def with_interval(key, value, half_width):
    return {key: value, f"{key}_lo": value - half_width, f"{key}_hi": value + half_width}


def params() -> Params:
    raw = copy.deepcopy(yaml.safe_load(QUICK.read_text()))
    raw["models"]["datasets"] = ["mnist"]
    raw["shards"] = {"quick": ["mnist-linear", "mnist-cosine"]}
    return Params(raw)


def record(generation, fid, width=2.0, label="DDIM η=0", deterministic=True):
    return {
        "dataset": generation.model.dataset, "model": generation.model.name, "schedule": generation.model.schedule,
        "run": generation.run,
        "sampler": {"setting": generation.setting, "kind": generation.kind, "label": label,
                    "steps": generation.steps, "nfe": generation.steps},
        "guidance_scale": generation.guidance, "deterministic": deterministic,
        "timing": {"seconds": 16.0, "device": "cpu (2 threads)"},
        "origin": {"commit": "0123456789abcdef", "date": "2026-12-02T08:00:00Z", "shard": "quick"},
        "metrics": {**with_interval("fid", fid, width), **with_interval("kid_mean", 0.01, 0.002), "kid_std": 0.001,
                    **with_interval("precision", 0.5, 0.05), **with_interval("recall", 0.4, 0.05),
                    **with_interval("class_accuracy", 0.9, 0.02),
                    "inception_score_mean": None, "inception_score_unavailable": "no logits",
                    "clip_score": None, "clip_score_unavailable": "no CLIP weights",
                    "interval_method": "half-sample jackknife (B=20)"},
        "provenance": {"n_samples": 32, "device": "cpu (2 threads)", "weights_sha256": "ab" * 32,
                       "reference": {"split": "test", "n": 64}, "backend": "torch-fidelity", "version": "0.3.0",
                       "seeds": "0-31"},
    }


FIDS = {  # (model, run) -> (FID, interval half-width); mnist-cosine/ddim-50-cfg1 stays missing
    ("mnist-linear", "ddpm-100-cfg1"): (30.0, 2.0),
    ("mnist-linear", "ddim-10-cfg1"): (50.0, 2.0),
    ("mnist-cosine", "ddim-10-cfg1"): (40.0, 9.0),
    ("mnist-linear", "ddim_eta1-10-cfg1"): (45.0, 2.0),
    ("mnist-cosine", "ddim-10-cfgnone"): (60.0, 2.0),
    ("mnist-cosine", "ddim-10-cfg3"): (35.0, 2.0),
}
LABELS = {"ddpm": "DDPM (σ²=β)", "ddim": "DDIM η=0", "ddim_eta1": "DDIM η=1"}


@pytest.fixture
def profile(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = params()
    for generation in p.plan.generations:
        if (generation.model.name, generation.run) not in FIDS:
            continue
        fid, width = FIDS[(generation.model.name, generation.run)]
        path = layout.run_dir(generation.model.name, generation.run) / "metrics.json"
        path.parent.mkdir(parents=True)
        rec = record(generation, fid, width, LABELS[generation.setting], generation.kind != "ddpm")
        path.write_text(json.dumps(rec))
    return p


def test_tables_plots_and_summary_follow_the_plan(profile, tmp_path):
    out = tmp_path / "reports"
    files, warnings = build_reports(profile, out)
    assert warnings == [] and out / "index.md" in files
    steps = pd.read_csv(out / "tables" / "ddpm_vs_ddim_mnist.csv")
    assert {"DDPM (σ²=β)", "DDIM η=0", "DDIM η=1"} <= set(steps["method"])
    assert "nfe" in steps.columns
    assert steps.loc[steps["fid"].notna(), "class_accuracy"].notna().all()  # every recorded run: guidance 1
    assert "| class accuracy " in (out / "tables" / "ddpm_vs_ddim_mnist.md").read_text()
    cfg = pd.read_csv(out / "tables" / "cfg_mnist.csv")
    assert len(cfg) == 3  # unguided, 1 (the sweep's own run), 3
    for absent in ("inception_score_mean", "clip_score"):  # unavailable: no column, never a number
        assert absent not in cfg.columns
    cfg_text = (out / "tables" / "cfg_mnist.md").read_text()
    assert "CLIP score: unavailable — no CLIP weights" in cfg_text
    assert "**35.00 [33.00, 37.00]**" in cfg_text and "60.00 [58.00, 62.00]" in cfg_text
    schedules = (out / "tables" / "schedules_mnist.md").read_text()
    # ddim-10: cosine 40 ± 9 and linear 50 ± 2 overlap ([31, 49] vs [48, 52]): all tie, so nothing is bold.
    assert "| 40.00 [31.00, 49.00] |" in schedules and "| 50.00 [48.00, 52.00] |" in schedules
    assert "**" not in schedules.split("|---")[-1]
    summary = json.loads((out / "summary.json").read_text())
    entry = summary["mnist"]["mnist-linear"]["ddim-10-cfg1"]
    assert entry["fid"] == 50.0 and entry["fid_lo"] == 48.0 and entry["n_samples"] == 32
    assert entry["commit"] == "0123456789" and entry["device"] == "cpu (2 threads)" and entry["status"] == "ok"
    assert "ddim-50-cfg1" not in summary["mnist"]["mnist-cosine"]  # missing runs carry no numbers
    index = (out / "index.md").read_text()
    assert "**missing**" in index and "mnist-cosine/ddim-50-cfg1" in index
    assert (out / "plots" / "fid_vs_nfe_mnist.png").stat().st_size > 1000
    assert (out / "plots" / "quality_vs_cfg_mnist.png").stat().st_size > 1000


def test_a_folder_params_no_longer_plan_is_left_out_with_a_warning(profile, tmp_path):
    leftover = layout.run_dir("mnist-linear", "ddim-999-cfg1")
    leftover.mkdir(parents=True)
    (leftover / "metrics.json").write_text("{}")
    _, warnings = build_reports(profile, tmp_path / "reports")
    assert warnings == [f"{leftover}: not planned by params.yaml; left out of the report"]
    summary = json.loads((tmp_path / "reports" / "summary.json").read_text())
    assert "ddim-999-cfg1" not in summary["mnist"]["mnist-linear"]


def test_a_broken_record_fails_naming_the_file(profile, tmp_path):
    broken = layout.run_dir("mnist-linear", "ddim-10-cfg1") / "metrics.json"
    broken.write_text("{")
    with pytest.raises(DiffbenchError, match="ddim-10-cfg1/metrics.json: not valid JSON"):
        build_reports(profile, tmp_path / "reports")
    broken.write_text(json.dumps({"dataset": "mnist"}))
    with pytest.raises(DiffbenchError, match="ddim-10-cfg1/metrics.json: not a diffbench run record"):
        build_reports(profile, tmp_path / "reports")


def test_a_profile_without_any_record_lists_every_run_as_missing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = params()
    files, _ = build_reports(p, tmp_path / "reports")
    index = (tmp_path / "reports" / "index.md").read_text()
    assert f"**missing** ({len(p.plan.generations)} planned runs without a record)" in index
    assert "No run of this dataset has a record yet" in index
    assert json.loads((tmp_path / "reports" / "summary.json").read_text()) == {}


def test_ms_per_image_says_how_many_runners_shared_the_gpu():
    import pandas as pd

    from diffbench.reports import sharing_line

    frame = pd.DataFrame({"seconds_per_image": [0.01, 0.02, None, 0.03], "gpu_shared_by": [4, 1, None, None]})
    line = sharing_line(frame)
    assert "1 stage runner(s) sharing the GPU; 4 stage runner(s)" in line
    assert "sharing not recorded for 1 row(s)" in line  # the untimed row (real data) is not counted
    assert sharing_line(pd.DataFrame({"seconds_per_image": [None], "gpu_shared_by": [None]})) is None


def test_a_stale_row_is_never_marked_best_or_tied():
    """Its numbers are of code, params or a command the plan no longer runs (e.g. DDIM η=1 at n=5k)."""
    from diffbench.reports import _contenders, interval_cells

    rows = pd.DataFrame({"fid": [10.0, 20.0, 21.0, 40.0], "fid_lo": [9.0, 19.0, 20.0, 39.0],
                         "fid_hi": [11.0, 21.0, 22.0, 41.0], "method": ["DDIM η=1", "DDIM η=0", "DDPM", "DDIM η=0"],
                         "status": ["stale (command changed)", "ok", "ok", "ok"]})
    cells = interval_cells(rows, "fid", _contenders(rows))
    assert list(cells) == ["10.00 [9.00, 11.00]", "**20.00 [19.00, 21.00]**", "≈ 21.00 [20.00, 22.00]",
                           "40.00 [39.00, 41.00]"]
