"""Leaf helpers for validating params sections: typed keys, non-empty lists, lists of positive integers, a
U-Net's widths (no torch, no diffbench imports beyond errors), so every settings module can use them without
import cycles."""

from __future__ import annotations

from diffbench.errors import ParamsError


def typed_section(section: dict, keys: dict[str, type], where: str, untyped: tuple[str, ...] = ()) -> None:
    """Every key of ``keys`` present with its type (numbers >= 0); nothing else but ``untyped``."""
    if not isinstance(section, dict):
        raise ParamsError(f"{where}: must be a mapping with {', '.join(keys)}, got {section!r}")
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


def positive_ints(section: dict, key: str, where: str, empty: bool = False) -> list[int]:
    """``section[key]`` as a list of integers >= 1 (non-empty unless ``empty``), else one line naming ``where.key``."""
    values = section[key]
    if not isinstance(values, list) or not (values or empty) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values):
        raise ParamsError(f"{where}.{key}: must be a {'' if empty else 'non-empty '}list of integers >= 1, got {values!r}")
    return values


def check_widths(channels: int, channel_mult: list[int] | tuple[int, ...], norm_groups: int, dropout: float,
                 where: str) -> None:
    """A U-Net's widths and dropout (params ``architectures.<dataset>`` and the noisy classifier's encoder):
    every width ``channels * mult`` divisible by ``norm_groups``, dropout in [0, 1)."""
    widths = [channels * m for m in channel_mult]
    if any(w % norm_groups for w in widths):
        raise ParamsError(f"{where}.norm_groups: {norm_groups} must divide every width {widths}")
    if not 0 <= dropout < 1:
        raise ParamsError(f"{where}.dropout: must be in [0, 1), got {dropout}")
