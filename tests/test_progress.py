"""Progress of long loops: plain lines every ~10% (fake clock), bar on a terminal, nothing when off."""

import io
import re

import pytest

from diffbench.progress import Progress, choose_mode, eta, format_duration

LINE = re.compile(r"^gen: (\d+)/(\d+) images \((\d+)%\), (\S+) img/s, (ETA (\?|\d+ s|\d+ min \d\d s)|done in .+)$")


class FakeClock:
    """perf_counter stand-in: advances by ``tick`` seconds on every read after the first."""

    def __init__(self, tick: float):
        self.now, self.tick, self.reads = 0.0, tick, 0

    def __call__(self) -> float:
        if self.reads:
            self.now += self.tick
        self.reads += 1
        return self.now


def run(total: int, batch: int, clock, mode="plain") -> list[str]:
    stream = io.StringIO()
    with Progress("gen", total, "images", mode=mode, stream=stream, clock=clock) as progress:
        for start in range(0, total, batch):
            progress.update(min(batch, total - start))
    return stream.getvalue().splitlines()


@pytest.mark.parametrize("total, batch, expected", [(10000, 1000, 10), (10000, 100, 10), (10000, 3000, 4),
                                                    (7, 1, 7), (1, 1, 1), (10000, 10000, 1), (25, 2, 10)])
def test_plain_mode_prints_one_line_per_tenth_at_most(total, batch, expected):
    lines = run(total, batch, FakeClock(1.0))
    assert len(lines) == expected <= 11
    counts = [int(LINE.match(line).group(1)) for line in lines]
    assert counts == sorted(counts) and counts[-1] == total and lines[-1].endswith(" s")
    assert "done in" in lines[-1] and all("ETA" in line for line in lines[:-1])


def test_plain_line_format_and_eta_with_a_fake_clock():
    clock = FakeClock(0.0)
    stream = io.StringIO()
    progress = Progress("generate mnist-linear ddim-50-cfg1", 10000, "images", mode="plain", stream=stream, clock=clock)
    clock.tick = 4.0  # each update reads the clock: 4000 images in 4 s → 1000 img/s, 6000 left → 6 s
    progress.update(4000)
    assert stream.getvalue() == "generate mnist-linear ddim-50-cfg1: 4000/10000 images (40%), 1000 img/s, ETA 6 s\n"


def test_first_update_at_time_zero_does_not_divide_by_zero():
    stream = io.StringIO()
    progress = Progress("gen", 10, "images", mode="plain", stream=stream, clock=lambda: 5.0)
    progress.update(5)
    progress.update(5)
    assert stream.getvalue().splitlines() == ["gen: 5/10 images (50%), ? img/s, ETA ?",
                                              "gen: 10/10 images (100%), ? img/s, done in 0 s"]


def test_off_and_empty_loops_print_nothing():
    stream = io.StringIO()
    for progress in (Progress("gen", 10, mode="off", stream=stream), Progress("gen", 0, mode="plain", stream=stream),
                     Progress("gen", 10, enabled=False, mode="plain", stream=stream)):
        progress.update(10)
        progress.close()
    assert stream.getvalue() == ""


def test_bar_mode_uses_tqdm_with_rate():
    stream = io.StringIO()
    with Progress("gen", 10, "images", mode="bar", stream=stream) as progress:
        progress.update(10)
    assert "gen" in stream.getvalue() and "10/10" in stream.getvalue() and "img/s" in stream.getvalue()


def test_mode_follows_terminal_and_environment(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("DIFFBENCH_PROGRESS", raising=False)
    assert choose_mode(io.StringIO()) == "plain" and choose_mode(Tty()) == "bar"
    monkeypatch.setenv("DIFFBENCH_PROGRESS", "off")
    assert choose_mode(Tty()) == "off"


def test_durations_and_eta():
    assert [format_duration(s) for s in (0, 7.4, 65, 3725)] == ["0 s", "7 s", "1 min 05 s", "1 h 02 min"]
    assert eta(400, 2400, 100.0) == "ETA 20 s" and eta(0, 10, 0.0) == "ETA ?" and eta(0, 10, None) == "ETA ?"
