"""Kill anywhere, rerun, same result: each stage type, SIGKILLed at a seeded-random moment, or halfway
through a seeded-random one of its atomic writes, or of its resume-state writes (a training checkpoint,
a batch of samples), then rerun as `dvc repro` reruns it (its outputs deleted, its resume state kept),
ends with the outputs of an uninterrupted run and no temporary file left. On the CPU the outputs are bitwise equal, except the
timings that run records (JSON) and the noisy classifier's card hold by design, which are compared
without them. On a GPU only "statistically equal" holds where kernels are not deterministic.

The stages run on a toy image-folder profile in children of a fork server (tests/stage_runs.py); each
stage runs on the outputs of uninterrupted runs of the stages it reads.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

from diffbench.plan import write_plan
from tests.stage_runs import Run, run_stage
from tests.toy_profile import toy_archive, toy_params

WEIGHTS = os.environ.get("DIFFBENCH_INCEPTION_WEIGHTS")
RANDOM_MOMENT, INSIDE_A_WRITE, INSIDE_A_CHECKPOINT = "at-a-random-moment", "inside-a-write", "inside-a-checkpoint"
# JSON keys that time a run (or date it): run records hold them by design; compared without them
TIMING_KEY = re.compile(r".*seconds|.*per_second|.*minutes|mfu|date")
TIMING_SECTIONS = ("run", "timing", "score_timing")  # train.json, generation.json, metrics.json: all timings


@dataclass(frozen=True)
class Stage:
    """One stage type as the test runs it: its command, its DVC outputs and the resume state it keeps."""

    name: str
    argv: tuple[str, ...]
    outs: tuple[str, ...]  # as dvc.yaml declares them: `dvc repro` deletes these before it reruns the stage
    needs: tuple[str, ...] = ()  # stages whose outputs it reads
    state: tuple[str, ...] = ()  # what a run keeps for its rerun (never a DVC output)
    atomic: bool = True  # every file it writes goes through diffbench.atomic
    needs_weights: bool = False  # Inception weights
    timed_rows: tuple[str, ...] = ()  # Markdown rows that state timings (compared without them)

    @property
    def module(self) -> str:
        return f"stages.{self.name}"

    @property
    def command(self) -> list[str]:
        return list(self.argv)


RUN = "results/toy-linear/ddpm-10-cfg1"  # 8 images in batches of 3: three resumable chunks
STAGES = {stage.name: stage for stage in (
    Stage("prepare", ("toy",), ("data/toy",)),
    Stage("classifier", ("toy",), ("reference_models/toy-classifier", "features/toy/classifier_reference.npz"),
          needs=("prepare",)),
    Stage("reference", ("toy",), ("features/toy/reference.npz", "results/toy-real-data"), needs=("classifier",),
          needs_weights=True),
    Stage("train", ("toy", "linear"), tuple(f"reference_models/toy-linear/{name}" for name in
                                             ("model.pt", "model_card.md", "train.json", "loss.tsv")),
          needs=("prepare",), state=("reference_models/toy-linear/checkpoint.pt",)),
    Stage("generate", ("toy-linear", "ddpm-10-cfg1", "--n", "8"), (f"{RUN}/samples.npz", f"{RUN}/generation.json"),
          needs=("train",), state=(f"{RUN}/partial",)),
    Stage("score", ("toy-linear", "ddpm-10-cfg1"), (f"{RUN}/grid.png", f"{RUN}/metrics.json"),
          needs=("generate", "reference"), needs_weights=True),
    Stage("elbo", ("toy", "linear"), ("results/toy-linear/elbo/metrics.json",), needs=("train",)),
    Stage("noisy_classifier", ("toy", "linear"), ("reference_models/toy-linear-noisy-classifier",),
          needs=("prepare",), timed_rows=("| training time |",)),
    Stage("report", (), ("reports",), needs=("score", "elbo")),
)}


def kill_params() -> dict:
    """The toy profile, smaller still: under a second a stage (Inception aside), several checkpoints and batches."""
    params = toy_params()
    params["diffusion"]["timesteps"] = 10
    params["ablation"]["runs"] = ["ddpm-10", "ddim_eta1-5"]
    params["training"]["toy"] |= {"steps": 8, "batch_size": 4, "checkpoint_every": 2, "log_every": 2}
    params["classifier"]["toy"] |= {"epochs": 2}
    params["sampling"] |= {"batch_size": 3, "n_samples": 8}
    params["metrics"] |= {"reference_n": 10, "floor_n": 8, "kid_subset_size": 4, "kid_subsets": 3,
                          "interval_resamples": 3}
    params["elbo"] |= {"n_images": 8, "batch_size": 4}
    params["noisy_classifier"]["toy"] |= {"log_every": 2, "eval_n": 8}
    return params


def write_profile(work: Path) -> None:
    """params.yaml with its plan.yaml."""
    work.mkdir(parents=True)
    params = kill_params()
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    write_plan(work / "params.yaml")


def without_timings(value: object) -> object:
    """A JSON value without the keys that time or date a run."""
    if isinstance(value, dict):
        return {key: without_timings(item) for key, item in value.items()
                if not TIMING_KEY.fullmatch(key) and not (key in TIMING_SECTIONS and isinstance(item, dict))}
    if isinstance(value, list):
        return [without_timings(item) for item in value]
    return value


def contents(work: Path, stage: Stage) -> dict[str, object]:
    """Every file of the stage's outputs: JSON records without their timings, Markdown without its timed
    rows, anything else as its sha256 (bitwise)."""
    files: dict[str, object] = {}
    for out in stage.outs:
        for path in sorted((work / out).rglob("*")) if (work / out).is_dir() else [work / out]:
            if not path.is_file():
                continue
            name = str(path.relative_to(work))
            if path.suffix == ".json":
                files[name] = without_timings(json.loads(path.read_text()))
            elif path.suffix == ".md" and stage.timed_rows:
                files[name] = [line for line in path.read_text().splitlines() if not line.startswith(stage.timed_rows)]
            else:
                files[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def remove(work: Path, paths: tuple[str, ...]) -> None:
    """Delete these files and folders of ``work``, where they exist."""
    for path in (work / p for p in paths):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


class Pipeline:
    """The toy profile's workspace, where each stage ran once, uninterrupted, when a test first asked."""

    def __init__(self, root: Path):
        data = root / "data" / "toy"
        data.mkdir(parents=True)
        toy_archive(data / "toy.tar.gz")
        self.work = root / "work"
        self.env = dict(os.environ) | {"DIFFBENCH_DATA_DIR": str(root / "data"), "DIFFBENCH_DEVICE": "cpu"}
        self.done: dict[str, tuple[Run, dict[str, object]]] = {}
        write_profile(self.work)

    def run(self, stage: Stage, work: Path, log: str, **kill: float | int) -> Run:
        return run_stage(stage.module, stage.command, work, self.env, work.parent / f"{log}.log", **kill)

    def uninterrupted(self, stage: Stage) -> tuple[Run, dict[str, object]]:
        """The stage's uninterrupted run (after those of the stages it reads) and its outputs' contents."""
        for need in stage.needs:
            if WEIGHTS or not STAGES[need].needs_weights:  # without weights the report has no scores
                self.uninterrupted(STAGES[need])
        if stage.name not in self.done:
            run = self.run(stage, self.work, f"uninterrupted-{stage.name}")
            assert run.exitcode == 0, run.log
            assert [out for out in stage.outs if not (self.work / out).exists()] == []
            self.done[stage.name] = run, contents(self.work, stage)
        return self.done[stage.name]

    def copy(self, stage: Stage, work: Path) -> Path:
        """A copy of the workspace without the stage's outputs and resume state: its inputs as before its first run."""
        shutil.copytree(self.work, work)
        remove(work, stage.outs + stage.state)
        return work


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> Pipeline:
    """One workspace for the module: each stage's uninterrupted run happens once."""
    return Pipeline(tmp_path_factory.mktemp("kills"))


def kill_cases() -> list:
    """Every stage at a random moment; inside a write where its writes are atomic; inside a checkpoint where
    it keeps resume state."""
    cases = []
    for stage in STAGES.values():
        marks = [pytest.mark.skipif(not WEIGHTS, reason="set DIFFBENCH_INCEPTION_WEIGHTS")] if stage.needs_weights else []
        moments = (RANDOM_MOMENT, *((INSIDE_A_WRITE,) if stage.atomic else ()),
                   *((INSIDE_A_CHECKPOINT,) if stage.state else ()))
        cases += [pytest.param(stage, moment, marks=marks, id=f"{stage.name}-{moment}") for moment in moments]
    return cases


def write_to_die_in(stage: Stage, moment: str, writes: list[str], rng: np.random.Generator) -> int:
    """The number (1-based) of a random write of an uninterrupted run: any, or one of the resume state."""
    numbers = [n for n, path in enumerate(writes, 1) if moment == INSIDE_A_WRITE or path.startswith(stage.state)]
    return int(rng.choice(numbers))


@pytest.mark.parametrize("stage, moment", kill_cases())
def test_a_stage_killed_anywhere_reruns_to_the_outputs_of_an_uninterrupted_run(pipeline, tmp_path, stage, moment):
    uninterrupted, expected = pipeline.uninterrupted(stage)
    work = pipeline.copy(stage, tmp_path / "work")
    rng = np.random.default_rng(zlib.crc32(f"{stage.name} {moment}".encode()))
    if moment != RANDOM_MOMENT:
        write = write_to_die_in(stage, moment, uninterrupted.writes, rng)
        killed = pipeline.run(stage, work, "killed", kill_in_write=write)
        assert killed.exitcode == -signal.SIGKILL, killed.log
        assert killed.writes == uninterrupted.writes[:write]  # died inside that write, half of it on disk
    else:
        killed = pipeline.run(stage, work, "killed", kill_after=rng.uniform(0, uninterrupted.seconds))
        assert killed.exitcode in (0, -signal.SIGKILL), killed.log  # it may finish first
    remove(work, stage.outs)  # what `dvc repro` does before it reruns a stage
    rerun = pipeline.run(stage, work, "rerun")
    assert rerun.exitcode == 0, rerun.log
    assert contents(work, stage) == expected
    assert sorted(work.rglob("*.tmp")) == []  # a killed write's temporary file went with the rewrite
