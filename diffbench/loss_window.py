"""The training loss curve without a host synchronisation per step, and the NaN/inf guard.

Each step writes its loss and gradient norm into a small device buffer. Only at a check (every log
and checkpoint step) are the pending rows averaged over processes and read on the host: a
non-finite value names its step; at a log step the rows become one loss.tsv row whose loss is the
mean of the per-step losses of the interval (the number loss.tsv has always held). The history of
rows and the rows of an unfinished interval are part of the checkpoint, so a resumed run writes the
same loss.tsv as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from diffbench import distributed

LOSS_HEADER = "step\tloss\tlr\n"


@dataclass(frozen=True)
class LossRow:
    """One loss.tsv row: optimiser steps done, mean loss of the interval ending there, its last lr."""

    step: int
    loss: float
    lr: float

    def line(self) -> str:
        return f"{self.step}\t{self.loss:.6f}\t{self.lr:.3e}\n"


def loss_tsv(history: list[LossRow]) -> str:
    """loss.tsv: header and one line per logged interval (no timings: the file is a DVC output)."""
    return LOSS_HEADER + "".join(row.line() for row in history)


@dataclass(frozen=True)
class NonFinite:
    """The first non-finite value found by a check: which quantity, at which (1-based) step."""

    what: str
    step: int


class LossWindow:
    """Per-step (loss, gradient norm) pairs of the current log interval, on the device."""

    def __init__(self, capacity: int, device: torch.device, start_step: int = 0):
        self.buffer = torch.zeros(capacity, 2, device=device)
        self.start_step = start_step  # steps done before the first row of the interval
        self.count = 0  # rows written
        self.checked = 0  # rows already reduced over processes and checked

    @property
    def full(self) -> bool:
        return self.count == self.buffer.shape[0]

    def record(self, loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
        """Store one step's values (device copies only)."""
        if self.full:
            raise RuntimeError("loss window full: close() it every log_every steps")
        self.buffer[self.count, 0] = loss.detach()
        self.buffer[self.count, 1] = grad_norm.detach()
        self.count += 1

    def check(self, reduce: Callable[[torch.Tensor], torch.Tensor] = distributed.all_reduce_mean) -> NonFinite | None:
        """Average the unchecked rows over processes (once each) and find the first non-finite one."""
        rows = self.buffer[self.checked:self.count]
        first = self.checked
        self.checked = self.count
        if rows.numel() == 0:
            return None
        rows.copy_(reduce(rows))
        finite = torch.isfinite(rows)
        if bool(finite.all()):
            return None
        bad = int((~finite.all(dim=1)).nonzero()[0, 0])
        what = "loss" if not bool(finite[bad, 0]) else "gradient norm"
        return NonFinite(what, self.start_step + first + bad + 1)

    def close(self, lr: float) -> LossRow:
        """The row of the finished interval (mean loss over its steps, float64); starts the next one."""
        if self.checked != self.count or self.count == 0:
            raise RuntimeError("close() needs a checked, non-empty interval")
        row = LossRow(self.start_step + self.count, float(self.buffer[:self.count, 0].double().mean()), lr)
        self.start_step += self.count
        self.count = self.checked = 0
        return row

    def state(self) -> dict:
        """The checked rows of the unfinished interval, on the CPU (for the checkpoint)."""
        return {"start_step": self.start_step, "rows": self.buffer[:self.checked].cpu()}

    def load(self, state: dict) -> None:
        rows = state["rows"]
        self.buffer[:len(rows)] = rows.to(self.buffer.device)
        self.start_step = int(state["start_step"])
        self.count = self.checked = len(rows)
