"""Metric records (results/**/metrics.json) → the curriculum's tables, plots, grids and summary.json.

Tables (Markdown + CSV per dataset under reports/tables/):
  (a) ddpm_vs_ddim: method | steps | FID | KID | precision | recall | s/image | deterministic?
  (b) cfg: guidance scale vs FID / KID / precision / recall (IS when the weights have logits)
  (c) schedules: schedule × run FID
Plots (reports/plots/): FID vs steps, quality vs guidance scale. Grids (reports/grids/): one per model.
Every table carries n, device and the metric provenance; reports/summary.json is the nested
dataset → model → run → metric file that `dvc metrics diff` compares.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from diffbench.errors import DiffbenchError  # noqa: E402

SUMMARY_METRICS = ("fid", "kid_mean", "kid_std", "precision", "recall", "inception_score_mean", "seconds_per_image")
DATASET_NOTES = {
    "cifar10-jpeg": "cifar10-jpeg is a JPEG (quality ~75) mirror of CIFAR-10: its numbers are not comparable "
    "with published CIFAR-10 figures.",
}


def _method(kind: str, options: dict) -> str:
    if kind == "ddpm":
        return f"DDPM (σ²={'β' if options.get('variance', 'large') == 'large' else 'β̃'})"
    if kind == "ddim":
        label = f"DDIM η={options.get('eta', 0.0):g}"
        return label + (" quadratic" if options.get("spacing") == "quadratic" else "")
    return kind


def flatten(record: dict, path: Path) -> dict:
    """One metrics.json → one flat row."""
    try:
        metrics, provenance = record["metrics"], record["provenance"]
        sampler = record.get("sampler") or {}
        timing = record.get("timing") or {}
        return {
            "dataset": record["dataset"], "model": record["model"], "schedule": record.get("schedule"),
            "family": record["family"], "run": record["run"],
            "method": _method(sampler["kind"], sampler.get("options", {})) if sampler else "real data (train vs test)",
            "steps": sampler.get("steps"), "guidance_scale": record.get("guidance_scale"),
            "deterministic": record.get("deterministic"),
            **{k: metrics.get(k) for k in ("fid", "kid_mean", "kid_std", "precision", "recall",
                                            "inception_score_mean", "inception_score_std")},
            "is_unavailable": metrics.get("inception_score_unavailable"),
            "seconds_per_image": timing.get("seconds_per_image"),
            "n_samples": provenance["n_samples"], "device": provenance.get("device"),
            "reference": f"{provenance['reference']['split']} n={provenance['reference']['n']}",
            "weights_sha256": provenance.get("weights_sha256"), "seeds": provenance.get("seeds"),
            "backend": f"{provenance.get('backend')} {provenance.get('version')}",
        }
    except (KeyError, TypeError) as error:
        raise DiffbenchError(f"{path}: not a diffbench metrics record (missing {error})") from None


def load_records(results: Path) -> pd.DataFrame:
    """Every metrics.json under ``results`` as one DataFrame (fails naming a broken file)."""
    rows = []
    for path in sorted(Path(results).glob("*/*/metrics.json")):
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise DiffbenchError(f"{path}: not valid JSON ({error.msg})") from None
        rows.append(flatten(record, path) | {"grid": str(path.parent / "grid.png")})
    if not rows:
        raise DiffbenchError(f"{results}: no metrics.json files; run the sample stages first")
    return pd.DataFrame(rows)


def _fmt(value: object, digits: int = 2) -> str:
    if value is None or (not isinstance(value, (str, bool)) and pd.isna(value)):
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _kid(row: pd.Series) -> str:
    if pd.isna(row["kid_mean"]):
        return "–"
    return f"{row['kid_mean'] * 1e3:.2f} ± {row['kid_std'] * 1e3:.2f}"


def _provenance_lines(frame: pd.DataFrame, dataset: str) -> list[str]:
    lines = [
        f"- dataset: **{dataset}**; reference: {', '.join(sorted(frame['reference'].unique()))}",
        "- samples per row: n as given; seeds 0..n−1 (one seed per image)",
        f"- metric backend: {', '.join(sorted(frame['backend'].unique()))}, Inception weights sha256 "
        + ", ".join(f"`{str(w)[:16]}…`" for w in sorted(frame["weights_sha256"].astype(str).unique())),
        f"- device(s): {', '.join(sorted(frame['device'].astype(str).unique()))}",
    ]
    if dataset in DATASET_NOTES:
        lines.append(f"- note: {DATASET_NOTES[dataset]}")
    if frame["is_unavailable"].notna().any():
        lines.append(f"- Inception Score: unavailable — {frame['is_unavailable'].dropna().iloc[0]}")
    return lines


def write_table(table: pd.DataFrame, stem: Path, title: str, notes: list[str]) -> None:
    """``stem``.csv (raw values) and ``stem``.md (formatted, with provenance notes)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(stem.with_suffix(".csv"), index=False)
    shown = table.copy()
    for column in shown.columns:
        if column in ("steps", "n_samples"):
            shown[column] = shown[column].map(lambda v: "–" if pd.isna(v) else str(int(v)))
        else:
            digits = 4 if column in ("precision", "recall", "s/image") else 2
            shown[column] = shown[column].astype(object).map(lambda v: _fmt(v, digits))
    shown = shown.rename(columns={"fid": "FID", "inception_score_mean": "IS", "n_samples": "n"})
    text = [f"# {title}", "", *notes, "", shown.to_markdown(index=False), ""]
    stem.with_suffix(".md").write_text("\n".join(text))


def steps_table(frame: pd.DataFrame) -> pd.DataFrame:
    """(a) DDPM vs DDIM by steps, with the real-data floor first."""
    rows = frame[frame["family"].isin(["sweep", "ablation", "floor"])].copy()
    rows["KID×1e3"] = rows.apply(_kid, axis=1)
    rows["family"] = pd.Categorical(rows["family"], ["floor", "sweep", "ablation"])
    rows = rows.sort_values(["family", "schedule", "method", "steps"], na_position="first", kind="stable")
    return rows.rename(columns={"seconds_per_image": "s/image", "deterministic": "deterministic?"})[
        ["schedule", "method", "steps", "fid", "KID×1e3", "precision", "recall", "s/image",
         "deterministic?", "n_samples", "device"]
    ]


def cfg_table(frame: pd.DataFrame) -> pd.DataFrame:
    """(b) guidance scale vs quality (IS column only where IS was measured)."""
    rows = frame[frame["family"] == "guidance"].copy()
    rows["scale"] = rows["guidance_scale"].map(lambda s: "unguided" if pd.isna(s) else f"{s:g}")
    rows["order"] = rows["guidance_scale"].fillna(-1.0)
    rows["KID×1e3"] = rows.apply(_kid, axis=1)
    columns = ["schedule", "method", "steps", "scale", "fid", "KID×1e3", "precision", "recall"]
    if rows["inception_score_mean"].notna().any():
        columns.append("inception_score_mean")
    return rows.sort_values("order")[columns + ["n_samples", "device"]]


def schedules_table(frame: pd.DataFrame) -> pd.DataFrame:
    """(c) FID of every schedule × sweep run."""
    rows = frame[frame["family"] == "sweep"]
    table = rows.pivot_table(index="schedule", columns="run", values="fid", aggfunc="first")
    order = sorted(table.columns, key=lambda r: (r.rpartition("-")[0], int(r.rpartition("-")[2])))
    table = table[order].reset_index()
    table.columns.name = None
    n = rows["n_samples"].unique()
    return table.assign(n_samples=", ".join(str(v) for v in sorted(n)))


def plot_fid_vs_steps(frame: pd.DataFrame, path: Path, dataset: str) -> None:
    """FID against sampling steps, one line per schedule × method."""
    rows = frame[frame["family"].isin(["sweep", "ablation"])]
    fig, ax = plt.subplots(figsize=(6, 4))
    for (schedule, method), group in rows.groupby(["schedule", "method"]):
        group = group.sort_values("steps")
        ax.plot(group["steps"], group["fid"], marker="o", label=f"{schedule}, {method}")
    floor = frame[frame["family"] == "floor"]
    if len(floor):
        ax.axhline(floor["fid"].iloc[0], color="gray", linestyle="--", label="real data floor")
    ax.set_xscale("log")
    ax.set_xlabel("sampling steps")
    ax.set_ylabel("FID (lower is better)")
    ax.set_title(f"{dataset}: FID vs steps (n={', '.join(map(str, sorted(rows['n_samples'].unique())))})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_quality_vs_cfg(frame: pd.DataFrame, path: Path, dataset: str) -> None:
    """FID and precision/recall against the guidance scale (unguided drawn at −1)."""
    rows = frame[frame["family"] == "guidance"].copy()
    rows["x"] = rows["guidance_scale"].fillna(-1.0)
    rows = rows.sort_values("x")
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.plot(rows["x"], rows["fid"], marker="o")
    left.set_xlabel("guidance scale s (−1 = unguided)")
    left.set_ylabel("FID")
    right.plot(rows["x"], rows["precision"], marker="o", label="precision")
    right.plot(rows["x"], rows["recall"], marker="s", label="recall")
    right.set_xlabel("guidance scale s (−1 = unguided)")
    right.legend()
    fig.suptitle(f"{dataset}: quality vs classifier-free guidance (n={', '.join(map(str, sorted(rows['n_samples'].unique())))})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summary(frame: pd.DataFrame) -> dict:
    """dataset → model → run → {metric: number, n_samples, device}."""
    result: dict = {}
    for row in frame.itertuples(index=False):
        entry = {k: getattr(row, k) for k in SUMMARY_METRICS if not pd.isna(getattr(row, k))}
        entry.update(n_samples=int(row.n_samples), device=str(row.device))
        if row.deterministic is not None and not pd.isna(row.deterministic):
            entry["deterministic"] = bool(row.deterministic)
        result.setdefault(row.dataset, {}).setdefault(row.model, {})[row.run] = entry
    return result


def build_reports(results: Path, out: Path) -> list[Path]:
    """Write every table, plot, grid, index.md and summary.json; returns the files written."""
    frame = load_records(results)
    for sub in ("tables", "plots", "grids"):
        shutil.rmtree(out / sub, ignore_errors=True)
        (out / sub).mkdir(parents=True, exist_ok=True)
    index = ["# diffbench reports", "", "Generated by `stages/report.py` from results/**/metrics.json; do not edit.", ""]
    for dataset, rows in frame.groupby("dataset", sort=True):
        notes = _provenance_lines(rows, dataset)
        index += [f"## {dataset}", "", *notes, ""]
        tables = {
            "ddpm_vs_ddim": (steps_table(rows), "DDPM vs DDIM: quality by sampling steps"),
            "cfg": (cfg_table(rows), "Classifier-free guidance scale vs quality"),
            "schedules": (schedules_table(rows), "Noise schedules compared: FID by run"),
        }
        for name, (table, title) in tables.items():
            if len(table):
                write_table(table, out / "tables" / f"{name}_{dataset}", f"{dataset}: {title}", notes)
                index.append(f"- [{title}](tables/{name}_{dataset}.md)")
        plot_fid_vs_steps(rows, out / "plots" / f"fid_vs_steps_{dataset}.png", dataset)
        index.append(f"- ![FID vs steps](plots/fid_vs_steps_{dataset}.png)")
        if (rows["family"] == "guidance").any():
            plot_quality_vs_cfg(rows, out / "plots" / f"quality_vs_cfg_{dataset}.png", dataset)
            index.append(f"- ![quality vs CFG](plots/quality_vs_cfg_{dataset}.png)")
        sweep = rows[rows["family"] == "sweep"].dropna(subset=["fid"])
        for model, group in sweep.groupby("model"):
            best = group.sort_values("fid").iloc[0]
            target = out / "grids" / f"{model}.png"
            if Path(best["grid"]).is_file():
                shutil.copyfile(best["grid"], target)
                index.append(f"- grid {model} ({best['run']}, its lowest-FID run, FID {best['fid']:.2f}): "
                             f"![{model}](grids/{model}.png)")
        index.append("")
    (out / "index.md").write_text("\n".join(index))
    summary_path = out / "summary.json"
    summary_path.write_text(json.dumps(summary(frame), indent=2, sort_keys=True) + "\n")
    return sorted(p for p in out.rglob("*") if p.is_file())
