"""Stages run in child processes that a test can SIGKILL at any moment (tests only).

Children are forked by a fork server that imported every stage module once, so a run costs the stage's
work, not the 2-5 s of Python's and torch's start-up; each runs the stage's ``main`` as
``python -m stages.<name>`` does, in its own folder and environment, with torch's own thread pool
(the fork server never ran torch, so the pool is fresh). A child can also SIGKILL itself inside its
n-th atomic write (``diffbench.atomic.write_with``), after half of the file's bytes reached the disk.
"""

from __future__ import annotations

import importlib
import io
import multiprocessing
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

STAGE_MODULES = ("stages.prepare", "stages.classifier", "stages.reference", "stages.train", "stages.generate",
                 "stages.score", "stages.elbo", "stages.noisy_classifier", "stages.report")


@dataclass(frozen=True)
class Run:
    """How one child run ended: exit code (-9: SIGKILL), wall seconds, the files it wrote atomically, its output."""

    exitcode: int
    seconds: float
    writes: list[str]
    log: str


def _writes_file(log: Path) -> Path:
    return log.with_name(log.name + ".writes")


def _hook_atomic_writes(writes: Path, kill_in_write: int | None) -> None:
    """Record each atomic write's path in ``writes``; SIGKILL this process halfway through write number
    ``kill_in_write`` (1-based), with half of the bytes in the temporary file."""
    from diffbench import atomic

    real = atomic.write_with
    count = 0

    def write_with(path: str | Path, writer: Callable[[BinaryIO], None]) -> None:
        nonlocal count
        count += 1
        with open(writes, "a") as handle:
            handle.write(f"{path}\n")
        if count != kill_in_write:
            return real(path, writer)

        def half_then_die(handle: BinaryIO) -> None:
            whole = io.BytesIO()
            writer(whole)
            handle.write(whole.getvalue()[: len(whole.getvalue()) // 2])
            handle.flush()
            os.fsync(handle.fileno())
            os.kill(os.getpid(), signal.SIGKILL)

        real(path, half_then_die)

    atomic.write_with = write_with


def _child(module: str, argv: list[str], cwd: str, env: dict[str, str], log: str, kill_in_write: int | None
           ) -> None:
    """The child's body: the stage's main in ``cwd`` under ``env``, stdout and stderr to ``log``."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    _hook_atomic_writes(_writes_file(Path(log)), kill_in_write)
    import torch

    torch.set_num_threads(1)  # tiny ops on a 2-core CPU shared with other jobs: one thread is faster
    importlib.import_module(module).main(argv)


def _context() -> multiprocessing.context.BaseContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__, *STAGE_MODULES])  # ignored once the server runs
    return context


def run_stage(module: str, argv: list[str], cwd: Path, env: dict[str, str], log: Path, *,
              kill_after: float | None = None, kill_in_write: int | None = None) -> Run:
    """Run ``module``'s main in a child; SIGKILL it ``kill_after`` seconds after its start if it still runs,
    or let it SIGKILL itself inside its ``kill_in_write``-th atomic write."""
    _writes_file(log).unlink(missing_ok=True)
    child = _context().Process(target=_child, args=(module, argv, str(cwd), env, str(log), kill_in_write))
    start = time.perf_counter()
    child.start()
    child.join(kill_after)
    if child.exitcode is None:
        os.kill(child.pid, signal.SIGKILL)
        child.join()
    seconds = time.perf_counter() - start
    writes = _writes_file(log).read_text().splitlines() if _writes_file(log).exists() else []
    return Run(child.exitcode, seconds, writes, log.read_text() if log.exists() else "")
