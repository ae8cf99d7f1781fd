"""What the throughput benchmark's parts share: the datasets' image shapes and synchronised timing."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

IMAGE_SHAPES = {"mnist": (28, 28, 1), "cifar10-jpeg": (32, 32, 3)}  # H×W×C of each dataset's images
NUM_CLASSES = 10


def fresh_compiler() -> None:
    """Forget earlier torch.compile graphs, so that a row compiles as the stage's own process would: no
    recompile limit reached and no input size marked dynamic because an earlier model had another."""
    torch._dynamo.reset()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def result_and_seconds(fn: Callable[[], object], device: torch.device) -> tuple[object, float]:
    """(result, wall seconds) of one call of ``fn``, with the device synchronised before and after."""
    synchronize(device)
    start = time.perf_counter()
    out = fn()
    synchronize(device)
    return out, time.perf_counter() - start


def seconds_of(fn: Callable[[], object], device: torch.device) -> float:
    """Wall seconds of one call of ``fn``, with the device synchronised before and after."""
    return result_and_seconds(fn, device)[1]


def timed(fn: Callable[[], object], warmup: int, iters: int, device: torch.device) -> float:
    """Seconds per call after ``warmup`` calls (synchronised)."""
    for _ in range(warmup):
        fn()
    return seconds_of(lambda: [fn() for _ in range(iters)], device) / iters
