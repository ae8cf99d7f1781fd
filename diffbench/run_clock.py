"""Wall-clock record of a training run that may span several processes (kill, resume).

Each process trains one segment of steps. Times are taken only at checks (log and checkpoint
steps), where the host has waited for the device anyway, so they are exact without extra
synchronisation. The first interval of a segment holds the compile and warm-up; the steady rate
leaves it out. Segments travel in the checkpoint (not a DVC output) and end up in train.json,
so the timings of a resumed run cover every step of the final model once.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass


@dataclass
class Segment:
    """The steps one process trained and the time it took, up to its last check."""

    start_step: int
    end_step: int
    seconds: float
    first_check_step: int | None
    first_check_seconds: float | None
    device: str
    world_size: int


class SegmentClock:
    """Times the current process's segment; ``mark`` at every check."""

    def __init__(self, step: int, device: str, world_size: int):
        self.start = time.perf_counter()
        self.last = (step, self.start)
        self.segment = Segment(step, step, 0.0, None, None, device, world_size)

    def mark(self, step: int) -> float:
        """Record a check at ``step``; returns the steps per second since the previous check."""
        now = time.perf_counter()
        segment = self.segment
        segment.end_step, segment.seconds = step, now - self.start
        if segment.first_check_step is None:
            segment.first_check_step, segment.first_check_seconds = step, segment.seconds
        last_step, last_time = self.last
        self.last = (step, now)
        return (step - last_step) / (now - last_time) if now > last_time else 0.0


def summary(segments: list[Segment], batch_size: int) -> dict:
    """Images/s (steady: each segment's first interval left out), wall minutes, start-up overhead."""
    done = [s for s in segments if s.end_step > s.start_step]
    seconds = sum(s.seconds for s in done)
    steady_steps = sum(s.end_step - s.first_check_step for s in done)
    steady_seconds = sum(s.seconds - s.first_check_seconds for s in done)
    trained = sum(s.end_step - s.start_step for s in done)
    if steady_steps > 0 and steady_seconds > 0:
        rate = steady_steps * batch_size / steady_seconds
    else:  # every segment ended at its first check: the rate includes the start-up
        rate = trained * batch_size / seconds if seconds > 0 else None
    startup = None
    if rate:
        startup = sum(s.first_check_seconds - (s.first_check_step - s.start_step) * batch_size / rate for s in done)
    return {
        "images_per_second": rate, "wall_minutes": seconds / 60, "images_trained": trained * batch_size,
        "startup_seconds": startup, "segments": [asdict(s) for s in segments],
        "device": done[-1].device if done else None, "world_size": done[-1].world_size if done else None,
    }
