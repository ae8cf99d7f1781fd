"""Run several DVC stages' commands in one Python process, for a GPU lease where process start-up dominates.

Each stage keeps its dvc.yaml command, ``python -m <module> ARGS``; this calls ``<module>.main(ARGS)`` for
each in turn, with the process cache on (:mod:`diffbench.process_cache`), so a model, the Inception
network and a classifier load once and a compiled model compiles once for all the stages that use it. On
one H200 a 10k-image generate/score pair cost ~54 s as two `dvc repro` processes, of which ~23 s was
sampling and scoring (reports/shards/mnist-2026-12-02). What it does not do is record the stages: it
appends each finished stage to ``--done FILE`` after its outputs are written, and the caller runs
``dvc commit`` on those (as ``scripts/gpu_shard.py`` does), which hashes the same deps and outs
``dvc repro`` would have. A stage that fails is reported in one line and skipped stages that share its
``@`` item (a score whose generation failed); the others go on.

Several runners share one list through ``--claims DIR``: the stages of one item (``generate@m.r`` and
``score@m.r``; ``elbo@m``) form a unit of work, and a runner claims the next unit by creating its file in
DIR (``O_EXCL``: exactly one runner gets it). A runner takes units of a model it has already loaded
first, then the next unit in the list's order, so the runners stay busy until the list is done and
each model is loaded by as few of them as the work allows.

    python -m diffbench.stage_runner --done FILE [--claims DIR] STAGE [STAGE ...]
"""

from __future__ import annotations

import argparse
import importlib
import os
import shlex
import sys
import time
import traceback
from pathlib import Path

from diffbench import atomic, process_cache

PYTHON = {"python", "python3", Path(sys.executable).name}


def parse_command(stage: str, command: str) -> tuple[str, list[str]]:
    """(module, argv) of a ``python -m module ARGS`` stage command; anything else fails in one line."""
    words = shlex.split(command)
    if len(words) < 3 or Path(words[0]).name not in PYTHON or words[1] != "-m":
        raise ValueError(f"{stage}: command {command!r} is not `python -m MODULE ...`; run it with `dvc repro`")
    return words[2], words[3:]


def item_of(stage: str) -> str | None:
    """The foreach/matrix item a stage runs for (``generate@m.r`` → ``m.r``); None for a plain stage."""
    return stage.split("@", 1)[1] if "@" in stage else None


def run_one(module: str, argv: list[str]) -> int:
    """``module.main(argv)`` in this process; its exit status (0, or what SystemExit or an error says)."""
    try:
        importlib.import_module(module).main(argv)
    except SystemExit as exit_:
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except KeyboardInterrupt:
        raise
    except Exception:  # noqa: BLE001 - one stage's failure must not stop the others
        traceback.print_exc()
        return 1
    return 0


def model_of(item: str) -> str:
    """The model a unit of work is for: ``m.run`` and ``m`` → ``m`` (model names hold no dot)."""
    return item.split(".", 1)[0]


def units(stages: list[str]) -> dict[str, list[str]]:
    """The stages grouped by item, in the order of their first stage (a plain stage is its own unit)."""
    grouped: dict[str, list[str]] = {}
    for stage in stages:
        grouped.setdefault(item_of(stage) or stage, []).append(stage)
    return grouped


def claim(claims: Path, unit: str) -> bool:
    """Take ``unit`` for this runner; False if another runner has it."""
    try:
        os.close(os.open(claims / unit, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except FileExistsError:
        return False
    return True


def next_unit(pending: list[str], loaded: set[str], claims: Path | None) -> str | None:
    """The unit this runner does next: of a model it has loaded first, then in list order; None when none is left."""
    for unit in sorted(pending, key=lambda u: model_of(u) not in loaded):  # stable: list order within each
        if claims is None or claim(claims, unit):
            return unit
    return None


def run_stages(commands: dict[str, str], done: Path, claims: Path | None = None) -> dict[str, int]:
    """Run the stages (in order, or as units claimed from ``claims``) in this process; each success is appended
    to ``done``. Exit status per stage run here; a stage whose item failed earlier is skipped (status -1)."""
    process_cache.enable()
    status: dict[str, int] = {}
    parsed = {stage: parse_command(stage, command) for stage, command in commands.items()}  # all, before any work
    pending = units(list(parsed))
    loaded: set[str] = set()
    while (unit := next_unit(list(pending), loaded, claims)) is not None:
        loaded.add(model_of(unit))
        failed = False
        for stage in pending.pop(unit):
            if failed:
                print(f"[stage_runner] {stage}: skipped, an earlier stage of {unit} failed", flush=True)
                status[stage] = -1
                continue
            module, argv = parsed[stage]
            print(f"[stage_runner] {stage}: {module} {' '.join(argv)}", flush=True)
            began = time.perf_counter()
            status[stage] = run_one(module, argv)
            print(f"[stage_runner] {stage}: exit {status[stage]} after {time.perf_counter() - began:.1f} s", flush=True)
            if status[stage] == 0:
                atomic.append_line(done, stage)
            failed = status[stage] != 0
    return status


def stage_commands(stages: list[str]) -> dict[str, str]:
    """The resolved dvc.yaml command of each stage, in the order given (one DVC index for all)."""
    from dvc.repo import Repo

    with Repo(".") as repo:
        found = {stage.addressing: stage.cmd for stage in repo.index.stages}
    missing = [s for s in stages if s not in found]
    if missing:
        raise SystemExit(f"error: no such stage in dvc.yaml: {', '.join(missing)}")
    return {stage: found[stage] for stage in stages}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--done", type=Path, required=True, help="file that gets each finished stage's name")
    parser.add_argument("--claims", type=Path, help="folder shared with other runners: each unit is run by one")
    parser.add_argument("stages", nargs="+")
    args = parser.parse_args(argv)
    os.environ.setdefault("DIFFBENCH_NPROC", "1")  # a stage must not re-exec itself under torchrun here
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the stages package beside diffbench
    if args.claims is not None:
        args.claims.mkdir(parents=True, exist_ok=True)
    status = run_stages(stage_commands(args.stages), args.done, args.claims)
    return 0 if all(code == 0 for code in status.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
