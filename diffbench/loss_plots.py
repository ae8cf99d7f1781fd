"""Training-loss curves of a dataset's reference models (one per noise schedule) in one PNG.

Reads each model's ``reference_models/<model>/loss.tsv`` (columns step, loss, lr; one row per
``log_every`` steps) and draws loss against step on a log y-axis: each schedule's logged values
faint, their trailing rolling mean (window named in the title) bold, so the schedules' training
curves compare at a glance (the curriculum's schedule comparison). Models without a loss.tsv, or
with no rows yet, are left out. Beside them: the noisy classifiers' test accuracy by t
(``accuracy_by_t.tsv``, with its 95% interval), the training curve of classifier guidance.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from diffbench import atomic, layout  # noqa: E402
from diffbench.errors import DiffbenchError  # noqa: E402

MAX_WINDOW = 10  # logged points in the rolling mean at most


def save_figure(fig, path: str | Path) -> None:
    """A matplotlib figure as PNG (120 dpi), written atomically: a kill leaves the old file or the new one."""
    atomic.write_with(path, lambda handle: fig.savefig(handle, format="png", dpi=120))


def read_loss(path: Path) -> pd.DataFrame:
    """The step and loss columns of a loss.tsv, finite positive losses only (a log axis)."""
    try:
        frame = pd.read_csv(path, sep="\t")
    except (OSError, ValueError) as exc:
        raise DiffbenchError(f"{path}: cannot read the loss curve ({type(exc).__name__}: {exc})") from exc
    missing = {"step", "loss"} - set(frame.columns)
    if missing:
        raise DiffbenchError(f"{path}: no {', '.join(sorted(missing))} column (expected step, loss, lr)")
    frame = pd.DataFrame({key: pd.to_numeric(frame[key], errors="coerce").astype(float) for key in ("step", "loss")})
    return frame[np.isfinite(frame["loss"]) & (frame["loss"] > 0) & frame["step"].notna()].sort_values("step")


def window_for(lengths: list[int]) -> int:
    """Rolling-mean window in logged points: a tenth of the longest curve, between 1 and MAX_WINDOW."""
    return int(min(MAX_WINDOW, max(1, max(lengths, default=0) // 10)))


def plot_loss_curves(curves: dict[str, Path], path: Path, dataset: str) -> bool:
    """Plot every ``label -> loss.tsv`` that exists and has rows into ``path``; False (nothing written) if none."""
    frames = {label: read_loss(tsv) for label, tsv in curves.items() if tsv.is_file()}
    frames = {label: frame for label, frame in frames.items() if len(frame)}
    if not frames:
        return False
    window = window_for([len(frame) for frame in frames.values()])
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for i, (label, frame) in enumerate(frames.items()):
        colour = f"C{i}"
        smooth = frame["loss"].rolling(window, min_periods=1).mean()
        ax.plot(frame["step"], frame["loss"], color=colour, alpha=0.25, linewidth=0.8)
        ax.plot(frame["step"], smooth, color=colour, linewidth=1.8, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("loss (ε-prediction MSE)")
    how = "logged values" if window == 1 else f"rolling mean of {window} logged values; faint: raw"
    ax.set_title(f"{dataset}: training loss by schedule ({how})", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(title="schedule")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path)
    plt.close(fig)
    return True


def plot_dataset_losses(models, dataset: str, path: Path) -> bool:
    """The loss curves of ``models`` (``diffbench.runs.Model``) trained on ``dataset``, labelled by schedule."""
    curves = {m.schedule: layout.model_dir(m.name) / "loss.tsv" for m in models if m.dataset == dataset}
    return plot_loss_curves(curves, path, dataset)


def plot_noisy_classifier_accuracy(models, dataset: str, path: Path) -> bool:
    """Test accuracy by t (95% Wilson band) of the noisy classifiers that guide ``models`` of ``dataset``;
    False (nothing written) when none has been trained."""
    tables = {m.schedule: layout.noisy_classifier_dir(m.name) / "accuracy_by_t.tsv"
              for m in models if m.dataset == dataset}
    tables = {schedule: table for schedule, table in tables.items() if table.is_file()}
    if not tables:
        return False
    fig, ax = plt.subplots(figsize=(6.2, 3.8))
    for schedule, table in tables.items():
        frame = pd.read_csv(table, sep="\t")
        ax.plot(frame["t"], frame["accuracy"], marker="o", markersize=3, label=f"{schedule} (n={frame['n'].iloc[0]})")
        ax.fill_between(frame["t"], frame["lo"], frame["hi"], alpha=0.25)
    ax.set_xlabel("diffusion step t (noisier →)")
    ax.set_ylabel("test accuracy on x_t")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{dataset}: noisy classifier of classifier guidance, accuracy by t (95% intervals)", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(title="schedule", fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path)
    plt.close(fig)
    return True
