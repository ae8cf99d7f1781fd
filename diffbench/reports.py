"""Report tables, plots, grids and summary.json from the rows of ``diffbench.report_data``.

Tables (Markdown + CSV per dataset under reports/tables/), every number as value [95% interval]:
  (a) ddpm_vs_ddim: quality vs network evaluations (NFE) on the ablation schedule, one row per sampler
      and step count: DDPM, DDIM (η, spacing) and every other sampler of the sweep
  (b) cfg: guidance scale vs FID / IS / CLIP / precision / recall / class accuracy / classifier FID and IS
  (b') guidance: classifier guidance (noisy classifier) beside classifier-free guidance on the same model
      and sampler: FID, precision, recall, class accuracy and the cost per image of each scale
  (c) schedules: schedule × run FID
  (d) likelihood: the variational bound in bits/dim per schedule (when the ELBO stage ran)
A metric without a number (IS without logits, CLIP without weights, ...) gets no column, only a note
with the reason. In each column the best row is bold and rows whose interval overlaps it are marked ≈;
when every row ties, nothing is marked. Planned runs without a record show as ``missing``, records
whose code, params or command changed since they ran as ``stale`` (status column). Plots: FID vs NFE, quality
vs guidance scale, FID vs class accuracy of both guidance methods (with intervals). reports/summary.json
is the nested dataset → model → run → metric file (m, m_lo, m_hi, and what produced them) that
`dvc metrics diff` and `python -m diffbench compare` read.
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

from diffbench import atomic  # noqa: E402
from diffbench.config import Params  # noqa: E402
from diffbench.loss_plots import plot_dataset_losses, plot_noisy_classifier_accuracy, save_figure  # noqa: E402
from diffbench.report_data import FLOOR_METHOD, INTERVAL_METRICS, REASONS, load_elbo, load_frame  # noqa: E402

SCALED = {"kid_mean": 1e3}  # shown ×1e3 in tables
SUMMARY_EXTRA = ("kid_std", "seconds_per_image")
SUMMARY_PROVENANCE = ("n_samples", "device", "nfe", "steps", "commit", "date", "shard", "reference",
                      "weights_sha256", "backend", "status")
TIE = "≈"  # marks a value whose interval overlaps the best row's: not significantly different from it
DATASET_NOTES = {
    "cifar10-jpeg": "cifar10-jpeg is a JPEG (quality ~75) mirror of CIFAR-10: its numbers are not comparable "
    "with published CIFAR-10 figures.",
}


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
    """"value [lo, hi]" per row, the best row in bold, rows tied with it marked ≈ (nothing marked when
    every row ties: no row is then significantly best)."""
    title, higher, digits = INTERVAL_METRICS[key]
    factor = SCALED.get(key, 1.0)
    tied = tied_with_best(rows, key, higher, candidates)
    usable = rows[key].notna() if candidates is None else rows[key].notna() & candidates
    best = None
    if usable.sum() > 1 and tied.sum() < usable.sum() - 1:
        best = rows.loc[usable, key].idxmax() if higher else rows.loc[usable, key].idxmin()

    def cell(index) -> str:
        value = rows.at[index, key]
        if _is_missing(value):
            return "–"
        text = f"{value * factor:.{digits}f}"
        lo, hi = rows.at[index, f"{key}_lo"], rows.at[index, f"{key}_hi"]
        if not (_is_missing(lo) or _is_missing(hi)):
            text += f" [{lo * factor:.{digits}f}, {hi * factor:.{digits}f}]"
        if best is None:
            return text
        if index == best:
            return f"**{text}**"
        return f"{TIE} {text}" if tied[index] else text

    return pd.Series({index: cell(index) for index in rows.index}, dtype=object)


def sharing_line(frame: pd.DataFrame) -> str | None:
    """What ms/image measured: wall time × GPUs ÷ images, and how many stage runners shared the GPU (None
    when no row has a time)."""
    if not frame["seconds_per_image"].notna().any():
        return None
    shared = frame["gpu_shared_by"] if "gpu_shared_by" in frame else pd.Series(dtype=object)
    counts = sorted({int(v) for v in shared.dropna()})
    unknown = int(frame["seconds_per_image"].notna().sum() - shared.notna().sum())
    parts = [f"{count} stage runner(s) sharing the GPU" for count in counts]
    if unknown > 0:
        parts.append(f"sharing not recorded for {unknown} row(s) (records before it was)")
    return ("- ms/image: the generate stage's wall time × GPUs ÷ images, measured with " + "; ".join(parts)
            + ": compare it between rows measured alike")


def _provenance_lines(frame: pd.DataFrame, dataset: str) -> list[str]:
    lines = [
        f"- dataset: **{dataset}**; reference: {', '.join(sorted(frame['reference'].dropna().unique()))}",
        "- samples per row: n as given; seeds 0..n−1 (one seed per image); NFE: network evaluations per image",
        f"- metric backend: {', '.join(sorted(frame['backend'].dropna().unique()))}, Inception weights sha256 "
        + ", ".join(f"`{str(w)[:16]}…`" for w in sorted(frame["weights_sha256"].dropna().astype(str).unique())),
        f"- device(s): {', '.join(sorted(frame['device'].dropna().astype(str).unique()))}; commit(s): "
        + (", ".join(f"`{c}`" for c in sorted(frame["commit"].dropna().unique())) or "–")
        + "; date(s): " + (", ".join(sorted(frame["date"].dropna().unique())) or "–"),
        "- every metric: value [95% interval]; " + ", ".join(sorted(frame["interval_method"].dropna().unique()))
        + "; class accuracy: Wilson interval; CLIP score: t-interval of the mean",
        f"- **bold**: the best row of a column (real data and stale rows excluded); {TIE}: its interval overlaps the best's "
        "(not significantly different)",
    ]
    lines += [line for line in [sharing_line(frame)] if line]
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
    atomic.write_text(stem.with_suffix(".csv"), table.to_csv(index=False))
    text = [f"# {title}", "", *notes, "", shown.to_markdown(index=False), ""]
    atomic.write_text(stem.with_suffix(".md"), "\n".join(text))


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
        shown[title] = rows[column].map(lambda v: _lead_cell(v) if isinstance(v, float) else _fmt(v, 4))
    return shown


def _lead_cell(value: object) -> str:
    if isinstance(value, float) and not pd.isna(value) and value.is_integer():
        return str(int(value))
    return _fmt(value)


def _present(rows: pd.DataFrame, keys: list[str]) -> list[str]:
    """The metrics with at least one number in ``rows`` (unavailable ones get no column, only a note)."""
    return [key for key in keys if rows[key].notna().any()]


STEPS_KEYS = ["fid", "kid_mean", "precision", "recall", "class_accuracy", "classifier_fid"]
CFG_KEYS = ["fid", "inception_score_mean", "clip_score", "precision", "recall", "class_accuracy",
            "classifier_fid", "classifier_inception_score_mean"]
STATUS = {"status": "status"}


def in_table(frame: pd.DataFrame, *names: str) -> pd.Series:
    """Rows that belong to any of the tables ``names`` (a run may serve several)."""
    return frame["tables"].map(lambda tables: any(name in tables for name in names))


def _not_floor(rows: pd.DataFrame) -> pd.Series:
    return rows["method"] != FLOOR_METHOD


def _contenders(rows: pd.DataFrame) -> pd.Series:
    """Rows that may be marked best or tied: current runs, not the real-data floor and not stale ones
    (a stale row's numbers are of code, params or a command the plan no longer runs)."""
    return _not_floor(rows) & (rows["status"] == "ok")


def nfe_rows(frame: pd.DataFrame, ablation_models: list[str]) -> pd.DataFrame:
    """(a)'s rows: every run of the ablation schedule's models (ablation and sweep tables), floor first."""
    rows = frame[(in_table(frame, "ablation", "sweep") & frame["model"].isin(ablation_models))
                 | in_table(frame, "floor")].copy()
    rows["order"] = _not_floor(rows).astype(int)
    return rows.sort_values(["order", "method", "kind", "nfe", "steps"], na_position="last", kind="stable")


def steps_table(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(a) quality vs NFE: DDPM, DDIM variants and every other sampler on one schedule: (raw, shown)."""
    keys = _present(rows, STEPS_KEYS)
    lead = {"schedule": "schedule", "method": "sampler", "steps": "steps", "nfe": "NFE"}
    tail = {"ms_per_image": "ms/image", "deterministic": "deterministic?", "n_samples": "n", "device": "device",
            "status": "status"}
    raw = _raw_columns(rows, keys, list(lead), list(tail))
    return raw, _shown(rows, keys, lead, tail, _contenders(rows))


def _scale_label(row: pd.Series) -> str:
    if row["method"] == FLOOR_METHOD:
        return "real data"
    return "unguided" if pd.isna(row["guidance_scale"]) else f"{row['guidance_scale']:g}"


def _guidance_caption(row: pd.Series) -> str:
    """How a run was guided, in words: unguided, classifier-free guidance s, or classifier guidance s."""
    if not pd.isna(row.get("classifier_scale")):
        return f"classifier guidance {row['classifier_scale']:g}"
    return "unguided" if pd.isna(row["guidance_scale"]) else f"classifier-free guidance {row['guidance_scale']:g}"


def cfg_table(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(b) guidance scale vs FID, IS, CLIP, precision, recall, class accuracy (the floor row first): (raw, shown)."""
    rows = frame[in_table(frame, "guidance", "floor")].copy()
    rows["scale"] = rows.apply(_scale_label, axis=1)
    rows["order"] = rows["guidance_scale"].astype(float).fillna(-1.0).where(_not_floor(rows), -2.0)
    rows = rows.sort_values("order", kind="stable")
    keys = _present(rows, CFG_KEYS)
    lead = {"schedule": "schedule", "method": "sampler", "steps": "steps", "scale": "scale"}
    tail = {"n_samples": "n", "device": "device", "status": "status"}
    raw = _raw_columns(rows, keys, list(lead), list(tail))
    return raw, _shown(rows, keys, lead, tail, _contenders(rows))


GUIDANCE_KEYS = ["fid", "precision", "recall", "class_accuracy", "classifier_fid"]


def guidance_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Both guidance sweeps' runs (the unguided run, shared, once), with method, scale and cost per image."""
    rows = frame[in_table(frame, "guidance", "classifier_guidance") & _not_floor(frame)].copy()
    cg = rows["classifier_scale"].notna()
    cfg = rows["guidance_scale"].notna() & ~cg
    rows["guidance"] = np.select([cg, cfg], ["classifier", "classifier-free"], "unguided")
    rows["scale"] = np.where(cg, rows["classifier_scale"], rows["guidance_scale"]).astype(float)
    pair = cfg & (rows["guidance_scale"] != 1)
    rows["network_passes"] = rows["nfe"] * np.where(pair, 2, 1)  # a guided CFG step asks cond and uncond
    rows["classifier_passes"] = np.where(cg, rows["nfe"], 0)  # one classifier forward + backward per NFE
    rows["order"] = np.select([cg, cfg], [2, 1], 0)
    return rows.sort_values(["order", "scale"], kind="stable")


def guidance_table(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(b') classifier guidance beside classifier-free guidance, with what each costs: (raw, shown)."""
    rows = guidance_rows(frame)
    keys = _present(rows, GUIDANCE_KEYS)
    lead = {"schedule": "schedule", "method": "sampler", "steps": "steps", "guidance": "guidance", "scale": "scale"}
    tail = {"network_passes": "U-Net passes/image", "classifier_passes": "classifier fwd+bwd/image",
            "ms_per_image": "ms/image", "n_samples": "n", "device": "device", "status": "status"}
    raw = _raw_columns(rows, keys, list(lead), list(tail))
    return raw, _shown(rows, keys, lead, tail, _contenders(rows))


def plot_guidance_tradeoff(frame: pd.DataFrame, path: Path, dataset: str) -> None:
    """FID against class accuracy for both guidance methods, each point a scale (95% intervals both ways):
    the two methods compared at matched class accuracy."""
    rows = guidance_rows(frame)
    rows = rows[rows["fid"].notna() & rows["class_accuracy"].notna()]
    fig, ax = plt.subplots(figsize=(6.2, 4.4))
    for (method, group), marker in zip(rows[rows["guidance"] != "unguided"].groupby("guidance"), "os"):
        group = group.sort_values("scale")
        x, y = group["class_accuracy"].astype(float), group["fid"].astype(float)
        xerr = [(x - group["class_accuracy_lo"]).clip(lower=0), (group["class_accuracy_hi"] - x).clip(lower=0)]
        yerr = [(y - group["fid_lo"]).clip(lower=0), (group["fid_hi"] - y).clip(lower=0)]
        ax.errorbar(x, y, xerr=xerr, yerr=yerr, marker=marker, capsize=3, label=f"{method} guidance")
        for xi, yi, scale in zip(x, y, group["scale"]):
            ax.annotate(f"s={scale:g}", (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7)
    n = ", ".join(str(int(v)) for v in sorted(rows["n_samples"].dropna().unique()))
    ax.set_xlabel("class accuracy (reference classifier; higher: more on-class)")
    ax.set_ylabel("FID (lower is better)")
    ax.set_title(f"{dataset}: classifier vs classifier-free guidance (n={n}, 95% intervals)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def schedules_table(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(c) FID of every sweep run (a row: sampler, steps, NFE) under every schedule (a column), with intervals;
    within a row the best schedule is bold and ≈ marks the schedules not significantly different from it."""
    rows = frame[in_table(frame, "sweep")].copy()
    rows["run_label"] = [f"{m}, {int(s)} steps ({int(n)} NFE)"
                         for m, s, n in zip(rows["method"], rows["steps"], rows["nfe"])]
    order = list(dict.fromkeys(rows.sort_values(["kind", "setting", "steps"])["run_label"]))
    schedules = sorted(rows["schedule"].unique())
    shown = pd.DataFrame("–", index=order, columns=schedules)
    for label in order:
        group = rows[rows["run_label"] == label].set_index("schedule")
        shown.loc[label, group.index] = interval_cells(group, "fid", _contenders(group)).values
    raw = pd.concat({"fid" + suffix: rows.pivot_table(index="run_label", columns="schedule", values="fid" + suffix,
                                                       aggfunc="first").reindex(index=order, columns=schedules)
                     for suffix in ("", "_lo", "_hi")}, axis=1)
    raw.columns = [f"{schedule} {what}" for what, schedule in raw.columns]
    n = ", ".join(str(int(v)) for v in sorted(rows["n_samples"].dropna().unique())) or "–"
    raw = raw.rename_axis("run").reset_index().assign(n_samples=n)
    return raw, shown.rename_axis("run (FID by schedule)").reset_index().assign(n=n)


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


def plot_fid_vs_nfe(rows: pd.DataFrame, path: Path, dataset: str) -> None:
    """FID (with 95% intervals) against network evaluations per image, one line per sampler."""
    runs = rows[_not_floor(rows) & rows["fid"].notna()]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for method, group in runs.groupby("method"):
        _errorbar(ax, group.sort_values("nfe").assign(x=lambda g: g["nfe"]), "fid", method)
    floor = rows[~_not_floor(rows)]
    if len(floor):
        ax.axhline(floor["fid"].iloc[0], color="gray", linestyle="--", label="real data floor")
    ax.set_xscale("log")
    ax.set_xlabel("network evaluations per image (NFE)")
    ax.set_ylabel("FID (lower is better)")
    schedules = ", ".join(sorted(runs["schedule"].dropna().unique()))
    n = ", ".join(str(int(v)) for v in sorted(runs["n_samples"].dropna().unique()))
    ax.set_title(f"{dataset} ({schedules} schedule): FID vs NFE (n={n}, 95% intervals)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def plot_quality_vs_cfg(frame: pd.DataFrame, path: Path, dataset: str) -> None:
    """The curriculum's exercise 5: FID, precision/recall, class accuracy, IS and CLIP score against the
    guidance scale s, with 95% intervals; the unguided run is drawn apart (left of s = 0, not joined to the
    scale axis by a line); a metric without numbers gets no panel."""
    rows = frame[in_table(frame, "guidance") & frame["fid"].notna()].copy()
    guided = rows[rows["guidance_scale"].notna()].assign(x=lambda r: r["guidance_scale"].astype(float))
    guided = guided.sort_values("x")
    unguided = rows[rows["guidance_scale"].isna()]
    left = -0.1 * max(float(guided["x"].max()) if len(guided) else 1.0, 1.0)
    panels = [("FID", ["fid", "classifier_fid"]), ("precision / recall", ["precision", "recall"]),
              ("class accuracy", ["class_accuracy"]),
              ("Inception Score", ["inception_score_mean", "classifier_inception_score_mean"]),
              ("CLIP score", ["clip_score"])]
    panels = [(title, [k for k in keys if rows[k].notna().any()]) for title, keys in panels]
    panels = [(title, keys) for title, keys in panels if keys]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.8 * len(panels), 3.6), squeeze=False)
    for ax, (title, keys) in zip(axes[0], panels):
        for key, marker in zip(keys, "osd^"):
            _errorbar(ax, guided, key, INTERVAL_METRICS[key][0], marker)
            if len(unguided) and unguided[key].notna().any():
                _errorbar(ax, unguided.assign(x=left), key, f"{INTERVAL_METRICS[key][0]}, unguided", "x")
        ax.axvline(left / 2, color="lightgray", linewidth=0.8)
        ax.set_xlabel("guidance scale s (left of the line: unguided)")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=6)
    n = ", ".join(str(int(v)) for v in sorted(rows["n_samples"].dropna().unique()))
    fig.suptitle(f"{dataset}: quality vs classifier-free guidance (n={n}, 95% intervals)")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def summary(frame: pd.DataFrame, elbo: pd.DataFrame) -> dict:
    """dataset → model → run → {metric, metric_lo, metric_hi, ..., and what produced them}; missing runs left out."""
    result: dict = {}
    keys = [k + s for k in INTERVAL_METRICS for s in ("", "_lo", "_hi")] + list(SUMMARY_EXTRA)
    for _, row in frame[frame["status"] != "missing"].iterrows():
        entry = {k: float(row[k]) for k in keys if not _is_missing(row[k])}
        for key in SUMMARY_PROVENANCE:
            value = row.get(key)
            if not _is_missing(value):
                entry[key] = int(value) if isinstance(value, (float, np.floating)) and float(value).is_integer() else value
        if not _is_missing(row["deterministic"]):
            entry["deterministic"] = bool(row["deterministic"])
        result.setdefault(row["dataset"], {}).setdefault(row["model"], {})[row["run"]] = entry
    for _, row in elbo.iterrows():
        entry = {k: float(row[k]) for k in ("bpd", "bpd_lo", "bpd_hi")}
        entry.update(n_samples=int(row["n_images"]), device=str(row["device"]))
        result.setdefault(row["dataset"], {}).setdefault(row["model"], {})["elbo"] = entry
    return result


def _copy_grid(source: object, target: Path) -> bool:
    if isinstance(source, str) and Path(source).is_file():
        atomic.write_bytes(target, Path(source).read_bytes())
        return True
    return False


def grid_lines(rows: pd.DataFrame, out: Path) -> list[str]:
    """Each model's lowest-FID sweep grid and every guidance grid, copied to reports/grids with a caption."""
    lines = []
    sweep = rows[in_table(rows, "sweep") & rows["fid"].notna()]
    for model, group in sweep.groupby("model"):
        best = group.sort_values("fid").iloc[0]
        if _copy_grid(best.get("grid"), out / "grids" / f"{model}.png"):
            lines.append(f"- {model}, {best['method']} {int(best['steps'])} steps, its lowest-FID sweep run "
                         f"(FID {best['fid']:.2f}, n={int(best['n_samples'])}; the grid shows the first images, seeds 0..): "
                         f"![{model}](grids/{model}.png)")
    guided = rows[in_table(rows, "guidance", "classifier_guidance") & rows["fid"].notna()]
    for _, row in guided.sort_values(["classifier_scale", "guidance_scale"], na_position="first").iterrows():
        if _copy_grid(row.get("grid"), out / "grids" / f"{row['model']}-{row['run']}.png"):
            lines.append(f"- {row['model']}, {row['method']} {int(row['steps'])} steps, {_guidance_caption(row)} "
                         f"(classes by seed: seed mod K): ![{row['run']}](grids/{row['model']}-{row['run']}.png)")
    return lines


def _status_lines(rows: pd.DataFrame) -> list[str]:
    missing = rows[rows["status"] == "missing"]
    stale = rows[rows["status"].str.startswith("stale")]
    lines = []
    if len(missing):
        lines.append(f"- **missing** ({len(missing)} planned runs without a record): "
                     + ", ".join(f"{m}/{r}" for m, r in zip(missing["model"], missing["run"])))
    if len(stale):
        lines.append(f"- **stale** ({len(stale)} runs whose code, params or command changed since they ran): "
                     + ", ".join(f"{m}/{r} ({s[7:-1]})" for m, r, s in zip(stale["model"], stale["run"], stale["status"])))
    return lines


def build_reports(params: Params, out: Path, banner: str | None = None) -> tuple[list[Path], list[str]]:
    """Write every table, plot, grid, index.md and summary.json; returns the files written and warnings."""
    frame, warnings = load_frame(params)
    frame["ms_per_image"] = frame["seconds_per_image"].astype(float) * 1e3  # device time: seconds × GPUs / images
    elbo = load_elbo(params)
    ablation_models = [m.name for m in params.plan.models if m.schedule == params.section("ablation")["schedule"]]
    for sub in ("tables", "plots", "grids"):
        shutil.rmtree(out / sub, ignore_errors=True)
        (out / sub).mkdir(parents=True, exist_ok=True)
    index = ["# diffbench reports", "", "Generated by `stages/report.py` from the runs params.yaml plans; do not edit.", ""]
    if banner:
        index += [f"> **{banner.strip()}**", ""]
    for dataset, rows in frame.groupby("dataset", sort=True):
        notes = _provenance_lines(rows, dataset) + ([f"- {banner.strip()}"] if banner else [])
        index += [f"## {dataset}", "", *notes, *_status_lines(rows), ""]
        if plot_dataset_losses(params.models, dataset, out / "plots" / f"loss_{dataset}.png"):
            index += [f"- ![loss](plots/loss_{dataset}.png)", ""]
        noisy_plot = out / "plots" / f"noisy_classifier_{dataset}.png"
        if plot_noisy_classifier_accuracy(params.plan.guided_models, dataset, noisy_plot):
            index += [f"- ![noisy classifier accuracy by t](plots/{noisy_plot.name})", ""]
        if not ((rows["status"] != "missing") & _not_floor(rows)).any():
            index += ["No run of this dataset has a record yet: no tables.", ""]
            continue
        nfe = nfe_rows(rows, ablation_models)
        tables = {
            "ddpm_vs_ddim": (steps_table(nfe), "DDPM vs DDIM and other samplers: quality vs network evaluations"),
            "cfg": (cfg_table(rows), "Classifier-free guidance scale vs quality"),
            "schedules": (schedules_table(rows), "Noise schedules compared: FID by run"),
        }
        if rows["classifier_scale"].notna().any():
            tables["guidance"] = (guidance_table(rows), "Classifier guidance beside classifier-free guidance, with costs")
        if len(elbo) and (elbo["dataset"] == dataset).any():
            tables["likelihood"] = (elbo_table(elbo[elbo["dataset"] == dataset]),
                                    "Likelihood: variational bound on the test split")
        for name, ((raw, shown), title) in tables.items():
            if "sampler" in shown and not (shown["sampler"] != FLOOR_METHOD).any():
                continue  # the real-data row alone is no comparison
            if len(raw):
                write_table(raw, shown, out / "tables" / f"{name}_{dataset}", f"{dataset}: {title}", notes)
                index.append(f"- [{title}](tables/{name}_{dataset}.md)")
        if nfe["fid"].notna().any():
            plot_fid_vs_nfe(nfe, out / "plots" / f"fid_vs_nfe_{dataset}.png", dataset)
            index.append(f"- ![FID vs NFE](plots/fid_vs_nfe_{dataset}.png)")
        if (in_table(rows, "guidance") & rows["fid"].notna()).any():
            plot_quality_vs_cfg(rows, out / "plots" / f"quality_vs_cfg_{dataset}.png", dataset)
            index.append(f"- ![quality vs CFG](plots/quality_vs_cfg_{dataset}.png)")
        if (rows["classifier_scale"].notna() & rows["fid"].notna()).any():
            plot_guidance_tradeoff(rows, out / "plots" / f"guidance_tradeoff_{dataset}.png", dataset)
            index.append(f"- ![FID vs class accuracy](plots/guidance_tradeoff_{dataset}.png)")
        index += grid_lines(rows, out) + [""]
    atomic.write_text(out / "index.md", "\n".join(index))
    atomic.write_text(out / "summary.json", json.dumps(summary(frame, elbo), indent=2, sort_keys=True) + "\n")
    return sorted(p for p in out.rglob("*") if p.is_file()), warnings
