"""Training and sampling throughput of diffbench's U-Net against diffusers' UNet2DModel, side by side.

Both models in the DDPM CIFAR-10 configuration (35.7M parameters), same batch, same precision
(bf16 autocast), same optimiser (AdamW), eager and torch.compile. Sampling is DDIM-50 with each
library's own loop (diffbench: samplers/ddim.py; diffusers: DDIMScheduler.step). Prints a table and
writes JSON (--out). GPU only: absolute times mean nothing on a CPU.

    python benchmarks/throughput.py --out performance.json
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Callable

import torch
import torch.nn.functional as F

from diffbench.diffusion import NoiseSchedule
from diffbench.samplers import ddim, make_settings
from diffbench.unet import UNet, UNetConfig, count_parameters

H100_BF16_DENSE_TFLOPS = 989.0  # H100 SXM / H200 dense bf16 tensor-core peak


def diffusers_unet() -> torch.nn.Module:
    from diffusers import UNet2DModel

    return UNet2DModel(
        sample_size=32, in_channels=3, out_channels=3, layers_per_block=2,
        block_out_channels=(128, 256, 256, 256),
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    )


def forward_flops(model: torch.nn.Module, call: Callable, batch: int) -> float:
    """FLOPs of one forward pass per image (torch's FlopCounterMode: matmuls and convolutions)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(batch, 3, 32, 32, device="cuda")
    t = torch.randint(0, 1000, (batch,), device="cuda")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        call(model, x, t)
    return counter.get_total_flops() / batch


def timed(fn: Callable[[], None], warmup: int, iters: int) -> float:
    """Seconds per call after ``warmup`` calls (CUDA-synchronised)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / iters


def train_rate(model, call, batch: int, compile_model: bool, steps: int) -> float:
    """Training images/s: bf16 autocast forward, MSE on ε, backward, fused AdamW step."""
    model = model.cuda().train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    forward = torch.compile(model) if compile_model else model
    alpha_bar = torch.tensor(NoiseSchedule.named("linear", 1000).alpha_bar, device="cuda", dtype=torch.float32)
    x0 = torch.randn(batch, 3, 32, 32, device="cuda")

    def step() -> None:
        t = torch.randint(0, 1000, (batch,), device="cuda")
        noise = torch.randn_like(x0)
        a = alpha_bar[t].view(-1, 1, 1, 1)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            pred = call(forward, a.sqrt() * x0 + (1 - a).sqrt() * noise, t)
        loss = F.mse_loss(pred.float(), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return batch / timed(step, warmup=5 if compile_model else 3, iters=steps)


def ours_call(model, x, t):
    return model(x, t, None)


def diffusers_call(model, x, t):
    return model(x, t).sample


def sample_rate_ours(model, batch: int, compile_model: bool, steps: int) -> float:
    model = model.cuda().eval().requires_grad_(False)
    forward = torch.compile(model) if compile_model else model
    schedule = NoiseSchedule.named("linear", 1000)
    settings = make_settings("ddim", {})

    def run() -> None:
        x = torch.randn(batch, 3, 32, 32, device="cuda")
        with torch.autocast("cuda", dtype=torch.bfloat16), torch.no_grad():
            ddim.sample(lambda x, t: forward(x, t, None).float(), x, schedule, steps, None, settings)

    return batch / timed(run, warmup=1, iters=2)


def sample_rate_diffusers(model, batch: int, compile_model: bool, steps: int) -> float:
    from diffusers import DDIMScheduler

    model = model.cuda().eval().requires_grad_(False)
    forward = torch.compile(model) if compile_model else model
    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", clip_sample=False)
    scheduler.set_timesteps(steps)

    def run() -> None:
        x = torch.randn(batch, 3, 32, 32, device="cuda")
        with torch.autocast("cuda", dtype=torch.bfloat16), torch.no_grad():
            for t in scheduler.timesteps:
                eps = forward(x, t).sample.float()
                x = scheduler.step(eps, t, x).prev_sample

    return batch / timed(run, warmup=1, iters=2)


def render_markdown(results: dict) -> str:
    """performance.md: the side-by-side table, speed-ups and MFU, with the GPU named on every row."""
    gpu = results["gpu"]
    lines = [
        "# Throughput: diffbench vs diffusers (same GPU, same run)", "",
        f"Measured by `benchmarks/throughput.py` on one {gpu}, torch {results['torch']}; "
        f"training batch {results['train_batch']} (bf16 autocast, fused AdamW), sampling DDIM-{results['sample_steps']} "
        f"at batch {results['sample_batch']} (bf16). Both U-Nets: DDPM CIFAR-10 configuration, "
        f"{results['runs']['diffbench']['parameters'] / 1e6:.2f}M parameters, "
        f"{results['runs']['diffbench']['forward_gflops_per_image']:.1f} GFLOP per forward. "
        f"MFU = 3 × forward FLOPs × images/s ÷ {H100_BF16_DENSE_TFLOPS:.0f} TFLOP/s (dense bf16 peak).", "",
        "| GPU | library | mode | train images/s | DDIM sample images/s | train MFU |",
        "| --- | --- | --- | ---: | ---: | ---: |",
    ]
    for library, entry in results["runs"].items():
        for mode in ("eager", "compile"):
            if mode in entry:
                row = entry[mode]
                lines.append(f"| {gpu} | {library} | {mode} | {row['train_images_per_s']:.0f} | "
                             f"{row['sample_images_per_s']:.1f} | {row['train_mfu']:.1%} |")
    lines += [
        "", f"- training speed-up vs diffusers (best mode of each): **{results['train_speedup_vs_diffusers']:.2f}×** (goal 1.5×)",
        f"- sampling speed-up vs diffusers (best mode of each): **{results['sample_speedup_vs_diffusers']:.2f}×** (goal 1.5×)",
        f"- training MFU: **{results['train_mfu']:.1%}** (goal 35%)", "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train-batch", type=int, default=512)
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument("--sample-batch", type=int, default=1000)
    parser.add_argument("--sample-steps", type=int, default=50)
    parser.add_argument("--modes", default="eager,compile")
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
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    gpu = torch.cuda.get_device_name()
    builders = {"diffbench": (lambda: UNet(UNetConfig()), ours_call, sample_rate_ours),
                "diffusers": (diffusers_unet, diffusers_call, sample_rate_diffusers)}
    results: dict = {"gpu": gpu, "torch": torch.__version__, "train_batch": args.train_batch,
                     "sample_batch": args.sample_batch, "sample_steps": args.sample_steps, "runs": {}}
    for name, (build, call, sampler) in builders.items():
        torch.manual_seed(0)
        model = build()
        entry = {"parameters": count_parameters(model),
                 "forward_gflops_per_image": forward_flops(model.cuda(), call, 8) / 1e9}
        for mode in args.modes.split(","):
            compiled = mode == "compile"
            torch.manual_seed(0)
            rate = train_rate(build(), call, args.train_batch, compiled, args.train_steps)
            srate = sampler(build(), args.sample_batch, compiled, args.sample_steps)
            entry[mode] = {"train_images_per_s": rate, "sample_images_per_s": srate,
                           "train_mfu": rate * 3 * entry["forward_gflops_per_image"] / 1e3 / H100_BF16_DENSE_TFLOPS}
            print(f"{gpu} | {name:9s} | {mode:7s} | train {rate:8.0f} img/s | DDIM-{args.sample_steps} "
                  f"{srate:7.1f} img/s | MFU {entry[mode]['train_mfu']:.1%}", flush=True)
        results["runs"][name] = entry
    best = lambda lib, key: max(v[key] for k, v in results["runs"][lib].items() if isinstance(v, dict))  # noqa: E731
    results["train_speedup_vs_diffusers"] = best("diffbench", "train_images_per_s") / best("diffusers", "train_images_per_s")
    results["sample_speedup_vs_diffusers"] = best("diffbench", "sample_images_per_s") / best("diffusers", "sample_images_per_s")
    results["train_mfu"] = best("diffbench", "train_mfu")
    print(json.dumps({k: v for k, v in results.items() if k != "runs"}, indent=2))
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(results, handle, indent=2, sort_keys=True)
    if args.markdown:
        with open(args.markdown, "w") as handle:
            handle.write(render_markdown(results))


if __name__ == "__main__":
    main()
