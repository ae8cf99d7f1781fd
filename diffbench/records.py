"""The run records: what generate writes (generation.json), what score adds (metrics.json), and the
origin every record carries (commit, date, shard), so each number says what produced it.

One schema: ``generation_record`` builds the generate stage's record, ``score_record`` extends it with
the metrics and their provenance, and ``RunRecord.read`` is how the report and tests read either.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diffbench.cli import read_json
from diffbench.errors import DiffbenchError
from diffbench.runs import Generation, passes_per_evaluation

CODE_PATHS = ("diffbench", "stages")
SHARED_ENV = "DIFFBENCH_GPU_SHARED_BY"  # set by scripts/gpu_shard.py: how many stage runners share this GPU


def _git(*args: str) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None


def origin() -> dict:
    """Commit (``$DIFFBENCH_COMMIT`` where the tree has no .git, e.g. a GPU machine), date and shard."""
    commit = os.environ.get("DIFFBENCH_COMMIT")
    dirty = None
    if commit is None:
        head = _git("rev-parse", "HEAD")
        if head is not None and head.returncode == 0:
            commit = head.stdout.strip()
            diff = _git("diff", "--quiet", "HEAD", "--", *CODE_PATHS)
            dirty = None if diff is None else diff.returncode != 0
    return {
        "commit": commit, "code_modified_since_commit": dirty,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "shard": os.environ.get("DIFFBENCH_SHARD"),
    }


def gpu_shared_by() -> int:
    """How many stage processes share this GPU (``$DIFFBENCH_GPU_SHARED_BY``; 1 when unset): a sampling time
    measured beside three other runners is not the speed of the sampler alone."""
    text = os.environ.get(SHARED_ENV, "1")
    if not text.isdigit() or int(text) < 1:
        raise DiffbenchError(f"{SHARED_ENV}={text!r}: must be a whole number >= 1")
    return int(text)


def generation_record(generation: Generation, settings: Any, label: str, nfe: int, nfe_declared: int,
                      deterministic: bool | None, timing: dict, model: dict, environment: dict,
                      classifier_guidance: dict | None = None) -> dict:
    """generation.json: the sample set and everything that produced it (``classifier_guidance``: the scale,
    the noisy classifier's hash and its backward passes per network evaluation, for a classifier-guided run)."""
    return {
        "dataset": generation.model.dataset, "model": generation.model.name, "schedule": generation.model.schedule,
        "run": generation.run,
        "sampler": {"setting": generation.setting, "kind": generation.kind, "label": label, "steps": generation.steps,
                    "settings": dataclasses.asdict(settings), "nfe": nfe, "nfe_declared": nfe_declared},
        "guidance_scale": generation.guidance, "classifier_guidance": classifier_guidance,
        "network_passes_per_image": nfe * passes_per_evaluation(generation.guidance),
        "n_samples": generation.n_samples, "seeds": f"0-{generation.n_samples - 1}",
        "deterministic": deterministic, "timing": timing, "model_file": model,
        "origin": origin(), "environment": environment,
    }


def score_record(generation: dict, metrics: dict, provenance: dict, timing: dict) -> dict:
    """metrics.json: the generation record, its metrics (with intervals) and their provenance."""
    return generation | {"metrics": metrics, "provenance": provenance, "score_timing": timing,
                         "score_origin": origin()}


@dataclass(frozen=True)
class RunRecord:
    """A run's metrics.json as the report reads it."""

    path: Path
    dataset: str
    model: str
    run: str
    label: str
    kind: str
    steps: int
    nfe: int
    guidance_scale: float | None
    deterministic: bool | None
    metrics: dict
    provenance: dict
    timing: dict
    origin: dict

    @classmethod
    def read(cls, path: str | Path) -> "RunRecord":
        """Read a metrics.json; a file of another shape fails naming the file and the missing field."""
        record = read_json(path)
        try:
            sampler = record["sampler"]
            return cls(Path(path), record["dataset"], record["model"], record["run"], sampler["label"],
                       sampler["kind"], sampler["steps"], sampler["nfe"], record["guidance_scale"],
                       record.get("deterministic"), record["metrics"], record["provenance"], record["timing"],
                       record["origin"])
        except (KeyError, TypeError) as error:
            raise DiffbenchError(f"{path}: not a diffbench run record (missing {error}); "
                                 "rebuild it with `dvc repro -f score@<model>.<run>`") from None
