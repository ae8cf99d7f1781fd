"""Sampler registry: one file in this package is one sampler.

A sampler module defines
- ``NAME``: the name params.yaml uses (``samplers.<setting>.kind``),
- ``Settings``: a frozen dataclass of its options with defaults (validated in ``__post_init__``),
- ``timesteps(schedule, steps, settings) -> list[int]``: the decreasing timesteps it visits,
- ``sample(eps_fn, x_T, schedule, steps, noise, settings) -> Tensor``: the sampler itself, where
  ``eps_fn(x, t) -> ε`` is the (possibly guided) model, ``t`` a long tensor of shape (B,),
  and ``noise(k)`` returns the per-image standard-normal noise for the sampler's k-th injection
  (k ≥ 1; see ``diffbench.noise``).

Dropping a new module with these four names into this folder registers it; nothing else changes.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from types import ModuleType
from typing import Any, Callable

import torch

from diffbench.errors import ParamsError

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
NoiseFn = Callable[[int], torch.Tensor]
_REQUIRED = ("NAME", "Settings", "timesteps", "sample")


def _discover() -> dict[str, ModuleType]:
    found: dict[str, ModuleType] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        missing = [name for name in _REQUIRED if not hasattr(module, name)]
        if missing:
            raise ImportError(f"sampler module {module.__name__} lacks {missing}")
        found[module.NAME] = module
    return found


REGISTRY: dict[str, ModuleType] = _discover()


def get_sampler(kind: str) -> ModuleType:
    """The sampler module registered as ``kind``; unknown names fail listing the allowed ones."""
    if kind not in REGISTRY:
        raise ParamsError(f"samplers: unknown sampler kind {kind!r}; allowed: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[kind]


def make_settings(kind: str, options: dict[str, Any], where: str = "samplers") -> Any:
    """Validated ``Settings`` of sampler ``kind`` from a params mapping."""
    settings_cls = get_sampler(kind).Settings
    allowed = {f.name for f in dataclasses.fields(settings_cls)}
    unknown = set(options) - allowed
    if unknown:
        raise ParamsError(f"{where}: unknown option(s) {sorted(unknown)} for sampler {kind!r}; allowed: {sorted(allowed)}")
    try:
        return settings_cls(**options)
    except (TypeError, ValueError) as error:
        raise ParamsError(f"{where}: {error}") from None


def check_steps(steps: int, timesteps: int, where: str = "steps") -> None:
    """Steps must be an integer in 1..T."""
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= timesteps:
        raise ParamsError(f"{where}: must be an integer in 1..{timesteps} (T), got {steps!r}")
