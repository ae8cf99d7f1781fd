"""Shared plumbing of the stage entry points: one-line errors, JSON output, environment facts."""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from diffbench import __version__, atomic
from diffbench.errors import DiffbenchError


def stage_main(main: Callable[[list[str] | None], None]) -> Callable[[list[str] | None], None]:
    """Run a stage's main; bad input becomes one line on stderr and exit status 2."""

    @functools.wraps(main)
    def wrapper(argv: list[str] | None = None) -> None:
        try:
            main(argv)
        except DiffbenchError as error:
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper


def stage_parser(description: str | None, *positionals: str) -> argparse.ArgumentParser:
    """The argument parser every stage starts from: its positional names, then ``--params``."""
    parser = argparse.ArgumentParser(description=description)
    for name in positionals:
        parser.add_argument(name)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    return parser


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_json(path: str | Path, payload: dict) -> None:
    """Pretty JSON with sorted keys (stable diffs), written atomically."""
    atomic.write_text(path, json.dumps(_plain(payload), indent=2, sort_keys=True) + "\n")


def read_json(path: str | Path) -> dict:
    """A JSON file; missing or broken files fail naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DiffbenchError(f"{path}: file not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise DiffbenchError(f"{path}: not valid JSON ({error.msg} at line {error.lineno})") from None


def environment() -> dict:
    """Software facts recorded beside every number."""
    return {
        "diffbench": __version__, "torch": torch.__version__, "python": platform.python_version(),
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
    }


def default_device() -> str:
    """'cuda' when a GPU is visible, else 'cpu' (override with DIFFBENCH_DEVICE)."""
    return os.environ.get("DIFFBENCH_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
