"""DVC stage: the variational bound (bits/dim) of the model <dataset>-<schedule> on a data split.

Writes results/<model>/elbo/metrics.json: the mean bound over params ``elbo.n_images`` images with
its 95% t-interval and the mean of L_T, L_0 and the middle sum (see ``diffbench.elbo``). Under
torchrun each GPU bounds its share of the images; rank 0 gathers them in image order and writes.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import torch

from diffbench import distributed, layout
from diffbench.cli import environment, stage_main, stage_parser, write_json
from diffbench.config import load_params
from diffbench.data import load_split
from diffbench.elbo_settings import ElboSettings, resolve_k
from diffbench.elbo import (
    ElboTerms,
    check_inputs,
    evaluate,
    summarize,
)
from diffbench.generation import load_model
from diffbench.hashing import sha256_file


def gather_terms(seeds: np.ndarray, terms: ElboTerms) -> ElboTerms:
    """Every process's per-image terms, in seed (= image) order."""
    local = torch.from_numpy(np.column_stack([seeds.astype(np.float64), terms.prior, terms.decoder, terms.middle]))
    table = torch.cat(distributed.gather_arrays(local)).numpy()
    table = table[np.argsort(table[:, 0], kind="stable")]
    return ElboTerms(table[:, 1], table[:, 2], table[:, 3])


@stage_main
def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__, "dataset", "schedule")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    spec = params.model(args.dataset, args.schedule)
    settings = ElboSettings.from_params(params.raw.get("elbo"), params.timesteps)
    model_path = layout.model_dir(spec.name) / "model.pt"
    data_path = layout.split_file(spec.dataset, settings.split)
    images, labels, _ = load_split(data_path)
    model = load_model(str(model_path), torch.device("cpu"))
    check_inputs(model, images, labels, settings)  # fail fast, before any forward pass
    distributed.relaunch_with_torchrun("stages.elbo", sys.argv[1:] if argv is None else argv)

    ctx = distributed.setup(os.environ.get("DIFFBENCH_DEVICE"))
    model.net.to(ctx.device)
    local = evaluate(model, images, labels, settings, rank=ctx.rank, world_size=ctx.world_size,
                     label=f"ELBO {spec.name}")
    terms = gather_terms(local.seeds, local.terms)
    seconds = float(max(distributed.gather_arrays(torch.tensor(local.seconds))))
    if not ctx.is_main:
        distributed.cleanup()
        return
    values = summarize(terms, params.section("metrics")["interval_level"])
    k = resolve_k(settings.timesteps_per_image, model.schedule.timesteps)
    device = distributed.device_name(ctx.device)
    write_json(layout.elbo_file(spec.name), {
        "dataset": spec.dataset, "model": spec.name, "schedule": spec.schedule, "split": settings.split,
        "metrics": values, "n_images": len(terms.total), "units": "bits/dim",
        "interval": "95% t-interval over images: mean +/- t(0.975, n-1) * sd / sqrt(n), per-image estimates i.i.d.",
        "timesteps": model.schedule.timesteps, "K": k, "exact": k == model.schedule.timesteps - 1,
        "variance": settings.variance, "clip_x0": settings.clip_x0, "conditioning": settings.conditioning,
        "seeds": f"0-{len(terms.total) - 1} (image index)",
        "bf16": settings.bf16 and ctx.device.type == "cuda", "batch_size": settings.batch_size,
        "device": device, "world_size": ctx.world_size, "seconds": seconds,
        "model_sha256": sha256_file(model_path), "model_step": model.file.get("step"),
        "data_sha256": sha256_file(data_path), "environment": environment(),
    })
    print(f"{spec.name} {settings.split}: {values['bpd']:.4f} bits/dim [{values['bpd_lo']:.4f}, {values['bpd_hi']:.4f}] "
          f"(n={len(terms.total)}, K={k}, {settings.variance}; {seconds:.1f} s on {ctx.world_size} x {device})")
    distributed.cleanup()


if __name__ == "__main__":
    main()
