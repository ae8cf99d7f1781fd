"""Sampling speed of the pipeline's own path, as stages/generate.py samples.

Each dataset's U-Net (params.yaml ``architectures``, random weights: speed does not depend on them) is
made ready by ``generation.prepare_model`` and sampled by ``generation.generate`` with the generate
stage's batch, bf16 and compile (params ``sampling``), the params' ``ddim`` and ``ddpm`` sampler
settings and the linear schedule at params T. Rows: DDIM-50, DDIM-10 and DDPM-T at params
``sampling.guidance``, and DDIM-50 under classifier-free guidance (cond and uncond in one batched call).
Image-steps/s = images × NFE ÷ seconds. Start-up (the compile of each batch shape, on a 2-step DDIM
batch) is timed apart and left out of the rates. cuDNN autotuning is off, as in the generate stage
(only the Trainer turns it on).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import torch

import inductor_levers
from bench_common import IMAGE_SHAPES, NUM_CLASSES, fresh_compiler
from diffbench.config import Params
from diffbench.diffusion import NoiseSchedule
from diffbench.flops import forward_flops, utilisation
from diffbench.generation import LoadedModel, generate, prepare_model, sample_batch
from diffbench.runs import passes_per_evaluation
from diffbench.unet import UNet, UNetConfig
from kernel_profile import profile_calls

SCHEDULE = "linear"
# what a --sample-variants row may change: pipeline_model's NHWC and GroupNorm options, the batch, inductor's levers
VARIANT_KEYS = {"channels_last": bool, "batch_size": int, "group_norm_moments": bool} | inductor_levers.KEYS
WARMUP_STEPS = 2
PROFILE_STEPS = 5  # DDIM steps per profiled call: the per-batch noise draw stays a small part


@dataclass(frozen=True)
class Run:
    """One timed row: ``steps`` of params sampler setting ``setting`` at guidance ``guidance``, ``batches`` batches."""

    name: str
    setting: str
    steps: int
    guidance: float | None
    batches: int


def planned_runs(params: Params, cfg_scale: float, batches: int) -> list[Run]:
    """DDIM-50 (the reference rate), DDIM-10, DDPM-T (one batch) and DDIM-50 under guidance ``cfg_scale``."""
    guidance = params.section("sampling")["guidance"]
    if passes_per_evaluation(guidance) != 1:
        raise SystemExit(f"sampling.guidance {guidance}: the CFG row is compared with one pass per step (1 or none)")
    if passes_per_evaluation(cfg_scale) != 2:
        raise SystemExit(f"--cfg-scale {cfg_scale}: must be a guided pair (>= 0, not 1)")
    timesteps = params.timesteps
    return [reference_run(params, batches), Run("DDIM-10", "ddim", 10, guidance, batches),
            Run(f"DDPM-{timesteps}", "ddpm", timesteps, guidance, 1),
            Run(f"DDIM-50 CFG {cfg_scale:g}", "ddim", 50, cfg_scale, batches)]


def reference_run(params: Params, batches: int) -> Run:
    """DDIM-50 at params ``sampling.guidance``: the rate every other row (and every variant) is related to."""
    return Run("DDIM-50", "ddim", 50, params.section("sampling")["guidance"], batches)


def pipeline_model(params: Params, dataset: str, device: torch.device, channels_last: bool = False,
                   group_norm_moments: bool | None = None) -> LoadedModel:
    """The dataset's U-Net with random weights, ready to sample as the generate stage samples (``channels_last``:
    the benchmark's NHWC variant of it; ``group_norm_moments``: a variant of the architecture's setting)."""
    height, _, channels = IMAGE_SHAPES[dataset]
    entry = params.section("architectures")[dataset]
    if group_norm_moments is not None:
        entry = entry | {"group_norm_moments": group_norm_moments}
    config = UNetConfig.from_params(entry, height, channels, NUM_CLASSES)
    torch.manual_seed(params.seed)
    schedule = NoiseSchedule.named(SCHEDULE, params.timesteps)
    net = UNet(config)
    if channels_last:  # NHWC weights before prepare_model moves (preserving the layout) and compiles the net
        net = net.to(memory_format=torch.channels_last)
    model = prepare_model(net, schedule, device, params.section("sampling")["compile"])
    return replace(model, forward=nhwc_inputs(model.forward)) if channels_last else model


def nhwc_inputs(forward: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """``forward`` called with its image batch in channels_last memory order (same values): with NHWC weights,
    cuDNN's NHWC convolutions need no layout copies. A benchmark variant; not a params setting yet."""

    def call(x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return forward(x.contiguous(memory_format=torch.channels_last), t, labels)

    return call


@contextmanager
def generate_stage_backends() -> Iterator[None]:
    """cuDNN autotuning off while sampling, as in the generate stage; restored afterwards."""
    saved = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = saved


def kind_of(params: Params, setting: str) -> str:
    """The sampler kind of params ``samplers.<setting>``."""
    return params.section("samplers")[setting]["kind"]


def sample(model: LoadedModel, params: Params, setting: str, steps: int, guidance: float | None, batch: int,
           batches: int, label: str):
    """``generate`` exactly as the generate stage calls it, on seeds 0..batches·batch−1."""
    return generate(model, kind_of(params, setting), params.sampler_settings(setting), steps, list(range(batches * batch)), guidance,
                    batch, bf16=params.section("sampling")["bf16"], label=label)


def time_run(model: LoadedModel, params: Params, run: Run, batch: int, flops: float, device_name: str,
             peak: float | None) -> dict:
    """One row: images/s, image-steps/s (NFE per image) and U-Net TFLOP/s and MFU of ``run``."""
    out = sample(model, params, run.setting, run.steps, run.guidance, batch, run.batches, f"benchmark {run.name}")
    images = run.batches * batch
    rate = images / out.seconds
    passes = out.nfe * passes_per_evaluation(run.guidance)
    row = {"run": run.name, "setting": run.setting, "steps": run.steps, "guidance": run.guidance, "batch": batch,
           "images": images, "nfe": out.nfe, "network_passes_per_image": passes, "seconds": out.seconds,
           "images_per_s": rate, "image_steps_per_s": rate * out.nfe}
    return row | utilisation(rate, flops, device_name, passes, peak)


def relate(rows: list[dict]) -> list[dict]:
    """Each row's image-steps/s as a share of the first row's (DDIM-50), and for a guided row the cost of one of
    its steps relative to one of the first row's (that row's image-steps/s ÷ the guided row's)."""
    reference = rows[0]["image_steps_per_s"]
    return [row | {"share_of_ddim50": row["image_steps_per_s"] / reference}
            | ({"cfg_cost_per_step": reference / row["image_steps_per_s"]}
               if passes_per_evaluation(row["guidance"]) == 2 else {}) for row in rows]


def measure_dataset(params: Params, dataset: str, device: torch.device, device_name: str, batch: int, batches: int,
                    cfg_scale: float, peak: float | None, profile_calls_n: int = 0) -> dict:
    """Every sampling row of one dataset's U-Net, its start-up seconds and, if asked, a profile of DDIM steps."""
    fresh_compiler()
    model = pipeline_model(params, dataset, device)
    flops = forward_flops(model.net.config)
    plan = planned_runs(params, cfg_scale, batches)
    with generate_stage_backends():
        startup = sum(sample(model, params, "ddim", WARMUP_STEPS, guidance, batch, 1, "benchmark warm-up").seconds
                      for guidance in dict.fromkeys(run.guidance for run in plan))  # one per batch shape
        rows = relate([time_run(model, params, run, batch, flops, device_name, peak) for run in plan])
        profile = None
        if profile_calls_n:
            plain, seeds = plan[0], torch.arange(batch)
            settings = params.sampler_settings(plain.setting)
            profile = profile_calls(
                lambda: sample_batch(model, kind_of(params, plain.setting), settings, PROFILE_STEPS, seeds,
                                     plain.guidance, params.section("sampling")["bf16"]),
                profile_calls_n, device, steps_per_call=PROFILE_STEPS)
    result = {"dataset": dataset, "parameters": sum(p.numel() for p in model.net.parameters()),
              "forward_gflops_per_image": flops / 1e9, "compile": params.section("sampling")["compile"],
              "bf16": params.section("sampling")["bf16"] and device.type == "cuda", "startup_seconds": startup,
              "rows": rows}
    return result | ({"profile": profile} if profile else {})


def measure_variant(params: Params, dataset: str, device: torch.device, device_name: str, batch: int, batches: int,
                    peak: float | None, variant: dict, params_row: dict) -> dict:
    """The DDIM-50 row of ``dataset`` with ``variant`` changed (its own model and compile), as a multiple of
    ``params_row``, the params.yaml DDIM-50 row measured in the same run (in image-steps/s, so a variant with
    another ``batch_size`` times as many images)."""
    fresh_compiler()
    options, levers = inductor_levers.split(variant)
    batch = options.pop("batch_size", batch)
    run = reference_run(params, batches)
    with generate_stage_backends(), inductor_levers.patched(levers):
        model = pipeline_model(params, dataset, device, **options)
        startup = sample(model, params, "ddim", WARMUP_STEPS, run.guidance, batch, 1, "benchmark warm-up").seconds
        row = time_run(model, params, run, batch, forward_flops(model.net.config), device_name, peak)
    return row | {"startup_seconds": startup,
                  "times_params_row": row["image_steps_per_s"] / params_row["image_steps_per_s"]}
