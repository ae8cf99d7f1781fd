"""Where each stage's files live, relative to the profile folder (the folder of dvc.yaml).

One place for the paths, so dvc.yaml, stages and reports agree; dvc.yaml spells the same paths.
"""

from __future__ import annotations

from pathlib import Path

REPORTS = Path("reports")
RESULTS = Path("results")
FLOOR_MODEL = "real-data"
FLOOR_RUN = "train-vs-test"


def data_dir(dataset: str) -> Path:
    """Prepared splits of a dataset."""
    return Path("data") / dataset


def split_file(dataset: str, split: str) -> Path:
    """One prepared split (uint8 images, labels, class names)."""
    return data_dir(dataset) / f"{split}.npz"


def reference_file(dataset: str) -> Path:
    """Cached Inception features of the reference split."""
    return Path("features") / dataset / "reference.npz"


def model_dir(model: str) -> Path:
    """A reference model's files: model.pt, checkpoint.pt, loss.tsv, train.json, model_card.md."""
    return Path("reference_models") / model


def noisy_classifier_dir(model: str) -> Path:
    """The noisy classifier that guides ``model`` (classifier guidance): noisy_classifier.pt, its card and curves."""
    return model_dir(f"{model}-noisy-classifier")


def run_dir(model: str, run_id: str) -> Path:
    """One sampling run's files: samples.npz, grid.png, metrics.json."""
    return RESULTS / model / run_id


def partial_dir(model: str, run_id: str) -> Path:
    """An interrupted generation's finished batches (not a DVC output; removed once samples.npz exists)."""
    return run_dir(model, run_id) / "partial"


def floor_dir(dataset: str) -> Path:
    """The real-data floor: training images scored against the reference split."""
    return run_dir(f"{dataset}-{FLOOR_MODEL}", FLOOR_RUN)


def classifier_dir(dataset: str) -> Path:
    """A dataset's reference classifier: classifier.pt, classifier.json, model_card.md."""
    return Path("reference_models") / f"{dataset}-classifier"


def classifier_reference_file(dataset: str) -> Path:
    """Cached reference-classifier features and logits of the reference split."""
    return Path("features") / dataset / "classifier_reference.npz"


def elbo_file(model: str) -> Path:
    """A model's variational bound (bits/dim) on the test split."""
    return RESULTS / model / "elbo" / "metrics.json"


def rebuild_command(path: str | Path) -> str:
    """The command that rebuilds a pipeline file, for one-line errors about a missing or damaged one:
    ``dvc repro -f <stage that writes it>`` (the stage's own name when ``path`` follows this layout)."""
    parts = Path(path).parts
    name = parts[-1] if parts else ""
    folder = parts[-2] if len(parts) >= 2 else ""
    if name in ("model.pt", "checkpoint.pt", "loss.tsv", "train.json") and "reference_models" in parts:
        if folder.endswith("-classifier"):
            return f"dvc repro -f classifier@{folder.removesuffix('-classifier')}"
        return f"dvc repro -f train@{folder}"
    if name in ("classifier.pt", "classifier.json") and folder.endswith("-classifier"):
        return f"dvc repro -f classifier@{folder.removesuffix('-classifier')}"
    if name == "classifier_reference.npz" and "features" in parts:
        return f"dvc repro -f classifier@{folder}"
    if name == "reference.npz" and "features" in parts:
        return f"dvc repro -f reference@{folder}"
    if name in ("samples.npz", "generation.json") and len(parts) >= 4 and parts[-4] == RESULTS.name:
        return f"dvc repro -f generate@{parts[-3]}.{folder}"
    if name in ("train.npz", "test.npz", "provenance.json") and "data" in parts:
        return f"dvc repro -f prepare@{folder}"
    return "dvc repro -f <the stage that writes it>"
