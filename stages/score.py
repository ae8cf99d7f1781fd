"""DVC stage: score one generated sample set against its dataset's reference split.

Reads results/<model>/<run>/{samples.npz, generation.json}; writes metrics.json (the generation
record plus every metric with its 95% interval and the metrics' provenance) and grid.png. On several
GPUs it relaunches under torchrun: each process extracts the Inception and classifier features of every
world_size-th image, rank 0 gathers them in image order and computes the metrics.
"""

from __future__ import annotations

import os
import sys
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np

from diffbench import distributed, layout
from diffbench.cli import read_json, stage_main, stage_parser, write_json
from diffbench.distributed import device_name
from diffbench.errors import DiffbenchError
from diffbench.evaluation import build_evaluator, check_inputs
from diffbench.grids import save_grid
from diffbench.plan import load_stage_params
from diffbench.records import score_record


def load_samples(path) -> tuple[np.ndarray, np.ndarray | None]:
    """Images and the classes they asked for (None: unguided); a missing, truncated or broken file
    fails in one line naming it and the command that rebuilds it."""
    rebuild = f"rebuild it with `{layout.rebuild_command(path)}`"
    if not Path(path).is_file():
        raise DiffbenchError(f"{path}: samples file not found; {rebuild}")
    try:
        with np.load(path, allow_pickle=False) as data:
            images, labels = data["images"], data["labels"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise DiffbenchError(f"{path}: not a readable samples file ({type(error).__name__}: {reason}); "
                             f"{rebuild}") from None
    if images.dtype != np.uint8 or images.ndim != 4 or labels.shape != images.shape[:1]:
        raise DiffbenchError(f"{path}: not a samples file (images {images.dtype} {images.shape}, labels "
                             f"{labels.shape}; expected uint8 N×H×W×C and N labels); {rebuild}")
    return images, (labels if len(labels) and labels.min() >= 0 else None)


@stage_main
def main(argv: list[str] | None = None) -> None:
    args = stage_parser(__doc__, "model", "run").parse_args(argv)
    params = load_stage_params(args.params)
    generation = params.plan.generation(args.model, args.run)
    dataset = generation.model.dataset
    check_inputs(params, dataset)  # fail fast on missing references or weights
    folder = layout.run_dir(generation.model.name, generation.run)
    record = read_json(folder / "generation.json")
    images, requested = load_samples(folder / "samples.npz")
    if len(images) != generation.n_samples:
        raise DiffbenchError(f"{folder / 'samples.npz'}: {len(images)} images, the plan asks for "
                             f"{generation.n_samples}; rebuild with `dvc repro -f generate@{generation.key}`")
    distributed.relaunch_with_torchrun("stages.score", sys.argv[1:] if argv is None else argv)
    ctx = distributed.setup(os.environ.get("DIFFBENCH_DEVICE"))
    device = str(ctx.device)
    evaluator = build_evaluator(params, dataset, device)
    start = time.perf_counter()
    features = gather_features(evaluator.extract(images[ctx.rank::ctx.world_size]))
    if not ctx.is_main:
        distributed.cleanup()
        return
    values = evaluator.score_features(features, images, requested)
    seconds = time.perf_counter() - start
    save_grid(images[: params.section("metrics")["grid_images"]], folder / "grid.png")
    write_json(folder / "metrics.json", score_record(
        record, values, evaluator.provenance(len(images)),
        {"seconds": seconds, "device": device_name(ctx.device), "world_size": ctx.world_size},
    ))
    parts = ", ".join(f"{part} {part_seconds:.1f} s" for part, part_seconds in evaluator.seconds.items())
    print(f"{generation.model.name} {generation.run}: FID {values['fid']:.2f} P {values['precision']:.3f} "
          f"R {values['recall']:.3f} (n={len(images)}, scored in {seconds:.1f} s: {parts})")
    distributed.cleanup()


def gather_features(local: dict) -> dict:
    """``Evaluator.extract``'s features of this process's images (every world_size-th, from its rank), as
    those of all images in order (each process extracts its share under torchrun)."""
    return {name: None if arrays is None else {key: distributed.gather_interleaved(value)
                                                for key, value in arrays.items()}
            for name, arrays in local.items()}


if __name__ == "__main__":
    main()
