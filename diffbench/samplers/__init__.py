"""Sampler registry: one file in this package is one sampler.

A sampler module defines
- ``NAME``: the name params.yaml uses (``samplers.<setting>.kind``),
- ``Settings``: a frozen dataclass of its options with defaults (validated in ``__post_init__``),
- ``timesteps(schedule, steps, settings) -> list[int]``: the decreasing timesteps it visits,
- ``sample(eps_fn, x_T, schedule, steps, noise, settings) -> Tensor``: the sampler itself, where
  ``eps_fn(x, t) -> ε`` is the (possibly guided) model, ``t`` a tensor of shape (B,): long for the
  model's own timesteps, float for samplers between them (σ-space samplers; the U-Net's sinusoidal
  embedding takes a real t),
  and ``noise(k)`` returns the per-image standard-normal noise for the sampler's k-th injection
  (k ≥ 1; see ``diffbench.noise``).

and optionally
- ``label(settings) -> str``: the row name in tables (default: the kind and its non-default options),
- ``nfe(steps, settings) -> int``: network evaluations per image (default: ``len(timesteps(...))``);
  generation counts the evaluations it makes and records both, so a mismatch is visible.

The module's file name must equal ``NAME`` (dvc.yaml makes a run depend on ``samplers/<kind>.py``
alone). Dropping a new module with these names into this folder registers it; nothing else changes:
params loading calls its ``timesteps()`` for every planned run, so a ``ValueError`` it raises becomes
the usual one-line params error before any stage starts. Helpers for plugin authors live in the
underscore modules of this package (skipped by the registry).
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
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
        if module.NAME != info.name:
            raise ImportError(f"sampler module {module.__name__}: NAME {module.NAME!r} must equal the file name")
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


def planned_timesteps(kind: str, settings: Any, schedule_name: str, timesteps: int, steps: int, where: str) -> list:
    """The sampler's own ``timesteps()`` for a planned run; its ValueError becomes a one-line params error."""
    from diffbench.diffusion import NoiseSchedule

    try:
        return list(get_sampler(kind).timesteps(NoiseSchedule.named(schedule_name, timesteps), steps, settings))
    except ValueError as error:
        raise ParamsError(f"{where}: {error}") from None


def label(kind: str, settings: Any) -> str:
    """The sampler's row name: its own ``label(settings)``, else the kind with its non-default options."""
    module = get_sampler(kind)
    if hasattr(module, "label"):
        return module.label(settings)
    defaults = module.Settings()
    changed = [f"{f.name}={getattr(settings, f.name)}" for f in dataclasses.fields(settings)
               if getattr(settings, f.name) != getattr(defaults, f.name)]
    return f"{kind} ({', '.join(changed)})" if changed else kind


def expected_nfe(kind: str, settings: Any, schedule: Any, steps: int) -> int:
    """Network evaluations per image the sampler declares: ``nfe()``, else one per visited timestep."""
    module = get_sampler(kind)
    if hasattr(module, "nfe"):
        return int(module.nfe(steps, settings))
    return len(module.timesteps(schedule, steps, settings))


@dataclass
class CountingEps:
    """Wraps a model function and counts its calls (network evaluations per image of a batch)."""

    eps_fn: EpsFn
    calls: int = 0

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.eps_fn(x, t)
