"""Report building on hand-written metric records (test inputs only; never written under reports/)."""

import json

import pandas as pd
import pytest

from diffbench.errors import DiffbenchError
from diffbench.reports import build_reports, load_records


def with_interval(key, value, half_width):
    return {key: value, f"{key}_lo": value - half_width, f"{key}_hi": value + half_width}


def record(model, run, family, fid, kind="ddim", steps=10, options=None, scale=1.0, deterministic=True, width=2.0):
    schedule = model.rpartition("-")[2]
    return {
        "dataset": "mnist", "model": model, "schedule": schedule, "family": family, "run": run,
        "sampler": {"setting": kind, "kind": kind, "steps": steps, "options": options or {}},
        "guidance_scale": scale, "deterministic": deterministic,
        "timing": {"seconds_per_image": 0.5, "device": "cpu (2 threads)"},
        "metrics": {**with_interval("fid", fid, width), **with_interval("kid_mean", 0.01, 0.002), "kid_std": 0.001,
                    **with_interval("precision", 0.5, 0.05), **with_interval("recall", 0.4, 0.05),
                    **with_interval("class_accuracy", 0.9, 0.02),
                    "inception_score_mean": None, "inception_score_unavailable": "no logits",
                    "clip_score": None, "clip_score_unavailable": "no CLIP weights",
                    "interval_method": "half-sample jackknife (B=20)"},
        "provenance": {"n_samples": 50, "device": "cpu (2 threads)", "weights_sha256": "ab" * 32,
                       "reference": {"split": "test", "n": 100}, "backend": "torch-fidelity", "version": "0.3.0",
                       "seeds": "0-49"},
    }


@pytest.fixture
def results(tmp_path):
    rows = [
        record("mnist-linear", "ddpm-100", "sweep", 30.0, kind="ddpm", steps=100, deterministic=False),
        record("mnist-linear", "ddim-10", "sweep", 50.0),
        record("mnist-cosine", "ddim-10", "sweep", 40.0, width=9.0),
        record("mnist-cosine", "ddim_eta1-10", "ablation", 45.0, options={"eta": 1.0}, deterministic=False),
        record("mnist-cosine", "ddim-10-cfgnone", "guidance", 60.0, scale=None),
        record("mnist-cosine", "ddim-10-cfg3", "guidance", 35.0, scale=3.0),
    ]
    for row in rows:
        path = tmp_path / "results" / row["model"] / row["run"] / "metrics.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(row))
    return tmp_path / "results"


def test_tables_plots_and_summary(results, tmp_path):
    out = tmp_path / "reports"
    build_reports(results, out)
    steps = pd.read_csv(out / "tables" / "ddpm_vs_ddim_mnist.csv")
    assert list(steps.columns[:4]) == ["schedule", "method", "steps", "fid"]
    assert set(steps["method"]) == {"DDPM (σ²=β)", "DDIM η=0", "DDIM η=1"}
    assert steps.loc[steps["method"] == "DDPM (σ²=β)", "deterministic"].item() == False  # noqa: E712
    cfg = pd.read_csv(out / "tables" / "cfg_mnist.csv")
    assert cfg["scale"].tolist() == ["unguided", "3"]
    for missing in ("inception_score_mean", "clip_score"):  # unavailable: no column, never a number
        assert missing not in cfg.columns
    assert {"fid_lo", "fid_hi", "class_accuracy", "class_accuracy_lo"} <= set(cfg.columns)
    cfg_text = (out / "tables" / "cfg_mnist.md").read_text()
    assert "CLIP score: unavailable — no CLIP weights" in cfg_text
    assert "**35.00 [33.00, 37.00]**" in cfg_text and "| 60.00 [58.00, 62.00]" in cfg_text
    schedules = pd.read_csv(out / "tables" / "schedules_mnist.csv")
    assert schedules.set_index("schedule").loc["cosine", "ddim-10"] == 40.0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mnist"]["mnist-linear"]["ddim-10"] == pytest.approx({
        "fid": 50.0, "fid_lo": 48.0, "fid_hi": 52.0, "kid_mean": 0.01, "kid_mean_lo": 0.008, "kid_mean_hi": 0.012,
        "kid_std": 0.001, "precision": 0.5, "precision_lo": 0.45, "precision_hi": 0.55, "recall": 0.4,
        "recall_lo": 0.35, "recall_hi": 0.45, "class_accuracy": 0.9, "class_accuracy_lo": 0.88,
        "class_accuracy_hi": 0.92, "seconds_per_image": 0.5, "n_samples": 50, "device": "cpu (2 threads)",
        "deterministic": True,
    })
    schedules = (out / "tables" / "schedules_mnist.md").read_text()
    # ddim-10: cosine 40 ± 9 is best; linear 50 ± 2 overlaps it ([48, 52] vs [31, 49]): marked as a tie.
    assert "**40.00 [31.00, 49.00]**" in schedules and "≈ 50.00 [48.00, 52.00]" in schedules
    text = (out / "tables" / "ddpm_vs_ddim_mnist.md").read_text()
    assert "Inception Score: unavailable — no logits" in text and " n |" in text and "| device" in text
    floor_free = text.split("\n")[-2]  # last table row: no 'nan', booleans spelled out
    assert "nan" not in text and ("| yes " in text or "| no " in text), floor_free
    assert (out / "plots" / "fid_vs_steps_mnist.png").stat().st_size > 1000
    assert (out / "plots" / "quality_vs_cfg_mnist.png").stat().st_size > 1000


def test_no_records_or_broken_records_fail_naming_the_file(tmp_path, results):
    with pytest.raises(DiffbenchError, match="no metrics.json"):
        load_records(tmp_path / "empty")
    broken = results / "mnist-linear" / "ddim-10" / "metrics.json"
    broken.write_text("{")
    with pytest.raises(DiffbenchError, match="ddim-10/metrics.json: not valid JSON"):
        load_records(results)
