"""DVC stage: Inception features of the reference split (computed once, cached as a DVC output),
and the real-data floor: the same metrics (Inception, reference classifier, CLIP) between training
images and that reference. Runs after the dataset's classifier stage."""

from __future__ import annotations

import time

import torch

from diffbench import layout
from diffbench.cli import (
    default_device,
    environment,
    stage_main,
    stage_parser,
    write_json,
)
from diffbench.config import load_params
from diffbench.data import load_split, take_subset
from diffbench.distributed import device_name
from diffbench.evaluation import build_evaluator
from diffbench.hashing import sha256_file
from diffbench.metrics.inception import load_inception
from diffbench.metrics.reference import reference_meta, save_reference


@stage_main
def main(argv: list[str] | None = None) -> None:
    args = stage_parser(__doc__, "dataset").parse_args(argv)
    params = load_params(args.params)
    metrics = params.section("metrics")
    params.dataset_entry(args.dataset)  # an unknown name fails here, before any work
    ref_path = layout.split_file(args.dataset, metrics["reference_split"])
    floor_split = "train" if metrics["reference_split"] == "test" else "test"
    floor_path = layout.split_file(args.dataset, floor_split)
    ref_images, _ = take_subset(*load_split(ref_path)[:2], metrics["reference_n"], params.seed,
                                "metrics.reference_n", ref_path)
    floor_images, floor_labels = take_subset(*load_split(floor_path)[:2], metrics["floor_n"], params.seed,
                                             "metrics.floor_n", floor_path)
    device = default_device()
    extractor = load_inception(metrics.get("inception_weights"), device)

    start = time.perf_counter()
    features = extractor.extract(ref_images, metrics["batch_size"])
    seconds = time.perf_counter() - start  # printed and in the floor record; never in the features file (a DVC output)
    meta = reference_meta(args.dataset, metrics["reference_split"], len(ref_images), sha256_file(ref_path), extractor)
    out = layout.reference_file(args.dataset)
    save_reference(out, features, meta)
    print(f"{args.dataset}: {len(ref_images)} reference features in {seconds:.0f} s -> {out}")

    evaluator = build_evaluator(params, args.dataset, device, extractor)
    values = evaluator.score(floor_images, floor_labels)  # real images show their own class
    write_json(layout.floor_dir(args.dataset) / "metrics.json", {
        "dataset": args.dataset, "model": layout.FLOOR_MODEL, "run": layout.FLOOR_RUN, "family": "floor",
        "description": f"{len(floor_images)} {floor_split} images (seeded subset) vs the reference split",
        "metrics": values,
        "provenance": evaluator.provenance(len(floor_images)) | {
            "samples": {"split": floor_split, "split_sha256": sha256_file(floor_path)},
            "device": device_name(torch.device(device)), "environment": environment(),
            "reference_features_seconds": seconds,
        },
    })
    print(f"{args.dataset}: real-data floor FID {values['fid']:.3f} (n={len(floor_images)})")


if __name__ == "__main__":
    main()
