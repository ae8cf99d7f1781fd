"""Compiler levers a benchmark variant may turn on: TorchInductor settings patched for one row only.

A row of ``--train-variants`` or ``--sample-variants`` such as ``coordinate_descent=true`` compiles and
runs its model with the setting on, beside the params row measured in the same run; the setting is
restored afterwards, so later rows compile as the pipeline does. None of them changes what is computed,
only how the kernels are chosen and launched:

- ``force_layout``: inductor's layout optimisation (its convolutions and the kernels around them in
  channels-last, chosen by inductor itself rather than by the model's tensors) even where its heuristic
  declines it. For a training graph it declines whenever a convolution has at least twice as many input
  channels as output channels (``decide_layout_opt``), as the U-Net's decoder convolutions on the
  concatenated skips do, so cuDNN converts NCHW↔NHWC around every convolution of the training step (18 ms of
  its 84 ms on the CIFAR U-Net, 2026-12-03); inference graphs already get the optimisation.
- ``coordinate_descent``: inductor tunes each generated Triton kernel's block sizes and warps by coordinate
  descent (``coordinate_descent_tuning``), the normalisation reductions included; longer compile.
- ``max_autotune``: inductor benchmarks Triton templates against cuDNN/cuBLAS for every convolution and
  matmul and tunes pointwise kernels (``max_autotune``, ``max_autotune_pointwise``); much longer compile.
- ``cudagraphs``: the compiled graphs are replayed as CUDA graphs (``triton.cudagraphs``, what
  ``mode="reduce-overhead"`` sets): one launch per graph instead of one per kernel, for launch-bound steps.
  In training it is a params key (``training.<dataset>.cudagraphs``, adopted 2026-12-03), as is
  ``force_layout``, so a training variant of either changes that setting rather than patching inductor.

The U-Net's GroupNorm statistics from per-channel moments are a params key of the model
(``architectures.<dataset>.group_norm_moments``, adopted from the 1.11×/1.16× the lever measured on fd03ce9), so a
variant ``group_norm_moments=false`` changes that setting, as training's ``cudagraphs`` does, and is no lever here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch._inductor.config as inductor_config

SETTINGS: dict[str, tuple[str, ...]] = {
    "force_layout": ("force_layout_optimization",),
    "coordinate_descent": ("coordinate_descent_tuning",),
    "max_autotune": ("max_autotune", "max_autotune_pointwise"),
    "cudagraphs": ("triton.cudagraphs",),
}
KEYS = {key: bool for key in SETTINGS}  # variant keys: all take true or false


def split(variant: dict | None, settings: frozenset[str] = frozenset()) -> tuple[dict, dict]:
    """(the variant's other settings, its inductor levers); keys in ``settings`` are the pipeline's own settings
    (training's ``cudagraphs`` and ``force_layout`` are params keys that the Trainer passes to torch.compile),
    never patched levers."""
    variant = variant or {}
    levers = {k: v for k, v in variant.items() if k in SETTINGS and k not in settings}
    return {k: v for k, v in variant.items() if k not in levers}, levers


def patch_of(levers: dict) -> dict[str, bool]:
    """Inductor config names and values for ``levers`` (``{"cudagraphs": True}`` → ``{"triton.cudagraphs": True}``)."""
    unknown = sorted(set(levers) - set(SETTINGS))
    if unknown:
        raise ValueError(f"inductor levers {unknown}: not one of {', '.join(SETTINGS)}")
    return {name: bool(value) for key, value in levers.items() for name in SETTINGS[key]}


@contextmanager
def patched(levers: dict) -> Iterator[None]:
    """Inductor compiles (and replays) with ``levers`` inside the block; its settings come back after it."""
    with inductor_config.patch(patch_of(levers)):
        yield
