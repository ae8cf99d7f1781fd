"""Sampler registry: one file in this package is one sampler.

A sampler module defines
- ``NAME``: the name params.yaml uses (``samplers.<setting>.kind``),
- ``Settings``: a frozen dataclass of its options with defaults (validated in ``__post_init__``; a
  ``ValueError`` whose message starts with an option's name is reported as ``samplers.<setting>.<option>``;
  a value of another type than the option's annotation is refused too, where ``__post_init__`` let it pass),
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
import types
import typing
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


def get_sampler(kind: str, where: str = "samplers") -> ModuleType:
    """The sampler module registered as ``kind``; unknown names fail listing the allowed ones."""
    if not isinstance(kind, str) or kind not in REGISTRY:
        raise ParamsError(f"{where}: unknown sampler kind {kind!r}; allowed: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[kind]


def _has_type(value: Any, annotation: Any) -> bool:
    """Does a params value fit an option's annotation (bool, int, float, str, ``X | None``)? Others pass."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return any(_has_type(value, option) for option in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation in (bool, int, str):
        return isinstance(value, annotation) and (annotation is bool or not isinstance(value, bool))
    return True


def make_settings(kind: str, options: dict[str, Any], where: str = "samplers") -> Any:
    """Validated ``Settings`` of sampler ``kind`` from a params mapping; every problem is one line naming
    ``where.<option>`` (or ``where`` when the sampler's message names no option)."""
    settings_cls = get_sampler(kind, f"{where}.kind").Settings
    hints = typing.get_type_hints(settings_cls)
    allowed = {f.name for f in dataclasses.fields(settings_cls)}
    unknown = set(options) - allowed
    if unknown:
        raise ParamsError(f"{where}: unknown option(s) {sorted(unknown)} for sampler {kind!r}; allowed: {sorted(allowed)}")

    def check_types() -> None:
        for name, value in options.items():
            if not _has_type(value, hints[name]):
                shown = getattr(hints[name], "__name__", str(hints[name]))
                raise ParamsError(f"{where}.{name}: must be {shown}, got {value!r}")

    try:
        settings = settings_cls(**options)
    except ValueError as error:  # the sampler's own message, named by the option it starts with
        named = next((name for name in sorted(allowed, key=len, reverse=True) if str(error).startswith(f"{name} ")), None)
        raise ParamsError(f"{where}.{named}: {error}" if named else f"{where}: {error}") from None
    except TypeError as error:  # a check that met a value of another type
        check_types()
        raise ParamsError(f"{where}: {error}") from None
    check_types()  # the types a sampler does not check itself
    return settings


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
