"""Leaf helpers for validating params sections: typed keys, non-empty lists (no torch, no diffbench imports
beyond errors), so every settings module can use them without import cycles."""

from __future__ import annotations

from diffbench.errors import ParamsError


def typed_section(section: dict, keys: dict[str, type], where: str, untyped: tuple[str, ...] = ()) -> None:
    """Every key of ``keys`` present with its type (numbers >= 0); nothing else but ``untyped``."""
    for key, kind in keys.items():
        if key not in section:
            raise ParamsError(f"{where}.{key}: missing")
        value = section[key]
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok:
            raise ParamsError(f"{where}.{key}: must be {kind.__name__}, got {value!r}")
        if kind in (int, float) and value < 0:
            raise ParamsError(f"{where}.{key}: must be >= 0, got {value!r}")
    unknown = set(section) - set(keys) - set(untyped)
    if unknown:
        raise ParamsError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(set(keys) | set(untyped))}")


def nonempty_list(section: dict, key: str, where: str) -> list:
    """``section[key]`` as a non-empty list, else one line naming ``where.key``."""
    values = section.get(key) if isinstance(section, dict) else None
    if not isinstance(values, list) or not values:
        raise ParamsError(f"{where}.{key}: must be a non-empty list")
    return values
