"""A profile's params.yaml and reports/summary.json as they are at a git revision, or in the working tree.

Files at a revision are read through git (``git show REV:path``); nothing is ever checked out. A file stored
as a symbolic link at a revision is followed inside that revision.
"""

from __future__ import annotations

import json
import os
import posixpath
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from diffbench.errors import DiffbenchError

SUMMARY = "reports/summary.json"
PARAMS = "params.yaml"
WORKSPACE = "working tree"
_MAX_LINKS = 8
_HINT = " (--profile picks the folder holding params.yaml and reports/, e.g. profiles/quick)"


def _git(top: Path, *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", "-C", str(top), *args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise DiffbenchError("git: not found on PATH (compare reads revisions through git)") from None


def repository_root(cwd: Path) -> Path:
    """The top of the git work tree holding ``cwd``."""
    done = _git(cwd, "rev-parse", "--show-toplevel")
    if done.returncode != 0:
        raise DiffbenchError(f"{cwd}: not inside a git repository (compare reads revisions through git)")
    return Path(done.stdout.strip())


def profile_path(top: Path, cwd: Path, profile: str) -> str:
    """``profile`` (relative to ``cwd``) as a POSIX path relative to the repository root ('' = the root)."""
    full = os.path.realpath(os.path.join(cwd, profile))
    rel = os.path.relpath(full, os.path.realpath(top))
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        raise DiffbenchError(f"--profile {profile}: outside the git repository at {top}")
    return "" if rel == os.curdir else Path(rel).as_posix()


@dataclass(frozen=True)
class Revision:
    """What one side of a comparison reads from: a commit (``sha`` set) or the working tree (``sha`` None)."""

    top: Path
    name: str
    sha: str | None = None

    @classmethod
    def resolve(cls, top: Path, name: str) -> "Revision":
        """A commit named by a branch, tag, sha or ``HEAD~n``; fails in one line if there is none."""
        if name.startswith("-"):
            raise DiffbenchError(f"{name}: not a git revision (give a commit, branch or tag, e.g. HEAD~1)")
        done = _git(top, "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}")
        if done.returncode != 0:
            shallow = _git(top, "rev-parse", "--is-shallow-repository").stdout.strip() == "true"
            hint = " (shallow clone?)" if shallow else ""
            raise DiffbenchError(f"{name}: not a commit of this repository{hint} (give a commit, branch or tag, "
                                 "e.g. HEAD~1)")
        return cls(top, name, done.stdout.strip())

    @classmethod
    def workspace(cls, top: Path) -> "Revision":
        return cls(top, WORKSPACE)

    @property
    def label(self) -> str:
        """``HEAD~1 (59b2915)``, or ``working tree``."""
        if self.sha is None:
            return self.name
        if self.sha.startswith(self.name):  # a commit named by its hash
            return self.name[:7]
        return f"{self.name} ({self.sha[:7]})"

    def where(self, path: str) -> str:
        """How error messages name a file of this side."""
        return path if self.sha is None else f"{self.name}:{path}"

    def read_text(self, path: str) -> str:
        """The text of ``path`` (relative to the repository root); fails in one line if it does not exist."""
        if self.sha is None:
            file = self.top / path
            if not file.is_file():
                raise DiffbenchError(f"{path}: file not found in the working tree")
            return file.read_text(encoding="utf-8")
        current = path
        for _ in range(_MAX_LINKS):
            listed = _git(self.top, "ls-tree", "-z", self.sha, "--", current).stdout.rstrip("\0")
            mode, kind = listed.split(" ")[:2] if listed else ("", "")
            if kind != "blob":
                raise DiffbenchError(f"{self.where(path)}: file not found at this revision")
            text = _git(self.top, "show", f"{self.sha}:{current}").stdout
            if mode != "120000":
                return text
            current = posixpath.normpath(posixpath.join(posixpath.dirname(current), text.strip()))
        raise DiffbenchError(f"{self.where(path)}: more than {_MAX_LINKS} symbolic links in a row")

    def _read_profile_file(self, path: str) -> str:
        try:
            return self.read_text(path)
        except DiffbenchError as error:
            raise DiffbenchError(f"{error}{_HINT}") from None

    def summary(self, profile: str) -> dict[str, Any]:
        """``<profile>/reports/summary.json`` parsed; checked to be dataset → model → run → fields. A profile
        without one (params.yaml but no reports yet, e.g. before its first shard) has no runs: ``{}``."""
        path = posixpath.join(profile, SUMMARY)
        try:
            text = self.read_text(path)
        except DiffbenchError as error:
            try:  # a profile (its params.yaml exists) whose reports were never built: no runs yet
                self.read_text(posixpath.join(profile, PARAMS))
            except DiffbenchError:
                raise DiffbenchError(f"{error}{_HINT}") from None
            return {}
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise DiffbenchError(f"{self.where(path)}: not valid JSON ({error.msg} at line {error.lineno})") from None
        _check_nesting(data, self.where(path))
        return data

    def params(self, profile: str) -> dict[str, Any]:
        """``<profile>/params.yaml`` parsed (an empty file is an empty mapping)."""
        path = posixpath.join(profile, PARAMS)
        try:
            data = yaml.safe_load(self._read_profile_file(path))
        except yaml.YAMLError as error:
            where = getattr(error, "problem_mark", None)
            line = f" at line {where.line + 1}" if where is not None else ""
            raise DiffbenchError(f"{self.where(path)}: not valid YAML{line}") from None
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise DiffbenchError(f"{self.where(path)}: must be a mapping of keys to values, got {type(data).__name__}")
        return data


def _check_nesting(data: Any, where: str) -> None:
    """summary.json is dataset → model → run → {field: value}: four levels of objects."""
    allowed = "must be dataset → model → run → {field: value} (JSON objects)"
    if not isinstance(data, dict):
        raise DiffbenchError(f"{where}: {allowed}, got a {type(data).__name__} at the top")
    for dataset, models in data.items():
        if not isinstance(models, dict):
            raise DiffbenchError(f"{where}: {allowed}, got a {type(models).__name__} at '{dataset}'")
        for model, runs in models.items():
            if not isinstance(runs, dict):
                raise DiffbenchError(f"{where}: {allowed}, got a {type(runs).__name__} at '{dataset}/{model}'")
            for run, fields in runs.items():
                if not isinstance(fields, dict):
                    raise DiffbenchError(
                        f"{where}: {allowed}, got a {type(fields).__name__} at '{dataset}/{model}/{run}'")
