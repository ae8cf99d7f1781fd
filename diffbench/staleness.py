"""Is a result still what the current code and params would produce? Read from dvc.lock.

``dvc status`` answers this but cannot run inside ``dvc repro`` (the repository is locked) and needs
every output present, while a profile's results are built shard by shard on machines whose cached
outputs never come back. So this module compares what dvc.lock recorded for a stage (the md5 of
each file dependency, the value of each params key, the command) with the working tree: a code,
params or command change since the stage ran makes it stale. The current command of a ``foreach``
stage is its dvc.yaml template filled from the vars file's item (e.g. ``--n ${item.n}`` from plan.yaml),
so a run planned at another n is stale too. Dependencies absent here (outputs of a shard run
elsewhere) and folder dependencies are not compared. Without any dvc.lock (results built outside DVC)
nothing can be compared and nothing is called stale.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import yaml

NOT_LOCKED = "not in dvc.lock"
_ITEM = re.compile(r"\$\{item\.(\w+)\}")
_FOREACH = re.compile(r"^\$\{(\w+)\}$")


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _lookup(tree: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


def same_value(recorded: Any, current: Any) -> bool:
    """Params equality as DVC records it: dvc.lock may spell a float as a string ('1e-06' for 1.0e-6)."""
    if isinstance(recorded, dict) and isinstance(current, dict):
        return recorded.keys() == current.keys() and all(same_value(recorded[k], current[k]) for k in recorded)
    if isinstance(recorded, list) and isinstance(current, list):
        return len(recorded) == len(current) and all(same_value(a, b) for a, b in zip(recorded, current))
    if isinstance(recorded, str) and isinstance(current, float):
        try:
            return float(recorded) == current
        except ValueError:
            return False
    return recorded == current


class Lock:
    """A profile's dvc.lock, read once."""

    def __init__(self, folder: str | Path = "."):
        self.folder = Path(folder)
        path = self.folder / "dvc.lock"
        self.exists = path.is_file()
        self.stages: dict = _read_yaml(path).get("stages", {})
        self._md5: dict[Path, str] = {}
        self._dvc_yaml = _read_yaml(self.folder / "dvc.yaml")
        self._vars: dict = {}
        for name in self._dvc_yaml.get("vars") or []:
            if isinstance(name, str) and name.endswith((".yaml", ".yml")):
                self._vars |= _read_yaml(self.folder / name)

    def planned_command(self, stage: str) -> str | None:
        """The command dvc.yaml gives ``stage`` now (``name@key`` of a ``foreach`` over a vars-file mapping),
        or None where it cannot be rendered here (matrix stages, other interpolations, unknown names)."""
        name, _, key = stage.partition("@")
        definition = (self._dvc_yaml.get("stages") or {}).get(name)
        if not isinstance(definition, dict):
            return None
        if not key:
            command = definition.get("cmd")
            return command if isinstance(command, str) and "${" not in command else None
        foreach = _FOREACH.match(str(definition.get("foreach", "")))
        items = self._vars.get(foreach.group(1)) if foreach else None
        template = (definition.get("do") or {}).get("cmd")
        if not isinstance(items, dict) or not isinstance(items.get(key), dict) or not isinstance(template, str):
            return None
        item = items[key]
        if any(field not in item for field in _ITEM.findall(template)):
            return None
        command = _ITEM.sub(lambda match: str(item[match.group(1)]), template)
        return None if "${" in command else command

    def _current_md5(self, path: Path) -> str:
        if path not in self._md5:
            self._md5[path] = _md5(path)
        return self._md5[path]

    def why_stale(self, stage: str, params: dict[str, dict]) -> str | None:
        """None if ``stage`` is current; else why not ('not in dvc.lock', 'params.yaml: samplers.ddim changed', ...).

        ``params`` maps a params file name (as dvc.lock spells it) to its parsed contents.
        """
        if not self.exists:
            return None
        entry = self.stages.get(stage)
        if entry is None:
            return NOT_LOCKED
        for dep in entry.get("deps", []):
            md5 = str(dep.get("md5", ""))
            path = self.folder / dep["path"]
            if md5.endswith(".dir") or not path.is_file():
                continue
            if self._current_md5(path) != md5:
                return f"{dep['path']} changed"
        for file_name, values in (entry.get("params") or {}).items():
            for key, value in values.items():
                if not same_value(value, _lookup(params.get(file_name), key)):
                    return f"{file_name}: {key} changed"
        command = self.planned_command(stage)
        if command is not None and "cmd" in entry and entry["cmd"] != command:
            return f"command changed, now `{command}`"
        return None


def _read_yaml(path: Path) -> dict:
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}
