"""Where a running shard stands, for the short polling calls of a GPU lease: one line per worker.

    python scripts/shard_status.py [shard-logs]

Reads what ``scripts/gpu_shard.py`` writes: ``timeline.tsv`` (finished groups), each tables worker's
``<model>.log`` and ``done-<model>.txt`` (``diffbench.stage_runner``), and the other logs. For every log
it prints the stage running now and its latest progress line (count, rate and ETA, ``diffbench.progress``).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

STARTED = re.compile(r"^\[stage_runner\] (\S+): (?!exit|skipped)")
PROGRESS = re.compile(r"ETA [^,]*$|\(\d+%\)")


def last_match(lines: list[str], pattern: re.Pattern) -> str | None:
    return next((line for line in reversed(lines) if pattern.search(line)), None)


def worker_line(log: Path, lines: list[str]) -> str:
    """``<worker>: <n> done; now <stage>: <latest progress>`` for one worker's log (its ``lines``)."""
    done_file = log.with_name(f"done-{log.stem}.txt")
    done = len(done_file.read_text().split()) if done_file.is_file() else 0
    started = last_match(lines, STARTED)
    current = STARTED.match(started).group(1) if started else None
    finished = current is not None and any(line.startswith(f"[stage_runner] {current}: exit") for line in lines)
    progress = last_match(lines, PROGRESS) or ""
    now = "idle or finished" if current is None or finished else f"now {current}: {progress.strip() or 'starting'}"
    return f"{log.stem}: {done} stages done; {now}"


def status(logs: Path) -> list[str]:
    """The timeline's finished groups, then one line per worker log and per other running stage log."""
    out = []
    timeline = logs / "timeline.tsv"
    if timeline.is_file():
        rows = [line.split("\t") for line in timeline.read_text().splitlines()[1:] if line.strip()]
        out += [f"group {row[0]}: {row[1]} stages, exit {row[4]} after {row[3]} s" for row in rows if len(row) == 5]
    for log in sorted(logs.glob("*.log")):
        lines = log.read_text(errors="replace").splitlines()
        if log.with_name(f"done-{log.stem}.txt").is_file() or any(STARTED.search(line) for line in lines):
            out.append(worker_line(log, lines))
        else:
            progress = last_match(lines, PROGRESS)
            if progress:
                out.append(f"{log.stem}: {progress.strip()}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logs", nargs="?", default="shard-logs", type=Path)
    args = parser.parse_args(argv)
    if not args.logs.is_dir():
        print(f"error: {args.logs}: no shard logs here (scripts/gpu-shard.sh writes them)", file=sys.stderr)
        return 2
    print("\n".join(status(args.logs)) or f"{args.logs}: nothing logged yet")
    return 0


if __name__ == "__main__":
    sys.exit(main())
