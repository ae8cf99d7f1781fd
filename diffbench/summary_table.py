"""``python -m diffbench summary``: one short line per run of a profile's reports/summary.json.

What a person reads at the end of a run (``scripts/quick.sh`` prints it): run, FID [95% interval], class
accuracy, NFE, n and status, grouped by dataset and model. The full records stay in summary.json and results/.
"""

from __future__ import annotations

from pathlib import Path

from diffbench.cli import read_json
from diffbench.errors import DiffbenchError

HELP = "print one short line per run of a profile's reports/summary.json"


def _interval(entry: dict, key: str, digits: int, scale: float = 1.0) -> str:
    if key not in entry:
        return "–"
    value = f"{entry[key] * scale:.{digits}f}"
    if f"{key}_lo" in entry and f"{key}_hi" in entry:
        return f"{value} [{entry[f'{key}_lo'] * scale:.{digits}f}, {entry[f'{key}_hi'] * scale:.{digits}f}]"
    return value


def lines(summary: dict) -> list[str]:
    """The table as markdown lines: dataset, model, run, FID, class accuracy (%), NFE, n, status."""
    out = ["| dataset | model | run | FID [95%] | class acc. % [95%] | NFE | n | status |",
           "|---|---|---|---|---|---|---|---|"]
    for dataset, models in sorted(summary.items()):
        for model, runs in sorted(models.items()):
            for run, entry in sorted(runs.items()):
                if run == "elbo":
                    out.append(f"| {dataset} | {model} | ELBO | {_interval(entry, 'bpd', 3)} bits/dim | – | – | "
                               f"{entry.get('n_samples', '–')} | – |")
                    continue
                out.append(f"| {dataset} | {model} | {run} | {_interval(entry, 'fid', 2)} | "
                           f"{_interval(entry, 'class_accuracy', 1, 100.0)} | {entry.get('nfe', '–')} | "
                           f"{entry.get('n_samples', '–')} | {entry.get('status', '–')} |")
    return out


def add_arguments(parser) -> None:
    parser.add_argument("summary", nargs="?", default="reports/summary.json", type=Path,
                        help="summary.json to read (default: reports/summary.json)")


def run(args) -> int:
    if not args.summary.is_file():
        raise DiffbenchError(f"{args.summary}: not found; build the reports first (`dvc repro report`)")
    summary = read_json(args.summary)
    if not isinstance(summary, dict):
        raise DiffbenchError(f"{args.summary}: not a diffbench summary (dataset → model → run)")
    print("\n".join(lines(summary)))
    return 0
