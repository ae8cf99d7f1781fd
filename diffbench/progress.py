"""Progress of a loop of known length, on stderr.

On a terminal: a tqdm bar with rate and ETA. Otherwise (DVC logs, CI, the GPU scripts' logs) one
plain line each time another ~10% of the total is done, so a loop writes at most 10 lines, e.g.::

    generate mnist-linear ddim-50-cfg1: 4000/10000 images (40%), 812 img/s, ETA 7 s

``DIFFBENCH_PROGRESS`` = ``bar``, ``plain`` or ``off`` overrides the choice.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Callable, TextIO

MODE_ENV = "DIFFBENCH_PROGRESS"
MODES = ("bar", "plain", "off")
LINES = 10  # plain lines per loop: one per 10% of the total
SHORT_UNITS = {"images": "img"}


def format_duration(seconds: float) -> str:
    """``7 s``, ``3 min 05 s``, ``2 h 04 min``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def format_rate(rate: float | None, unit: str) -> str:
    """``812 img/s``, ``3.25 steps/s``; ``? img/s`` when no rate is known yet."""
    short = SHORT_UNITS.get(unit, unit)
    if rate is None:
        return f"? {short}/s"
    return f"{rate:.0f} {short}/s" if rate >= 10 else f"{rate:.2f} {short}/s"


def eta(done: float, total: float, rate: float | None) -> str:
    """``ETA 7 s`` for the rest of ``total`` at ``rate`` per second; ``ETA ?`` without a rate."""
    if not rate or rate <= 0:
        return "ETA ?"
    return f"ETA {format_duration(max(0.0, total - done) / rate)}"


def choose_mode(stream: TextIO) -> str:
    """``$DIFFBENCH_PROGRESS`` if set, else ``bar`` on a terminal (with tqdm installed), else ``plain``."""
    mode = os.environ.get(MODE_ENV, "").strip().lower()
    if mode in MODES:
        return mode
    try:
        terminal = stream.isatty()
    except (AttributeError, ValueError):
        terminal = False
    if not terminal:
        return "plain"
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return "plain"
    return "bar"


class Progress:
    """Reports ``update(n)`` calls towards ``total`` units; use as a context manager (or call ``close``)."""

    def __init__(
        self, label: str, total: int, unit: str = "images", *, enabled: bool = True, mode: str | None = None,
        stream: TextIO | None = None, clock: Callable[[], float] = time.perf_counter,
    ):
        self.label, self.total, self.unit = label, int(total), unit
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.mode = "off" if not enabled or self.total <= 0 else (mode or choose_mode(self.stream))
        self.done = 0
        self.next_line = 1  # the next tenth of the total that gets a plain line
        self.start = clock()
        self.bar = None
        if self.mode == "bar":
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, desc=label, unit=SHORT_UNITS.get(unit, unit), file=self.stream,
                            dynamic_ncols=True, leave=True)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def rate(self) -> float | None:
        """Units per second since the start; None before any time has passed."""
        elapsed = self.clock() - self.start
        return self.done / elapsed if elapsed > 0 else None

    def line(self) -> str:
        """The plain line for the current count."""
        rate = self.rate()
        percent = 100 * self.done // self.total
        head = f"{self.label}: {self.done}/{self.total} {self.unit} ({percent}%), {format_rate(rate, self.unit)}"
        if self.done >= self.total:
            return f"{head}, done in {format_duration(self.clock() - self.start)}"
        return f"{head}, {eta(self.done, self.total, rate)}"

    def update(self, n: int = 1) -> None:
        """``n`` more units done."""
        self.done = min(self.total, self.done + n) if self.total > 0 else self.done + n
        if self.bar is not None:
            self.bar.update(n)
        elif self.mode == "plain" and self.done * LINES >= self.next_line * self.total:
            print(self.line(), file=self.stream, flush=True)
            self.next_line = self.done * LINES // self.total + 1

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
