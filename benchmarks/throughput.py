"""Training and sampling throughput of diffbench's U-Nets, beside diffusers' UNet2DModel.

Training rows time exactly what `stages/train.py` runs: the `Trainer` built by
`training.make_trainer` from params.yaml (batch, bf16, compile, channels_last, AdamW, clipping,
EMA, label dropout, backend settings), driven through `Trainer.fit` without checkpoints, on random
uint8 images of the dataset's shape (their content does not change the speed). The first
`--warmup-steps` steps (compile included, reported as start-up) are left out of the rate.
diffusers' UNet2DModel (DDPM CIFAR-10 configuration) is timed inside the same Trainer, so both
networks pay the same data draw, loss, optimiser and EMA. The MNIST row uses
params.yaml `architectures.mnist`.

MFU = 3 × forward FLOPs × images/s ÷ 989 TFLOP/s (H100/H200 dense bf16); forward FLOPs are
counted once per network by torch's FlopCounterMode. Sampling is DDIM with each library's own
loop (diffbench: samplers/ddim.py; diffusers: DDIMScheduler.step). GPU only.

    python benchmarks/throughput.py --out performance.json --markdown performance.md
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Callable

import torch
from torch import nn

from diffbench import distributed
from diffbench.config import load_params
from diffbench.diffusion import NoiseSchedule
from diffbench.flops import PEAK_BF16_DENSE_FLOPS, forward_flops, utilisation
from diffbench.samplers import ddim, make_settings
from diffbench.training import Trainer, make_trainer
from diffbench.unet import UNet, count_parameters

IMAGE_SHAPES = {"mnist": (28, 28, 1), "cifar10-jpeg": (32, 32, 3)}  # H×W×C of each dataset's images
NUM_CLASSES = 10
POOL = 50_000  # random training images on the device


class DiffusersEps(nn.Module):
    """diffusers' UNet2DModel in the DDPM CIFAR-10 configuration, called like ours (labels ignored)."""

    null_label = 0

    def __init__(self):
        super().__init__()
        from diffusers import UNet2DModel

        self.unet = UNet2DModel(
            sample_size=32, in_channels=3, out_channels=3, layers_per_block=2,
            block_out_channels=(128, 256, 256, 256),
            down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.unet(x, t).sample


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def counted_forward_flops(model: nn.Module, shape: tuple[int, int, int], device: torch.device) -> float:
    """FLOPs of one forward pass per image of ``model`` (C×H×W), counted where it lives."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(2, *shape, device=device)
    t = torch.zeros(2, dtype=torch.long, device=device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x, t, None)
    return counter.get_total_flops() / 2


def timed(fn: Callable[[], None], warmup: int, iters: int, device: torch.device) -> float:
    """Seconds per call after ``warmup`` calls (synchronised)."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    synchronize(device)
    return (time.perf_counter() - start) / iters


def time_training(trainer: Trainer, shape: tuple[int, int, int], warmup: int, steps: int) -> dict:
    """Start-up seconds (first ``warmup`` steps) and images/s of the next ``steps``, through Trainer.fit."""
    height, width, channels = shape
    device = trainer.ctx.device
    images = torch.randint(0, 256, (POOL, height, width, channels), dtype=torch.uint8, device=device)
    labels = torch.randint(0, NUM_CLASSES, (POOL,), device=device)
    if trainer.config.steps < warmup + steps:
        raise SystemExit(f"training.steps {trainer.config.steps} < --warmup-steps + --train-steps")
    noop = lambda row, rate: None  # noqa: E731
    synchronize(device)
    start = time.perf_counter()
    trainer.fit(images, labels, None, noop, stop_at=warmup)  # ends with a check: synchronised
    startup = time.perf_counter() - start
    start = time.perf_counter()
    trainer.fit(images, labels, None, noop, stop_at=warmup + steps)
    seconds = time.perf_counter() - start
    return {"startup_seconds": startup, "train_images_per_s": steps * trainer.config.batch_size / seconds,
            "train_batch": trainer.config.batch_size}


def sample_rate_ours(model: nn.Module, shape: tuple[int, int, int], batch: int, compile_model: bool, steps: int,
                     device: torch.device) -> float:
    model = model.to(device).eval().requires_grad_(False)
    forward = torch.compile(model) if compile_model else model
    schedule = NoiseSchedule.named("linear", 1000)
    settings = make_settings("ddim", {})

    def run() -> None:
        x = torch.randn(batch, *shape, device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"), torch.no_grad():
            ddim.sample(lambda x, t: forward(x, t, None).float(), x, schedule, steps, None, settings)

    return batch / timed(run, warmup=1, iters=2, device=device)


def sample_rate_diffusers(model: DiffusersEps, shape: tuple[int, int, int], batch: int, compile_model: bool,
                          steps: int, device: torch.device) -> float:
    from diffusers import DDIMScheduler

    unet = model.unet.to(device).eval().requires_grad_(False)
    forward = torch.compile(unet) if compile_model else unet
    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", clip_sample=False)
    scheduler.set_timesteps(steps)

    def run() -> None:
        x = torch.randn(batch, *shape, device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"), torch.no_grad():
            for t in scheduler.timesteps:
                eps = forward(x, t).sample.float()
                x = scheduler.step(eps, t, x).prev_sample

    return batch / timed(run, warmup=1, iters=2, device=device)


def measure(params, library: str, dataset: str, mode: str, args: argparse.Namespace) -> dict:
    """One row: the pipeline's training step (and sampling unless skipped) for a network and mode."""
    shape = IMAGE_SHAPES[dataset]
    chw = (shape[2], shape[0], shape[1])
    ctx = distributed.Context(rank=0, world_size=1, device=torch.device(args.device))
    overrides = {"compile": mode == "compile"} | ({"batch_size": args.train_batch} if args.train_batch else {})
    network = DiffusersEps() if library == "diffusers" else None
    trainer = make_trainer(params, dataset, "linear", shape, NUM_CLASSES, ctx, "benchmark", model=network,
                           overrides=overrides)
    if args.no_cudnn_benchmark:
        torch.backends.cudnn.benchmark = False
    flops = forward_flops(trainer.unet_config) if network is None else counted_forward_flops(trainer.model, chw, ctx.device)
    row = {"library": library, "dataset": dataset, "mode": mode, "parameters": count_parameters(trainer.model),
           "forward_gflops_per_image": flops / 1e9}
    row |= time_training(trainer, shape, args.warmup_steps, args.train_steps)
    row |= {f"train_{k}": v for k, v in utilisation(row["train_images_per_s"], flops, distributed.device_name(ctx.device)).items()}
    if not args.skip_sampling:
        model = DiffusersEps() if library == "diffusers" else UNet(trainer.unet_config)
        sampler = sample_rate_diffusers if library == "diffusers" else sample_rate_ours
        row["sample_images_per_s"] = sampler(model, chw, args.sample_batch, mode == "compile", args.sample_steps,
                                              ctx.device)
    del trainer
    if ctx.device.type == "cuda":
        torch.cuda.empty_cache()
    return row


def best(rows: list[dict], library: str, dataset: str, key: str) -> float | None:
    values = [r[key] for r in rows if r["library"] == library and r["dataset"] == dataset and r.get(key)]
    return max(values) if values else None


def speedups(rows: list[dict]) -> dict:
    """diffbench vs diffusers (best mode of each) on CIFAR, and the best training MFU per dataset."""
    out = {}
    for key, name in (("train_images_per_s", "train_speedup_vs_diffusers"),
                      ("sample_images_per_s", "sample_speedup_vs_diffusers")):
        ours, theirs = best(rows, "diffbench", "cifar10-jpeg", key), best(rows, "diffusers", "cifar10-jpeg", key)
        out[name] = ours / theirs if ours and theirs else None
    for dataset in sorted({r["dataset"] for r in rows}):
        out[f"train_mfu_{dataset}"] = best(rows, "diffbench", dataset, "train_mfu")
    return out


def render_markdown(results: dict) -> str:
    """performance.md: one row per network, dataset and mode, with the GPU named on every row."""
    gpu = results["gpu"]
    cell = lambda value, fmt: "–" if value is None else format(value, fmt)  # noqa: E731
    lines = [
        "# Throughput: diffbench vs diffusers (same GPU, same run)", "",
        f"Measured by `benchmarks/throughput.py` on one {gpu}, torch {results['torch']}. Training: the pipeline's "
        f"own `Trainer` step with params.yaml settings ({results['params']}), {results['train_steps']} steps after "
        f"{results['warmup_steps']} warm-up steps; diffusers' UNet2DModel runs in the same Trainer. Sampling: "
        f"DDIM-{results['sample_steps']} at batch {results['sample_batch']} (bf16). MFU = 3 × forward FLOPs × "
        f"images/s ÷ {PEAK_BF16_DENSE_FLOPS['H200'] / 1e12:.0f} TFLOP/s (dense bf16 peak).", "",
        "| GPU | network | dataset | mode | params | GFLOP/fwd | batch | train img/s | TFLOP/s | MFU | start-up s "
        "| DDIM img/s |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results["rows"]:
        lines.append(
            f"| {gpu} | {r['library']} | {r['dataset']} | {r['mode']} | {r['parameters'] / 1e6:.1f}M | "
            f"{r['forward_gflops_per_image']:.2f} | {r['train_batch']} | {r['train_images_per_s']:.0f} | "
            f"{cell(r['train_tflops_per_second'], '.0f')} | {cell(r['train_mfu'], '.1%')} | "
            f"{r['startup_seconds']:.0f} | {cell(r.get('sample_images_per_s'), '.1f')} |"
        )
    s = results["summary"]
    lines += [
        "", f"- training speed-up vs diffusers, CIFAR U-Net (best mode of each): "
        f"**{cell(s['train_speedup_vs_diffusers'], '.2f')}×** (goal 1.5×)",
        f"- sampling speed-up vs diffusers (best mode of each): **{cell(s['sample_speedup_vs_diffusers'], '.2f')}×** "
        f"(goal 1.5×)",
    ]
    lines += [f"- training MFU, {key.removeprefix('train_mfu_')}: **{cell(value, '.1%')}** (goal 35% for CIFAR)"
              for key, value in s.items() if key.startswith("train_mfu_")]
    return "\n".join(lines + [""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml", help="settings of the training step (training.<dataset>)")
    parser.add_argument("--datasets", default="cifar10-jpeg,mnist")
    parser.add_argument("--libraries", default="diffbench,diffusers", help="diffusers runs on cifar10-jpeg only")
    parser.add_argument("--modes", default="eager,compile")
    parser.add_argument("--train-batch", type=int, default=None, help="override training.<dataset>.batch_size")
    parser.add_argument("--warmup-steps", type=int, default=10)
    parser.add_argument("--train-steps", type=int, default=100)
    parser.add_argument("--sample-batch", type=int, default=1000)
    parser.add_argument("--sample-steps", type=int, default=50)
    parser.add_argument("--skip-sampling", action="store_true")
    parser.add_argument("--no-cudnn-benchmark", action="store_true",
                        help="turn off the pipeline's cudnn.benchmark (to measure what it buys)")
    parser.add_argument("--device", default="cuda", help="cpu only to smoke-test the code path")
    parser.add_argument("--out", default=None, help="write results JSON here")
    parser.add_argument("--markdown", default=None, help="write performance.md here")
    parser.add_argument("--from-json", default=None, help="only render --markdown from an earlier --out file")
    args = parser.parse_args()
    if args.from_json:
        with open(args.from_json) as handle:
            results = json.load(handle)
        if args.markdown:
            with open(args.markdown, "w") as handle:
                handle.write(render_markdown(results))
        return
    params = load_params(args.params)
    gpu = distributed.device_name(torch.device(args.device))
    results: dict = {"gpu": gpu, "torch": torch.__version__, "params": args.params, "warmup_steps": args.warmup_steps,
                     "train_steps": args.train_steps, "sample_batch": args.sample_batch,
                     "sample_steps": args.sample_steps, "cudnn_benchmark": not args.no_cudnn_benchmark, "rows": []}
    for dataset in args.datasets.split(","):
        for library in args.libraries.split(","):
            if library == "diffusers" and dataset != "cifar10-jpeg":
                continue
            for mode in args.modes.split(","):
                row = measure(params, library, dataset, mode, args)
                results["rows"].append(row)
                print(f"{gpu} | {library:9s} | {dataset:12s} | {mode:7s} | train {row['train_images_per_s']:8.0f} img/s "
                      f"| MFU {row['train_mfu'] or 0:.1%} | start-up {row['startup_seconds']:.0f} s | DDIM "
                      f"{row.get('sample_images_per_s', 0):7.1f} img/s", flush=True)
    results["summary"] = speedups(results["rows"])
    print(json.dumps(results["summary"], indent=2))
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(results, handle, indent=2, sort_keys=True)
    if args.markdown:
        with open(args.markdown, "w") as handle:
            handle.write(render_markdown(results))


if __name__ == "__main__":
    main()
