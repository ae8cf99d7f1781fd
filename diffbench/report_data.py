"""The rows a report shows: every run params plan, read from its record, marked missing or stale.

The report is driven by params, not by what lies under results/: a planned run without a record is a
``missing`` row, a record whose stage's code, params or command changed since it ran (dvc.lock) is ``stale``,
and a folder no plan names is left out with a warning. Each row carries what produced its numbers:
n, device, commit, date, shard, metric weights, reference split.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from diffbench import layout, samplers
from diffbench.cli import read_json
from diffbench.config import Params
from diffbench.diffusion import NoiseSchedule
from diffbench.errors import DiffbenchError
from diffbench.records import RunRecord
from diffbench.runs import Generation
from diffbench.staleness import Lock

# Metrics with a 95% interval (m, m_lo, m_hi in every record): key -> (column title, higher is better, digits).
INTERVAL_METRICS = {
    "fid": ("FID", False, 2),
    "kid_mean": ("KID×1e3", False, 2),
    "precision": ("precision", True, 3),
    "recall": ("recall", True, 3),
    "inception_score_mean": ("IS", True, 2),
    "classifier_fid": ("FID (classifier)", False, 2),
    "classifier_inception_score_mean": ("IS (classifier)", True, 2),
    "class_accuracy": ("class accuracy", True, 3),
    "clip_score": ("CLIP score", True, 2),
}
REASONS = {  # why a metric has no number: record key -> table note
    "inception_score_unavailable": "Inception Score",
    "classifier_unavailable": "reference-classifier metrics",
    "clip_score_unavailable": "CLIP score",
}
FLOOR_METHOD = "real data (train vs test)"
ELBO_DIR = "elbo"


def metric_columns(metrics: dict) -> dict:
    """Every interval metric with its _lo/_hi, and the reasons where a metric has no number."""
    out = {key + suffix: metrics.get(key + suffix) for key in INTERVAL_METRICS for suffix in ("", "_lo", "_hi")}
    out["kid_std"] = metrics.get("kid_std")
    out.update({key: metrics.get(key) for key in REASONS})
    out["interval_method"] = metrics.get("interval_method")
    return out


def _provenance_columns(provenance: dict) -> dict:
    classifier = provenance.get("classifier") or {}
    return {
        "n_samples": provenance["n_samples"],
        "reference": f"{provenance['reference']['split']} n={provenance['reference']['n']}",
        "weights_sha256": provenance.get("weights_sha256"),
        "backend": f"{provenance.get('backend')} {provenance.get('version')}",
        "classifier_accuracy": classifier.get("test_accuracy"),
    }


def planned_row(params: Params, generation: Generation) -> dict:
    """What params say about a run before any record is read (a missing run still shows its sampler and NFE)."""
    settings = params.sampler_settings(generation.setting)
    schedule = NoiseSchedule.named(generation.model.schedule, params.timesteps)
    return {
        "dataset": generation.model.dataset, "model": generation.model.name, "schedule": generation.model.schedule,
        "run": generation.run, "setting": generation.setting, "kind": generation.kind, "steps": generation.steps,
        "method": samplers.label(generation.kind, settings),
        "nfe": samplers.expected_nfe(generation.kind, settings, schedule, generation.steps),
        "guidance_scale": generation.guidance, "classifier_scale": generation.classifier_scale,
        "n_planned": generation.n_samples,
        "tables": tuple(params.plan.tables_of(generation)),
    }


def record_row(record: RunRecord) -> dict:
    """The numbers of a run record and what produced them."""
    timing, origin = record.timing, record.origin
    n = record.provenance.get("n_samples") or 0
    return {
        "method": record.label, "nfe": record.nfe, "deterministic": record.deterministic,
        **metric_columns(record.metrics), **_provenance_columns(record.provenance),
        "seconds_per_image": timing["seconds"] * timing.get("world_size", 1) / n if n else None,
        "gpu_shared_by": timing.get("gpu_shared_by"),
        "device": timing.get("device"), "commit": (origin.get("commit") or "")[:10] or None,
        "date": (origin.get("date") or "")[:10] or None, "shard": origin.get("shard"), "grid": str(record.path.parent / "grid.png"),
    }


RECORD_COLUMNS = ("status", "method", "nfe", "deterministic", *metric_columns({}), "n_samples", "reference",
                  "weights_sha256", "backend", "classifier_accuracy", "seconds_per_image", "gpu_shared_by", "device",
                  "commit", "date",
                  "shard", "grid")


def floor_row(dataset: str) -> dict | None:
    """The real-data floor of a dataset (reference stage), or None if it has not run."""
    path = layout.floor_dir(dataset) / "metrics.json"
    if not path.is_file():
        return None
    record = read_json(path)
    try:
        provenance = record["provenance"]
        return {
            "dataset": dataset, "model": f"{dataset}-{layout.FLOOR_MODEL}", "schedule": None, "run": layout.FLOOR_RUN,
            "method": FLOOR_METHOD, "steps": None, "nfe": None, "guidance_scale": None, "tables": ("floor",),
            "status": "ok", **metric_columns(record["metrics"]), **_provenance_columns(provenance),
            "device": provenance.get("device"), "deterministic": None, "seconds_per_image": None, "gpu_shared_by": None,
        }
    except (KeyError, TypeError) as error:
        raise DiffbenchError(f"{path}: not a diffbench floor record (missing {error})") from None


def load_frame(params: Params, results: Path = layout.RESULTS, lock: Lock | None = None) -> tuple[pd.DataFrame, list[str]]:
    """One row per planned run (and per dataset's floor), and warnings about leftover folders."""
    lock = lock or Lock(".")
    current = {"params.yaml": params.raw}
    rows = []
    for generation in params.plan.generations:
        row = planned_row(params, generation)
        path = layout.run_dir(generation.model.name, generation.run) / "metrics.json"
        if not path.is_file():
            rows.append(row | {"status": "missing"})
            continue
        why = lock.why_stale(f"generate@{generation.key}", current) or lock.why_stale(f"score@{generation.key}", current)
        rows.append(row | record_row(RunRecord.read(path)) | {"status": "ok" if why is None else f"stale ({why})"})
    for dataset in params.section("models")["datasets"]:
        floor = floor_row(dataset)
        if floor is not None:
            rows.append(floor)
    planned = {(g.model.name, g.run) for g in params.plan.generations}
    warnings = [f"{folder}: not planned by params.yaml; left out of the report"
                for folder in sorted(Path(results).glob("*/*"))
                if folder.is_dir() and folder.name != ELBO_DIR and (folder.parent.name, folder.name) not in planned
                and not folder.parent.name.endswith(f"-{layout.FLOOR_MODEL}")]
    frame = pd.DataFrame(rows)
    for column in RECORD_COLUMNS:  # a profile without any record still has every column (all empty)
        if column not in frame:
            frame[column] = None
    return frame, warnings


def load_elbo(params: Params) -> pd.DataFrame:
    """The ELBO record of every planned model that has one (one row per model)."""
    rows = []
    for model in params.plan.models:
        path = layout.elbo_file(model.name)
        if not path.is_file():
            continue
        record = read_json(path)
        try:
            metrics = record["metrics"]
            rows.append({
                "dataset": record["dataset"], "model": record["model"], "schedule": record["schedule"],
                "bpd": metrics["bpd"], "bpd_lo": metrics["bpd_lo"], "bpd_hi": metrics["bpd_hi"],
                "n_images": record["n_images"], "timesteps_per_image": record.get("K"),
                "variance": record.get("variance"), "conditioning": record.get("conditioning"),
                "device": record.get("device"),
            })
        except (KeyError, TypeError) as error:
            raise DiffbenchError(f"{path}: not a diffbench ELBO record (missing {error})") from None
    return pd.DataFrame(rows)
