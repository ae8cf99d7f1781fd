"""Where the time goes: torch.profiler over a few calls of a step, its top kernels and their categories.

On a GPU the table ranks CUDA kernels by self CUDA time; on the CPU (smoke runs, tests) it ranks the
CPU operators by self CPU time. Shares are of the summed self time of every kernel (operator) of the
profiled calls, so the top rows' shares add up to at most 100% and the categories' to 100%.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.profiler import ProfilerActivity, profile

OTHER = "other"
# (category, name fragments), first match wins; names are compared in lower case. Inductor's fused Triton
# kernels (triton_poi_/triton_per_/triton_red_) are named after the ops they fuse, so a fused bias add of a
# convolution ("triton_poi_fused_convolution_0") is elementwise work: see ``category``. cuDNN's
# "wgrad_indexed_implicit_gemm" is a convolution, not an index copy (it was counted as a copy until 2026-12-03).
RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("optimizer/EMA", ("adam", "foreach", "lerp", "multi_tensor", "ema_")),
    ("attention", ("flash", "fmha", "attention", "softmax", "sdpa", "bmm")),  # bmm: only attention has batched GEMMs
    ("normalisation", ("group_norm", "groupnorm", "layer_norm", "layernorm", "batch_norm", "native_norm",
                       "welford", "bn_fw", "bn_bw")),  # bn_fw/bn_bw: cuDNN's BatchNorm kernels (Inception's)
    ("pooling", ("pool",)),  # Inception's max and average pools: 19% of its time on 2026-12-03, once "other"
    ("copies", ("memcpy", "memset", "copy", "nchwtonhwc", "nhwctonchw", "transpose", "clone", "contiguous",
                "aten::cat", "cat_", "aten::index", "index_", "indexfunc", "gather", "scatter")),
    ("convolution", ("conv", "gemm", "xmma", "cutlass", "cudnn", "wgrad", "dgrad", "fprop", "implicit",
                     "aten::mm", "addmm", "matmul", "triton_tem")),
    ("elementwise/activation", ("elementwise", "vectorized", "triton_", "silu", "gelu", "sigmoid", "add", "mul",
                                "div", "sub", "exp", "sqrt", "rsqrt", "fill", "where", "reduce", "sum", "mean",
                                "normal", "uniform", "randn", "neg", "pow", "clamp", "round")),
)
CATEGORIES = tuple(name for name, _ in RULES) + (OTHER,)
FUSED_TRITON = ("triton_poi_", "triton_per_", "triton_red_")
SKIPPED = ("ProfilerStep", "[memory]")
RUNTIME = ("cuda", "cuLaunch", "Command Buffer Full")  # CUDA runtime events: the launch, not the operator


def category(name: str) -> str:
    """The category of a kernel or operator name (``other`` when no rule matches)."""
    lower = name.lower()
    rules = RULES
    if lower.startswith(FUSED_TRITON):  # fused pointwise/reduction kernels: never a convolution or a copy
        rules = tuple(rule for rule in RULES if rule[0] not in ("convolution", "copies"))
    return next((name for name, fragments in rules if any(f in lower for f in fragments)), OTHER)


def summarise(times: dict[str, float], steps: int, top: int = 10) -> dict:
    """Top ``top`` names by self time (µs, summed over ``steps`` steps) with their category, time per step
    and share of all names' time, and each category's share."""
    total = sum(times.values())
    if steps < 1 or total <= 0:
        raise ValueError("profile: no steps or no time recorded")
    ranked = sorted(times.items(), key=lambda item: -item[1])
    shares = {name: 0.0 for name in CATEGORIES}
    for name, micros in ranked:
        shares[category(name)] += micros / total
    return {
        "steps": steps, "ms_per_step": total / steps / 1e3,
        "top": [{"name": name, "category": category(name), "ms_per_step": micros / steps / 1e3,
                 "share": micros / total} for name, micros in ranked[:top]],
        "categories": shares,
    }


def self_times(events, kernels: bool) -> dict[str, float]:
    """Self time (µs) per name of profiler key averages: of the CUDA kernels (``kernels``), else of the CPU
    operators."""
    times: dict[str, float] = {}
    for event in events:
        if event.key.startswith(SKIPPED):
            continue
        if kernels:
            micros = event.self_device_time_total if event.device_type == torch.autograd.DeviceType.CUDA else 0
        else:
            micros = event.self_cpu_time_total
        if micros > 0:
            times[event.key] = times.get(event.key, 0.0) + micros
    return times


def launchers(events, depth: int = 4) -> dict[str, dict[str, float]]:
    """For each kernel name, the self time (µs) it spent under each chain of CPU operators that launched it
    ("aten::copy_ ← aten::contiguous ← aten::convolution_backward", innermost first, at most ``depth`` ops):
    which operator a copy or a normalisation kernel comes from. ``events`` is ``prof.events()``."""
    chains: dict[str, dict[str, float]] = {}
    for event in events:
        for kernel in getattr(event, "kernels", ()):
            ops, op = [], event
            while op is not None and len(ops) < depth:
                if not op.name.startswith(SKIPPED + RUNTIME):
                    ops.append(op.name)
                op = op.cpu_parent
            per_chain = chains.setdefault(kernel.name, {})
            chain = " ← ".join(ops)
            per_chain[chain] = per_chain.get(chain, 0.0) + kernel.duration
    return chains


def attribute(summary: dict, chains: dict[str, dict[str, float]], top: int = 2) -> dict:
    """``summary`` with each top kernel's ``launched_by``: its ``top`` largest launching chains and their
    shares of that kernel's time (left out where the profile linked no CPU operator to the kernel)."""
    for row in summary["top"]:
        per_chain = chains.get(row["name"])
        if per_chain:
            total = sum(per_chain.values())
            ranked = sorted(per_chain.items(), key=lambda item: -item[1])[:top]
            row["launched_by"] = [{"ops": chain, "share": micros / total} for chain, micros in ranked]
    return summary


def profile_calls(call: Callable[[], object], calls: int, device: torch.device, steps_per_call: int = 1,
                  top: int = 10) -> dict:
    """Profile ``calls`` calls of ``call`` (after one unprofiled call), each ``steps_per_call`` steps, and
    summarise them per step (``summarise``)."""
    call()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(calls):
            call()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    events = prof.key_averages()
    times = self_times(events, kernels=True) if device.type == "cuda" else {}
    chains = launchers(prof.events()) if times else {}
    clock = "self CUDA time"
    if not times:
        times, clock = self_times(events, kernels=False), "self CPU time"
        clock += " (no CUDA kernels recorded)" if device.type == "cuda" else ""
    return {"clock": clock} | attribute(summarise(times, calls * steps_per_call, top), chains)
