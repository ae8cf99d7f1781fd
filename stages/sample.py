"""DVC stage: sample one run of one model (seeds 0..n−1) and score it against the reference split.

Writes results/<model>/<run id>/{samples.npz, grid.png, metrics.json}. Under torchrun each GPU
samples its share of the seeds; rank 0 gathers them, checks determinism and computes the metrics.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import torch

from diffbench import distributed, layout
from diffbench.cli import environment, stage_main, stage_parser, write_json
from diffbench.config import load_params
from diffbench.evaluation import build_evaluator, check_inputs
from diffbench.generation import generate, is_deterministic, load_model
from diffbench.grids import save_grid
from diffbench.hashing import sha256_file

FAMILIES = ("sweep", "ablation", "guidance")


def gather_in_seed_order(local: np.ndarray, local_seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All processes' arrays concatenated and sorted by seed."""
    parts = distributed.gather_arrays(torch.from_numpy(local))
    seeds = distributed.gather_arrays(torch.from_numpy(local_seeds))
    all_seeds = torch.cat(seeds).numpy()
    order = np.argsort(all_seeds, kind="stable")
    return torch.cat(parts).numpy()[order], all_seeds[order]


@stage_main
def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__, "dataset", "schedule")
    parser.add_argument("run", help="<sampler setting>-<steps>, e.g. ddim-50")
    parser.add_argument("--guidance", default="default", help="scale >= 0 or 'none'; default: sampling.guidance")
    parser.add_argument("--family", choices=FAMILIES, default="sweep")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    spec = params.model(args.dataset, args.schedule)
    run = params.run(args.run, args.guidance)
    settings = run.settings
    sampling, metrics = params.section("sampling"), params.section("metrics")
    model_path = layout.model_dir(spec.name) / "model.pt"
    check_inputs(params, spec.dataset)  # fail fast, before sampling, on missing references or weights
    distributed.relaunch_with_torchrun("stages.sample", sys.argv[1:] if argv is None else argv)

    ctx = distributed.setup(os.environ.get("DIFFBENCH_DEVICE"))
    model = load_model(str(model_path), ctx.device, compile_model=sampling["compile"])
    # Rank 0 scores: load every metric model now, so broken weights fail before minutes of sampling.
    evaluator = build_evaluator(params, spec.dataset, str(ctx.device)) if ctx.is_main else None
    seeds = list(range(sampling["n_samples"]))
    generated = generate(
        model, run.kind, settings, run.steps, seeds, run.guidance, sampling["batch_size"],
        bf16=sampling["bf16"], rank=ctx.rank, world_size=ctx.world_size,
    )
    images, image_seeds = gather_in_seed_order(generated.images, generated.seeds)
    seconds = float(max(distributed.gather_arrays(torch.tensor(generated.seconds))))
    if not ctx.is_main:
        distributed.cleanup()
        return
    check = seeds[: sampling["determinism_images"]]
    deterministic = None
    if check:
        deterministic = is_deterministic(model, run.kind, settings, run.steps, check, run.guidance, sampling["bf16"])
    # The guidance sweep names its folder by the scale exactly as params.yaml spells it (as dvc.yaml does).
    run_id = f"{run.name}-cfg{args.guidance}" if args.family == "guidance" else run.name
    out = layout.run_dir(spec.name, run_id)
    out.mkdir(parents=True, exist_ok=True)
    labels = image_seeds % model.num_classes if model.num_classes else np.full(len(image_seeds), -1)
    np.savez(out / "samples.npz", images=images, seeds=image_seeds, labels=labels)
    save_grid(images[: metrics["grid_images"]], out / "grid.png")

    requested = labels if run.guidance is not None and model.num_classes else None  # unguided: no class asked
    values = evaluator.score(images, requested)
    device = distributed.device_name(ctx.device)
    write_json(out / "metrics.json", {
        "dataset": spec.dataset, "model": spec.name, "schedule": spec.schedule, "family": args.family,
        "run": out.name, "sampler": {"setting": run.setting, "kind": run.kind, "steps": run.steps, "options": run.options},
        "guidance_scale": run.guidance, "deterministic": deterministic,
        "timing": {
            "seconds": seconds, "world_size": ctx.world_size, "device": device,
            "seconds_per_image": seconds * ctx.world_size / len(images), "bf16": sampling["bf16"] and ctx.device.type == "cuda",
            "batch_size": sampling["batch_size"],
        },
        "metrics": values,
        "provenance": evaluator.provenance(len(images)) | {
            "seeds": f"0-{len(images) - 1}", "device": device, "model_sha256": sha256_file(model_path),
            "model_step": model.file.get("step"), "environment": environment(),
        },
    })
    print(f"{spec.name} {out.name}: FID {values['fid']:.2f} P {values['precision']:.3f} R {values['recall']:.3f} "
          f"(n={len(images)}, {seconds / len(images) * ctx.world_size:.4f} s/img on {device})")
    distributed.cleanup()


if __name__ == "__main__":
    main()
