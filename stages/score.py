"""DVC stage: score one generated sample set against its dataset's reference split.

Reads results/<model>/<run>/{samples.npz, generation.json}; writes metrics.json (the generation
record plus every metric with its 95% interval and the metrics' provenance) and grid.png.
"""

from __future__ import annotations

import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from diffbench import layout
from diffbench.cli import default_device, read_json, stage_main, stage_parser, write_json
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
    device = default_device()
    evaluator = build_evaluator(params, dataset, device)
    start = time.perf_counter()
    values = evaluator.score(images, requested)
    seconds = time.perf_counter() - start
    save_grid(images[: params.section("metrics")["grid_images"]], folder / "grid.png")
    write_json(folder / "metrics.json", score_record(
        record, values, evaluator.provenance(len(images)),
        {"seconds": seconds, "device": device_name(torch.device(device))},
    ))
    parts = ", ".join(f"{part} {part_seconds:.1f} s" for part, part_seconds in evaluator.seconds.items())
    print(f"{generation.model.name} {generation.run}: FID {values['fid']:.2f} P {values['precision']:.3f} "
          f"R {values['recall']:.3f} (n={len(images)}, scored in {seconds:.1f} s: {parts})")


if __name__ == "__main__":
    main()
