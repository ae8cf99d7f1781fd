"""DVC stage: generate one planned sample set of one model (seeds 0..n−1).

Writes results/<model>/<run>/{samples.npz, generation.json}: images in seed order with their seeds
and the class each asked for, and the record (validated sampler settings, NFE counted while
sampling, timing with img/s, U-Net TFLOP/s and MFU, model hash, origin). A classifier-guided run
(``-cg<s>``) loads the model's noisy classifier, refused if it was trained for another schedule or T.
Under torchrun each GPU samples its share of the seeds and rank 0 gathers them. Scoring is the score
stage's job: rescoring never resamples.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import numpy as np
import torch

from diffbench import atomic, distributed, layout, samplers
from diffbench.cli import environment, stage_main, stage_parser, write_json
from diffbench.generation import ClassifierGuide, LoadedModel, class_labels, generate, is_deterministic, load_model
from diffbench.hashing import sha256_file
from diffbench.errors import DiffbenchError, ParamsError
from diffbench.flops import forward_flops, utilisation
from diffbench.noisy_classifier import load_noisy_classifier
from diffbench.plan import PLAN_COMMAND, load_stage_params
from diffbench.records import generation_record, gpu_shared_by
from diffbench.runs import Generation, passes_per_evaluation
from diffbench.sample_chunks import ChunkStore, signature


def gather_in_seed_order(local: np.ndarray, local_seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All processes' arrays concatenated and sorted by seed."""
    parts = distributed.gather_arrays(torch.from_numpy(local))
    seeds = distributed.gather_arrays(torch.from_numpy(local_seeds))
    all_seeds = torch.cat(seeds).numpy()
    order = np.argsort(all_seeds, kind="stable")
    return torch.cat(parts).numpy()[order], all_seeds[order]


def classifier_guide(generation: Generation, model: LoadedModel, device: torch.device
                     ) -> tuple[ClassifierGuide | None, dict | None]:
    """The noisy classifier and scale of a classifier-guided run, with its record entry; (None, None) otherwise."""
    if generation.classifier_scale is None:
        return None, None
    path = Path(generation.guide_file)
    classifier = load_noisy_classifier(path, model.schedule, device)
    if classifier.config.num_classes != model.num_classes:
        raise DiffbenchError(f"{path}: {classifier.config.num_classes} classes, the model has {model.num_classes}")
    record = {"scale": generation.classifier_scale, "classifier_sha256": sha256_file(path),
              "classifier_backward_passes_per_nfe": 1}
    return ClassifierGuide(classifier, generation.classifier_scale), record


@stage_main
def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__, "model", "run")
    parser.add_argument("--n", type=int, help="images to generate (dvc.yaml passes the plan's n)")
    args = parser.parse_args(argv)
    params = load_stage_params(args.params)
    generation = params.plan.generation(args.model, args.run)
    if args.n is not None and args.n != generation.n_samples:
        raise ParamsError(f"--n {args.n}: params plan {generation.n_samples} images for {generation.key}; "
                          f"run `{PLAN_COMMAND}`")
    settings = params.sampler_settings(generation.setting)
    sampling = params.section("sampling")
    model_path = layout.model_dir(generation.model.name) / "model.pt"
    shared_by = gpu_shared_by()  # fails fast on a bad value
    distributed.relaunch_with_torchrun("stages.generate", sys.argv[1:] if argv is None else argv)

    ctx = distributed.setup(os.environ.get("DIFFBENCH_DEVICE"))
    model = load_model(str(model_path), ctx.device, compile_model=sampling["compile"])
    guide, guide_record = classifier_guide(generation, model, ctx.device)
    seeds = list(range(generation.n_samples))
    model_sha256 = sha256_file(model_path)
    chunks = ChunkStore(layout.partial_dir(generation.model.name, generation.run), signature(
        model=model_sha256, kind=generation.kind, settings=dataclasses.asdict(settings), steps=generation.steps,
        guidance=generation.guidance, bf16=sampling["bf16"] and ctx.device.type == "cuda",
        batch_size=sampling["batch_size"], device=ctx.device.type, classifier=guide_record))
    generated = generate(
        model, generation.kind, settings, generation.steps, seeds, generation.guidance, sampling["batch_size"],
        bf16=sampling["bf16"], rank=ctx.rank, world_size=ctx.world_size,
        label=f"generate {generation.model.name} {generation.run}", chunks=chunks, guide=guide,
    )
    resumed = int(sum(distributed.gather_arrays(torch.tensor(generated.resumed))))
    images, image_seeds = gather_in_seed_order(generated.images, generated.seeds)
    seconds = float(max(distributed.gather_arrays(torch.tensor(generated.seconds))))
    if not ctx.is_main:
        distributed.cleanup()
        return
    check = seeds[: sampling["determinism_images"]]
    deterministic = None
    if check:
        deterministic = is_deterministic(model, generation.kind, settings, generation.steps, check,
                                         generation.guidance, sampling["bf16"], guide)
    out = layout.run_dir(generation.model.name, generation.run)
    out.mkdir(parents=True, exist_ok=True)
    labels = class_labels(torch.from_numpy(image_seeds), model.num_classes)
    asked = labels is not None and (generation.guidance is not None or guide is not None)  # unguided: no class
    sample_labels = labels.numpy() if asked else np.full(len(image_seeds), -1)
    atomic.write_with(out / "samples.npz", lambda handle: np.savez(handle, images=images, seeds=image_seeds,
                                                                   labels=sample_labels))
    chunks.clear()
    device = distributed.device_name(ctx.device)
    declared = samplers.expected_nfe(generation.kind, settings, model.schedule, generation.steps)
    rate = len(images) / seconds if seconds else None
    passes = generated.nfe * passes_per_evaluation(generation.guidance)  # U-Net passes only (not a classifier's)
    write_json(out / "generation.json", generation_record(
        generation, settings, samplers.label(generation.kind, settings), generated.nfe, declared, deterministic,
        timing={"seconds": seconds, "images_per_second": rate,
                "world_size": ctx.world_size, "device": device, "batch_size": sampling["batch_size"],
                "bf16": sampling["bf16"] and ctx.device.type == "cuda", "compile": sampling["compile"],
                "resumed_images": resumed,   # loaded from an interrupted run's batches; seconds time the rest
                "gpu_shared_by": shared_by}
        | utilisation(rate, forward_flops(model.net.config), device, passes),
        model={"sha256": model_sha256, "step": model.file.get("step")},
        environment=environment(), classifier_guidance=guide_record,
    ))
    print(f"{generation.model.name} {generation.run}: {len(images)} images, NFE {generated.nfe}, "
          f"{seconds:.1f} s ({len(images) / max(seconds, 1e-9):.1f} img/s on {ctx.world_size} x {device})")
    distributed.cleanup()


if __name__ == "__main__":
    main()
