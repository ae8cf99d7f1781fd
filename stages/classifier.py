"""DVC stage: train the reference classifier of <dataset> (one GPU or the CPU), score it on the test
split, and cache its features of the reference split.

Writes reference_models/<dataset>-classifier/{classifier.pt, classifier.json, model_card.md} and
features/<dataset>/classifier_reference.npz. A test accuracy below classifier.<dataset>.min_accuracy
is recorded (json and card), not an error.
"""

from __future__ import annotations

from dataclasses import asdict

from diffbench import atomic, layout
from diffbench.classifier import train_classifier
from diffbench.classifier_features import load_classifier, save_classifier
from diffbench.classifier_card import render_card
from diffbench.classifier_config import config_for
from diffbench.cli import (
    default_device,
    environment,
    stage_main,
    stage_parser,
    write_json,
)
from diffbench.config import load_params
from diffbench.data import load_split, take_subset
from diffbench.hashing import sha256_file
from diffbench.metrics.intervals import wilson_interval
from diffbench.metrics.reference import reference_meta, save_reference
from diffbench.unet import count_parameters


RUN_FACTS = ("seconds", "images_per_second", "device")  # differ run to run or machine to machine


def file_provenance(record: dict) -> dict:
    """What classifier.pt stores: the record without timings, device and environment (those stay in
    classifier.json), so the same inputs give the same bytes and the stages that read the file stay current."""
    result = {k: v for k, v in record["result"].items() if k not in RUN_FACTS}
    result["history"] = [{k: v for k, v in row.items() if k not in RUN_FACTS} for row in result["history"]]
    return {k: v for k, v in record.items() if k != "environment"} | {"result": result}


def split_record(path, images) -> dict:
    """Where a split came from: path, sha256, size."""
    return {"path": str(path), "sha256": sha256_file(path), "n": len(images)}


@stage_main
def main(argv: list[str] | None = None) -> None:
    args = stage_parser(__doc__, "dataset").parse_args(argv)
    params = load_params(args.params)
    params.dataset_entry(args.dataset)  # an unknown name fails here, before any work
    config = config_for(params.raw.get("classifier"), args.dataset)
    metrics = params.section("metrics")
    paths = {split: layout.split_file(args.dataset, split) for split in ("train", "test")}
    train_images, train_labels, class_names = load_split(paths["train"])
    test_images, test_labels, _ = load_split(paths["test"])
    ref_path = layout.split_file(args.dataset, metrics["reference_split"])
    ref_images, _ = take_subset(*load_split(ref_path)[:2], metrics["reference_n"], params.seed,
                                "metrics.reference_n", ref_path)  # the images of the Inception reference
    device = default_device()

    def log(row: dict) -> None:
        print(f"{args.dataset} classifier epoch {row['epoch']}/{config.epochs} loss {row['train_loss']:.4f} "
              f"train acc {row['train_accuracy']:.4f} {row['images_per_second']:.0f} img/s", flush=True)

    model, result = train_classifier(
        config, (train_images, train_labels), (test_images, test_labels), len(class_names), params.seed, device, log
    )
    out = layout.classifier_dir(args.dataset)
    met = None if config.min_accuracy is None else result.test_accuracy >= config.min_accuracy
    record = {
        "dataset": args.dataset, "seed": params.seed, "classifier": asdict(config), "net": asdict(model.net),
        "parameters": count_parameters(model), "result": asdict(result),
        "test_accuracy_interval": list(wilson_interval(result.test_correct, result.test_n)[1:]),
        "min_accuracy": config.min_accuracy, "meets_min_accuracy": met,
        "data": {split: split_record(path, images) for (split, path), images in
                 zip(paths.items(), (train_images, test_images))} | {"class_names": class_names},
        "environment": environment(),
    }
    save_classifier(out / "classifier.pt", model, file_provenance(record))
    extractor = load_classifier(out / "classifier.pt", device, config.bf16)
    record["weights_sha256"] = extractor.weights_sha256
    write_json(out / "classifier.json", record)
    atomic.write_text(out / "model_card.md", render_card(record))

    features = extractor.extract(ref_images, metrics["batch_size"])
    meta = reference_meta(args.dataset, metrics["reference_split"], len(ref_images), sha256_file(ref_path), extractor)
    save_reference(layout.classifier_reference_file(args.dataset), features, meta)
    verdict = "" if met is None else (" (meets the minimum)" if met else f" (BELOW the minimum {config.min_accuracy})")
    print(f"{args.dataset}: classifier test accuracy {result.test_accuracy:.4f}{verdict}, "
          f"{result.images_per_second:.0f} img/s on {result.device} -> {out}")


if __name__ == "__main__":
    main()
