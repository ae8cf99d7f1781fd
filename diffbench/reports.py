"""Metric records (results/**/metrics.json) → the curriculum's tables, plots, grids and summary.json.

Tables (Markdown + CSV per dataset under reports/tables/), every number as value [95% interval]:
  (a) ddpm_vs_ddim: method | steps | FID | KID | precision | recall | classifier FID | s/image | deterministic?
  (b) cfg: guidance scale vs FID / IS / CLIP / precision / recall / class accuracy / classifier FID and IS
  (c) schedules: schedule × run FID
  (d) likelihood: the variational bound in bits/dim per schedule (when the ELBO stage ran)
A metric without a number (IS without logits, CLIP without weights, ...) gets no column, only a note
with the reason. In each column the best row is bold and rows whose interval overlaps it are marked ≈.
Plots (reports/plots/): FID vs steps, quality vs guidance scale (with intervals). Grids: one per model.
Every table carries n, device and the metric provenance; reports/summary.json is the nested
dataset → model → run → metric file (m, m_lo, m_hi) that `dvc metrics diff` compares.
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

# Metrics with a 95% interval (m, m_lo, m_hi in every record): key -> (column title, higher is better, digits).
INTERVAL_METRICS = {
    "fid": ("FID", False, 2),
    "kid_mean": ("KID×1e3", False, 2),
    "precision": ("precision", True, 3),
    "recall": ("recall", True, 3),
    "inception_score_mean": ("IS", True, 2),
    "classifier_fid": ("FID (classifier)", False, 2),
    "classifier_inception_score_mean": ("IS (classifier)", True, 2),
    "class_accuracy": ("class accuracy", True, 3),
    "clip_score": ("CLIP score", True, 2),
}
SCALED = {"kid_mean": 1e3}  # shown ×1e3 in tables
REASONS = {  # why a metric has no number: record key -> table note
    "inception_score_unavailable": "Inception Score",
    "classifier_unavailable": "reference-classifier metrics",
    "clip_score_unavailable": "CLIP score",
}
SUMMARY_EXTRA = ("kid_std", "seconds_per_image")
ELBO_DIR = "elbo"  # results/<model>/elbo/metrics.json: the variational bound, not a sampling run
TIE = "≈"  # marks a value whose interval overlaps the best row's: not significantly different from it
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


def _metric_columns(metrics: dict) -> dict:
    """Every interval metric with its _lo/_hi, and the reasons where a metric has no number."""
    out = {}
    for key in INTERVAL_METRICS:
        for suffix in ("", "_lo", "_hi"):
            out[key + suffix] = metrics.get(key + suffix)
    out["kid_std"] = metrics.get("kid_std")
    for key in REASONS:
        out[key] = metrics.get(key)
    out["class_accuracy_unavailable"] = metrics.get("class_accuracy_unavailable")
    out["interval_method"] = metrics.get("interval_method")
    return out


def flatten(record: dict, path: Path) -> dict:
    """One metrics.json → one flat row."""
    try:
        metrics, provenance = record["metrics"], record["provenance"]
        sampler = record.get("sampler") or {}
        timing = record.get("timing") or {}
        classifier = provenance.get("classifier") or {}
        return {
            "dataset": record["dataset"], "model": record["model"], "schedule": record.get("schedule"),
            "family": record["family"], "run": record["run"],
            "method": _method(sampler["kind"], sampler.get("options", {})) if sampler else "real data (train vs test)",
            "steps": sampler.get("steps"), "guidance_scale": record.get("guidance_scale"),
            "deterministic": record.get("deterministic"),
            **_metric_columns(metrics),
            "seconds_per_image": timing.get("seconds_per_image"),
            "n_samples": provenance["n_samples"], "device": provenance.get("device"),
            "reference": f"{provenance['reference']['split']} n={provenance['reference']['n']}",
            "weights_sha256": provenance.get("weights_sha256"), "seeds": provenance.get("seeds"),
            "backend": f"{provenance.get('backend')} {provenance.get('version')}",
            "classifier_accuracy": classifier.get("test_accuracy"),
        }
    except (KeyError, TypeError) as error:
        raise DiffbenchError(f"{path}: not a diffbench metrics record (missing {error})") from None


def load_records(results: Path) -> pd.DataFrame:
    """Every sampling / floor metrics.json under ``results`` as one DataFrame (fails naming a broken file)."""
    rows = []
    for path in sorted(Path(results).glob("*/*/metrics.json")):
        if path.parent.name == ELBO_DIR:
            continue
        rows.append(flatten(_read(path), path) | {"grid": str(path.parent / "grid.png")})
    if not rows:
        raise DiffbenchError(f"{results}: no metrics.json files; run the sample stages first")
    return pd.DataFrame(rows)


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise DiffbenchError(f"{path}: not valid JSON ({error.msg})") from None


def load_elbo(results: Path) -> pd.DataFrame:
    """Every ELBO record (results/<model>/elbo/metrics.json) as one row per model (empty if none)."""
    rows = []
    for path in sorted(Path(results).glob(f"*/{ELBO_DIR}/metrics.json")):
        record = _read(path)
        try:
            metrics = record["metrics"]
            rows.append({
                "dataset": record["dataset"], "model": record["model"], "schedule": record["schedule"],
                "bpd": metrics["bpd"], "bpd_lo": metrics["bpd_lo"], "bpd_hi": metrics["bpd_hi"],
                "n_images": record["n_images"], "timesteps_per_image": record.get("K"),
                "variance": record.get("variance"), "conditioning": record.get("conditioning"),
                "device": record.get("device"),
            })
        except (KeyError, TypeError) as error:
            raise DiffbenchError(f"{path}: not a diffbench ELBO record (missing {error})") from None
    return pd.DataFrame(rows)


def _is_missing(value: object) -> bool:
    return value is None or (not isinstance(value, (str, bool)) and pd.isna(value))


def _fmt(value: object, digits: int = 2) -> str:
    if _is_missing(value):
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def tied_with_best(rows: pd.DataFrame, key: str, higher_is_better: bool, candidates: pd.Series | None = None) -> pd.Series:
    """Per row: does its interval overlap the interval of the best row (among ``candidates``)?

    Overlapping 95% intervals are the conservative reading of "not significantly different".
    """
    usable = rows[key].notna() & rows[f"{key}_lo"].notna() & rows[f"{key}_hi"].notna()
    if candidates is not None:
        usable &= candidates
    tied = pd.Series(False, index=rows.index)
    if usable.sum() < 2:
        return tied
    values = rows.loc[usable, key]
    best = values.idxmax() if higher_is_better else values.idxmin()
    lo, hi = rows.at[best, f"{key}_lo"], rows.at[best, f"{key}_hi"]
    overlap = usable & (rows[f"{key}_lo"] <= hi) & (rows[f"{key}_hi"] >= lo)
    tied[overlap] = True
    tied[best] = False
    return tied


def interval_cells(rows: pd.DataFrame, key: str, candidates: pd.Series | None = None) -> pd.Series:
    """"value [lo, hi]" per row, the best row in bold, rows tied with it marked ≈."""
    title, higher, digits = INTERVAL_METRICS[key]
    factor = SCALED.get(key, 1.0)
    tied = tied_with_best(rows, key, higher, candidates)
    usable = rows[key].notna() if candidates is None else rows[key].notna() & candidates
    best = None
    if usable.any():
        best = rows.loc[usable, key].idxmax() if higher else rows.loc[usable, key].idxmin()

    def cell(index) -> str:
        value = rows.at[index, key]
        if _is_missing(value):
            return "–"
        text = f"{value * factor:.{digits}f}"
        lo, hi = rows.at[index, f"{key}_lo"], rows.at[index, f"{key}_hi"]
        if not (_is_missing(lo) or _is_missing(hi)):
            text += f" [{lo * factor:.{digits}f}, {hi * factor:.{digits}f}]"
        if index == best and usable.sum() > 1:
            return f"**{text}**"
        return f"{TIE} {text}" if tied[index] else text

    return pd.Series({index: cell(index) for index in rows.index})


def _provenance_lines(frame: pd.DataFrame, dataset: str) -> list[str]:
    lines = [
        f"- dataset: **{dataset}**; reference: {', '.join(sorted(frame['reference'].unique()))}",
        "- samples per row: n as given; seeds 0..n−1 (one seed per image)",
        f"- metric backend: {', '.join(sorted(frame['backend'].unique()))}, Inception weights sha256 "
        + ", ".join(f"`{str(w)[:16]}…`" for w in sorted(frame["weights_sha256"].astype(str).unique())),
        f"- device(s): {', '.join(sorted(frame['device'].astype(str).unique()))}",
        "- every metric: value [95% interval]; " + ", ".join(sorted(frame["interval_method"].dropna().unique()))
        + "; class accuracy: Wilson interval; CLIP score: t-interval of the mean",
        f"- **bold**: the best row of a column (real data excluded); {TIE}: its interval overlaps the best's "
        "(not significantly different)",
    ]
    accuracy = frame["classifier_accuracy"].dropna()
    if len(accuracy):
        lines.append(f"- reference classifier: test accuracy {accuracy.iloc[0]:.4f}")
    if dataset in DATASET_NOTES:
        lines.append(f"- note: {DATASET_NOTES[dataset]}")
    for key, what in REASONS.items():
        reasons = frame[key].dropna()
        if len(reasons):
            lines.append(f"- {what}: unavailable — {reasons.iloc[0]}")
    return lines


def write_table(table: pd.DataFrame, shown: pd.DataFrame, stem: Path, title: str, notes: list[str]) -> None:
    """``stem``.csv (raw values, intervals included) and ``stem``.md (formatted cells, provenance notes)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(stem.with_suffix(".csv"), index=False)
    text = [f"# {title}", "", *notes, "", shown.to_markdown(index=False), ""]
    stem.with_suffix(".md").write_text("\n".join(text))


def _raw_columns(rows: pd.DataFrame, keys: list[str], lead: list[str], tail: list[str]) -> pd.DataFrame:
    columns = lead + [c for key in keys for c in (key, f"{key}_lo", f"{key}_hi")] + tail
    return rows[columns]


def _shown(rows: pd.DataFrame, keys: list[str], lead: dict, tail: dict, candidates: pd.Series | None) -> pd.DataFrame:
    shown = pd.DataFrame(index=rows.index)
    for column, title in lead.items():
        shown[title] = rows[column].map(_lead_cell)
    for key in keys:
        shown[INTERVAL_METRICS[key][0]] = interval_cells(rows, key, candidates)
    for column, title in tail.items():
        shown[title] = rows[column].map(lambda v: _fmt(v, 4))
    return shown


def _lead_cell(value: object) -> str:
    if isinstance(value, float) and not pd.isna(value) and value.is_integer():
        return str(int(value))
    return _fmt(value)


def _present(rows: pd.DataFrame, keys: list[str]) -> list[str]:
    """The metrics with at least one number in ``rows`` (unavailable ones get no column, only a note)."""
    return [key for key in keys if rows[key].notna().any()]


STEPS_KEYS = ["fid", "kid_mean", "precision", "recall", "classifier_fid"]
CFG_KEYS = ["fid", "inception_score_mean", "clip_score", "precision", "recall", "class_accuracy",
            "classifier_fid", "classifier_inception_score_mean"]


def steps_table(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(a) DDPM vs DDIM by steps, the real-data floor first: (raw, shown)."""
    rows = frame[frame["family"].isin(["sweep", "ablation", "floor"])].copy()
    rows["family"] = pd.Categorical(rows["family"], ["floor", "sweep", "ablation"])
    rows = rows.sort_values(["family", "schedule", "method", "steps"], na_position="first", kind="stable")
    keys = _present(rows, STEPS_KEYS)
    lead = {"schedule": "schedule", "method": "method", "steps": "steps"}
    tail = {"seconds_per_image": "s/image", "deterministic": "deterministic?", "n_samples": "n", "device": "device"}
    raw = _raw_columns(rows, keys, list(lead), list(tail))
    return raw, _shown(rows, keys, lead, tail, rows["family"] != "floor")


def cfg_table(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(b) guidance scale vs FID, IS, CLIP, precision, recall, class accuracy (the floor row first): (raw, shown)."""
    rows = frame[frame["family"].isin(["guidance", "floor"])].copy()
    rows["scale"] = [("real data" if family == "floor" else "unguided" if pd.isna(s) else f"{s:g}")
                     for family, s in zip(rows["family"], rows["guidance_scale"])]
    rows["order"] = rows["guidance_scale"].fillna(-1.0).where(rows["family"] != "floor", -2.0)
    rows = rows.sort_values("order", kind="stable")
    keys = _present(rows, CFG_KEYS)
    lead = {"schedule": "schedule", "method": "method", "steps": "steps", "scale": "scale"}
    tail = {"n_samples": "n", "device": "device"}
    raw = _raw_columns(rows, keys, list(lead), list(tail))
    return raw, _shown(rows, keys, lead, tail, rows["family"] != "floor")


def schedules_table(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(c) FID of every schedule × sweep run, with intervals; ≈ marks ties with the best schedule per run."""
    rows = frame[frame["family"] == "sweep"]
    raw = rows.pivot_table(index="schedule", columns="run", values="fid", aggfunc="first")
    order = sorted(raw.columns, key=lambda r: (r.rpartition("-")[0], int(r.rpartition("-")[2])))
    shown = pd.DataFrame(index=raw.index)
    for run in order:
        group = rows[rows["run"] == run].set_index("schedule")
        shown[run] = interval_cells(group, "fid").reindex(raw.index).fillna("–")
    n = ", ".join(str(v) for v in sorted(rows["n_samples"].unique()))
    raw = raw[order].reset_index().assign(n_samples=n)
    raw.columns.name = None
    return raw, shown.reset_index().assign(n=n)


def elbo_table(elbo: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The likelihood row of the curriculum: the variational bound in bits/dim per schedule."""
    rows = elbo.sort_values("schedule").reset_index(drop=True)
    shown = pd.DataFrame({
        "schedule": rows["schedule"],
        "NLL bound (bits/dim)": [f"{b:.3f} [{lo:.3f}, {hi:.3f}]" for b, lo, hi in
                                 zip(rows["bpd"], rows["bpd_lo"], rows["bpd_hi"])],
        "timesteps per image": rows["timesteps_per_image"], "variance": rows["variance"],
        "conditioning": rows["conditioning"], "n": rows["n_images"], "device": rows["device"],
    })
    return rows, shown


def _errorbar(ax, rows: pd.DataFrame, key: str, label: str, marker: str = "o") -> None:
    values = rows[key].astype(float)
    lower = (values - rows[f"{key}_lo"].astype(float)).clip(lower=0)
    upper = (rows[f"{key}_hi"].astype(float) - values).clip(lower=0)
    ax.errorbar(rows["x"], values, yerr=[lower.fillna(0), upper.fillna(0)], marker=marker, capsize=3, label=label)


def plot_fid_vs_steps(frame: pd.DataFrame, path: Path, dataset: str) -> None:
    """FID (with 95% intervals) against sampling steps, one line per schedule × method."""
    rows = frame[frame["family"].isin(["sweep", "ablation"])]
    fig, ax = plt.subplots(figsize=(6, 4))
    for (schedule, method), group in rows.groupby(["schedule", "method"]):
        group = group.sort_values("steps").assign(x=lambda g: g["steps"])
        _errorbar(ax, group, "fid", f"{schedule}, {method}")
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
    """The curriculum's exercise 5: FID, precision/recall, class accuracy, IS and CLIP score against the
    guidance scale, with 95% intervals (unguided drawn at −1); a metric without numbers gets no panel."""
    rows = frame[frame["family"] == "guidance"].copy()
    rows["x"] = rows["guidance_scale"].fillna(-1.0)
    rows = rows.sort_values("x")
    panels = [("FID", ["fid", "classifier_fid"]), ("precision / recall", ["precision", "recall"]),
              ("class accuracy", ["class_accuracy"]),
              ("Inception Score", ["inception_score_mean", "classifier_inception_score_mean"]),
              ("CLIP score", ["clip_score"])]
    panels = [(title, [k for k in keys if rows[k].notna().any()]) for title, keys in panels]
    panels = [(title, keys) for title, keys in panels if keys]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.8 * len(panels), 3.6), squeeze=False)
    for ax, (title, keys) in zip(axes[0], panels):
        for key, marker in zip(keys, "osd^"):
            _errorbar(ax, rows, key, INTERVAL_METRICS[key][0], marker)
        ax.set_xlabel("guidance scale s (−1 = unguided)")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    n = ", ".join(map(str, sorted(rows["n_samples"].unique())))
    fig.suptitle(f"{dataset}: quality vs classifier-free guidance (n={n}, 95% intervals)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summary(frame: pd.DataFrame, elbo: pd.DataFrame) -> dict:
    """dataset → model → run → {metric, metric_lo, metric_hi, ..., n_samples, device}."""
    result: dict = {}
    for _, row in frame.iterrows():
        keys = [k + s for k in INTERVAL_METRICS for s in ("", "_lo", "_hi")] + list(SUMMARY_EXTRA)
        entry = {k: float(row[k]) for k in keys if not _is_missing(row[k])}
        entry.update(n_samples=int(row["n_samples"]), device=str(row["device"]))
        if not _is_missing(row["deterministic"]):
            entry["deterministic"] = bool(row["deterministic"])
        result.setdefault(row["dataset"], {}).setdefault(row["model"], {})[row["run"]] = entry
    for _, row in elbo.iterrows():
        entry = {k: float(row[k]) for k in ("bpd", "bpd_lo", "bpd_hi")}
        entry.update(n_samples=int(row["n_images"]), device=str(row["device"]))
        result.setdefault(row["dataset"], {}).setdefault(row["model"], {})[ELBO_DIR] = entry
    return result


def build_reports(results: Path, out: Path) -> list[Path]:
    """Write every table, plot, grid, index.md and summary.json; returns the files written."""
    frame = load_records(results)
    elbo = load_elbo(results)
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
        if len(elbo) and (elbo["dataset"] == dataset).any():
            tables["likelihood"] = (elbo_table(elbo[elbo["dataset"] == dataset]),
                                    "Likelihood: variational bound on the test split")
        for name, ((raw, shown), title) in tables.items():
            if name in ("ddpm_vs_ddim", "cfg") and not (raw["method"] != "real data (train vs test)").any():
                continue  # the real-data row alone is no comparison
            if len(raw):
                write_table(raw, shown, out / "tables" / f"{name}_{dataset}", f"{dataset}: {title}", notes)
                index.append(f"- [{title}](tables/{name}_{dataset}.md)")
        if rows["family"].isin(["sweep", "ablation"]).any():
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
        for row in rows[rows["family"] == "guidance"].sort_values("guidance_scale", na_position="first").itertuples():
            if Path(row.grid).is_file():
                shutil.copyfile(row.grid, out / "grids" / f"{row.model}-{row.run}.png")
                index.append(f"- grid {row.model} {row.run} (guidance): ![{row.run}](grids/{row.model}-{row.run}.png)")
        index.append("")
    (out / "index.md").write_text("\n".join(index))
    summary_path = out / "summary.json"
    summary_path.write_text(json.dumps(summary(frame, elbo), indent=2, sort_keys=True) + "\n")
    return sorted(p for p in out.rglob("*") if p.is_file())
