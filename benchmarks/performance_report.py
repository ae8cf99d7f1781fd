"""reports/performance.md from benchmarks/throughput.py's JSON: issue 9's targets beside the measured
values (met / not met / not measured), then the training, sampling, metric-suite and profile tables."""

from __future__ import annotations

import re
from dataclasses import dataclass

from diffbench.runs import scale_text

CIFAR, MNIST = "cifar10-jpeg", "mnist"
SMOKE_WARNING = ("> **Smoke run** (`--smoke`: CPU, tiny U-Nets of profiles/quick/params.yaml, a few steps). It only "
                 "checks that the benchmark runs: these numbers are not measurements, never publish them.")
NAME_WIDTH = 90  # kernel names are cut to this many characters
COMPILED_GRAPH = re.compile(r"## Call CompiledFxGraph \w+ ##")


@dataclass(frozen=True)
class Target:
    """One row of issue 9's table: what, the goal, the measured value as shown, and whether it is met."""

    what: str
    goal: str
    measured: str
    met: bool | None  # None: not measured

    @property
    def status(self) -> str:
        return {True: "met", False: "**not met**", None: "not measured"}[self.met]


def cell(value: float | None, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def training_row(results: dict, library: str, dataset: str, mode: str | None = None,
                 commit: str | None = None) -> dict | None:
    """The params.yaml training row of ``library`` on ``dataset`` (no variant): in ``mode``, else in the
    pipeline's own mode (of rows merged from several runs: ``commit``'s)."""
    training = results.get("training") or {}
    mode = mode or training.get("pipeline_modes", {}).get(dataset)
    return next((r for r in training.get("rows", []) if (r["library"], r["dataset"], r["mode"]) == (library, dataset, mode)
                 and not r.get("variant") and r.get("commit") == commit), None)


def run_commits(results: dict) -> list[str | None]:
    """The commits of the merged runs, newest first ([None] for a single run)."""
    runs = results["header"].get("runs")
    return list(dict.fromkeys(run.get("commit") for run in reversed(runs))) if runs else [None]


def newest_training_row(results: dict, dataset: str, with_diffusers: bool = False) -> dict | None:
    """diffbench's params.yaml training row on ``dataset`` from the last run that measured it (``with_diffusers``:
    the last run that measured diffusers' training too, so that the two can be compared)."""
    for commit in run_commits(results):
        row = training_row(results, "diffbench", dataset, None, commit)
        if row and (not with_diffusers or best_diffusers(results, "train_images_per_s", commit)):
            return row
    return None


def mode_text(row: dict) -> str:
    """A training row's mode, with the settings its variant changed (``compile + channels_last=true``)."""
    return f"{row['mode']} + {row['variant']}" if row.get("variant") else row["mode"]


def versus_params(results: dict, row: dict) -> str:
    """A variant row's speed as a multiple of its params.yaml row's, measured in the same run, and where both
    trained the same batches (same batch size) the difference of their mean losses; '' otherwise."""
    base = training_row(results, row["library"], row["dataset"], row["mode"], row.get("commit")) \
        if row.get("variant") else None
    if not base:
        return ""
    loss = ""
    if row["train_batch"] == base["train_batch"] and row.get("mean_loss") and base.get("mean_loss"):
        loss = f", loss {row['mean_loss'] / base['mean_loss'] - 1:+.1%}"
    return f" ({row['train_images_per_s'] / base['train_images_per_s']:.2f}× params{loss})"


def best_diffusers(results: dict, key: str, commit: str | None = None) -> tuple[float, str] | None:
    """The better of diffusers' eager and compiled values of ``key`` (training rows or DDIM rows), with its
    mode; only the modes the run measured compete (of training rows merged from several runs: ``commit``'s)."""
    rows = (results.get("training") or {}).get("rows", []) if key.startswith("train") else \
        (results.get("sampling") or {}).get("diffusers") or []
    values = [(r[key], r["mode"]) for r in rows if r.get("library", "diffusers") == "diffusers" and r.get(key)
              and r.get("commit") == commit]
    return max(values) if values else None


def sampling_rows(results: dict, dataset: str) -> list[dict]:
    entry = next((d for d in (results.get("sampling") or {}).get("datasets", []) if d["dataset"] == dataset), None)
    return entry["rows"] if entry else []


def ratio_target(what: str, goal: str, ours: float | None, theirs: tuple[float, str] | None,
                 minimum: float, commit: str | None = None) -> Target:
    """Ours against diffusers' best (value, mode) of the same run (of merged runs: ``commit``'s)."""
    if not (ours and theirs):
        return Target(what, goal, "not measured", None)
    value = ours / theirs[0]
    run = f", run `{commit[:7]}`" if commit else ""
    return Target(what, goal, f"{value:.2f}× ({ours:.0f} vs {theirs[0]:.0f} img/s, diffusers {theirs[1]}{run})",
                  value >= minimum)


def sampling_targets(results: dict, dataset: str) -> list[Target]:
    """Shares of DDIM-50's image-steps/s (DDIM-10, DDPM-T) and the CFG cost per step of ``dataset``."""
    out = []
    for row in sampling_rows(results, dataset):
        if row["run"] != "DDIM-50" and "cfg_cost_per_step" not in row:
            out.append(Target(f"{row['run']} image-steps/s as a share of DDIM-50's, {dataset} U-Net (batch "
                              f"{row['batch']})", "≥ 90%", f"{row['share_of_ddim50']:.1%}", row["share_of_ddim50"] >= 0.9))
        if "cfg_cost_per_step" in row:
            out.append(Target(f"classifier-free guidance: a guided step ({row['run']}) vs an unguided one, {dataset}",
                              "≤ 2.05×", f"{row['cfg_cost_per_step']:.2f}×", row["cfg_cost_per_step"] <= 2.05))
    return out or [Target(f"DDIM-10 and DDPM-T shares of DDIM-50's image-steps/s, CFG step cost, {dataset} U-Net",
                           "≥ 90%, ≤ 2.05×", "not measured", None)]


def metric_targets(results: dict) -> list[Target]:
    metrics = results.get("metrics") or {}
    what = "metric suite, FID + KID + P/R of 50k images, Inception features included"
    exact = "FID equal to the exact path's (torch-fidelity's functions)"
    if "fid_kid_prc_total_seconds" not in metrics:
        return [Target(what, "≤ 5 s", "not measured", None), Target(exact, "≤ 1e-3 relative", "not measured", None)]
    seconds, n = metrics["fid_kid_prc_total_seconds"], metrics["n"]
    measured = f"{seconds:.1f} s" + ("" if n == 50000 else f" (n = {n}: not the target's 50k)")
    difference = metrics["fid_relative_difference"]
    return [Target(what, "≤ 5 s", measured, seconds <= 5 and n >= 50000),
            Target(exact, "≤ 1e-3 relative", f"{difference:.1e}", difference <= 1e-3)]


def targets(results: dict) -> list[Target]:
    """Every row of issue 9's table, from whatever parts the results hold."""
    ours, mnist = newest_training_row(results, CIFAR), newest_training_row(results, MNIST)
    paired = newest_training_row(results, CIFAR, with_diffusers=True)
    ddim50 = next((r for r in sampling_rows(results, CIFAR) if r["run"] == "DDIM-50"), None)
    mfu = ours and ours.get("train_mfu")
    rows = [
        ratio_target("training, CIFAR U-Net vs the better of diffusers eager/compiled", "≥ 1.5×",
                     paired and paired["train_images_per_s"],
                     paired and best_diffusers(results, "train_images_per_s", paired.get("commit")), 1.5,
                     paired and paired.get("commit")),
        Target("training MFU, CIFAR U-Net (3 × forward FLOPs × img/s ÷ peak)", "≥ 35%",
               cell(mfu, ".1%") if ours else "not measured", None if mfu is None else mfu >= 0.35),
        ratio_target("DDIM-50 sampling (generate path) vs diffusers' DDIMScheduler loop, CIFAR U-Net", "≥ 1.5×",
                     ddim50 and ddim50["images_per_s"], best_diffusers(results, "images_per_s"), 1.5),
        *sampling_targets(results, CIFAR), *sampling_targets(results, MNIST),
        Target("MNIST U-Net (params.yaml width): training img/s and MFU, beside the CIFAR row", "reported",
               f"{mnist['train_images_per_s']:.0f} img/s, MFU {cell(mnist['train_mfu'], '.1%')}" if mnist
               else "not measured", True if mnist else None),
        *metric_targets(results),
    ]
    return rows


def header(results: dict) -> list[str]:
    h = results["header"]
    modified = " (with uncommitted changes)" if h.get("code_modified_since_commit") else ""
    lines = ["# Throughput: diffbench vs diffusers (same GPU, ratios within one run)", ""]
    if h.get("smoke"):
        lines += [SMOKE_WARNING, ""]
    if h.get("runs"):
        lines += [f"Measured by `benchmarks/throughput.py` on one **{h['gpu']}**, torch {h['torch']}, settings from "
                  f"`{h['params']}`, in {len(h['runs'])} runs merged into one report (each training row names its "
                  "commit; a ratio is only ever taken within one run):", ""]
        lines += [f"- `{(run.get('commit') or 'unknown')[:12]}`, {run.get('date')}, "
                  f"{', '.join(run.get('parts') or ['nothing kept'])}: `{run.get('command')}`" for run in h["runs"]]
    else:
        lines += [f"Measured by `benchmarks/throughput.py` on one **{h['gpu']}**, torch {h['torch']}, commit "
                  f"`{(h.get('commit') or 'unknown')[:12]}`{modified}, {h['date']}, settings from `{h['params']}`. "
                  f"Command: `{h['command']}`."]
    lines += [f"- {note}" for note in h.get("notes", [])]
    return lines + [""]


def targets_section(results: dict) -> list[str]:
    lines = ["## Issue 9 targets", "", "| what | target | measured | |", "| --- | ---: | ---: | --- |"]
    lines += [f"| {t.what} | {t.goal} | {t.measured} | {t.status} |" for t in targets(results)]
    return lines + [""]


def training_section(results: dict) -> list[str]:
    training = results.get("training")
    if not training:
        return []
    gpu = results["header"]["gpu"]
    tagged = any("commit" in r for r in training["rows"])
    lines = [
        "## Training: the pipeline's Trainer step", "",
        f"The train stage's own `Trainer` step with params.yaml settings, {timed_steps(training)} "
        "(compile included, reported as start-up); diffusers' UNet2DModel "
        "(DDPM CIFAR-10 configuration) runs in the same Trainer. A mode with `+ key=value` is a variant: the "
        "params.yaml settings with that one changed, its speed also given as a multiple of the params row's and, "
        "where it trained the same batches, its mean loss over all steps against the params row's (the same seed, "
        "weights and images: a lever that changes only how the step runs stays within bf16 noise). "
        "MFU = 3 × forward FLOPs × images/s ÷ "
        f"{cell(training.get('peak_tflops'), '.0f')} TFLOP/s (dense bf16 peak).", "",
        "| GPU | network | dataset | mode | params | GFLOP/fwd | batch | train img/s | TFLOP/s | MFU | start-up s |"
        + (" commit |" if tagged else ""),
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |" + (" --- |" if tagged else ""),
    ]
    for r in training["rows"]:
        lines.append(
            f"| {gpu} | {r['library']} | {r['dataset']} | {mode_text(r)} | {r['parameters'] / 1e6:.1f}M | "
            f"{r['forward_gflops_per_image']:.2f} | {r['train_batch']} | {r['train_images_per_s']:.0f}"
            f"{versus_params(results, r)} | "
            f"{cell(r['train_tflops_per_second'], '.1f')} | {cell(r['train_mfu'], '.1%')} | {r['startup_seconds']:.0f} |"
            + (f" `{(r.get('commit') or 'unknown')[:7]}` |" if tagged else ""))
    lines += failed_lines([(f"{f['library']} {f['dataset']} {f['mode']} + {f['variant']}", f["error"])
                           for f in training.get("failed_variants", [])])
    return lines + [""]


def timed_steps(training: dict) -> str:
    """How many steps each row timed after how many warm-up steps (per run, where merged runs differ)."""
    runs = {commit: tuple(steps) for commit, steps in (training.get("steps_by_run") or {}).items()}
    if len(set(runs.values())) > 1:
        return "timed over " + "; ".join(f"{timed} steps after {warmup} warm-up steps in `{(commit or 'unknown')[:7]}`"
                                         for commit, (warmup, timed) in runs.items())
    return f"{training['train_steps']} steps after {training['warmup_steps']} warm-up steps"


def failed_lines(failures: list[tuple[str, str]]) -> list[str]:
    """One line per variant that failed to compile or run, with its error: measured, not left out in silence."""
    return ["", *[f"- variant failed: {what}: `{error}`" for what, error in failures]] if failures else []


def sampling_section(results: dict) -> list[str]:
    sampling = results.get("sampling")
    if not sampling:
        return []
    gpu = results["header"]["gpu"]
    lines = [
        "## Sampling: the pipeline's generate path", "",
        "`diffbench.generation.generate` on each dataset's U-Net (random weights), as the generate stage calls it: "
        "params `sampling` batch, bf16 and compile, the `ddim` and `ddpm` sampler settings, linear schedule. "
        "Image-steps/s = images × NFE ÷ seconds; a guided step is one batched call of the conditional and "
        "unconditional pass. Start-up (compile of each batch shape) is left out of the rates.", "",
        "| GPU | dataset | run | guidance | batch | images | NFE | img/s | image-steps/s | share of DDIM-50 | "
        "TFLOP/s | MFU |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for entry in sampling["datasets"]:
        for r in entry["rows"]:
            lines.append(
                f"| {gpu} | {entry['dataset']} | {r['run']} | {scale_text(r['guidance'])} | {r['batch']} | {r['images']} | "
                f"{r['nfe']} | {r['images_per_s']:.1f} | {r['image_steps_per_s']:.0f} | {r['share_of_ddim50']:.1%} | "
                f"{cell(r['tflops_per_second'], '.1f')} | {cell(r['mfu'], '.1%')} |")
    variants = [(e["dataset"], v) for e in sampling["datasets"] for v in e.get("variants", [])]
    if variants:
        lines += ["", "Variants: the DDIM-50 row with one setting changed (its own model and compile), as a multiple "
                  "of the params row measured in the same run. A variant becomes a params setting only after it "
                  "shows here:", "",
                  "| GPU | dataset | variant | batch | img/s | image-steps/s | × params row | start-up s |",
                  "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
        lines += [f"| {gpu} | {dataset} | {v['variant']} | {v['batch']} | {v['images_per_s']:.1f} | "
                  f"{v['image_steps_per_s']:.0f} | {v['times_params_row']:.2f}× | {v['startup_seconds']:.0f} |"
                  for dataset, v in variants]
    lines += failed_lines([(f"{e['dataset']} DDIM-50 + {f['variant']}", f["error"])
                           for e in sampling["datasets"] for f in e.get("failed_variants", [])])
    lines += [""] + [f"- {e['dataset']}: {e['parameters'] / 1e6:.1f}M parameters, {e['forward_gflops_per_image']:.2f} "
                     f"GFLOP per forward, compile {e['compile']}, bf16 {e['bf16']}, start-up {e['startup_seconds']:.0f} s"
                     for e in sampling["datasets"]]
    if sampling.get("diffusers"):
        lines += ["", "DDIM-50 against diffusers (its UNet2DModel and DDIMScheduler loop, random weights, "
                  "unconditional, same batch):", "",
                  "| GPU | library | loop | mode | batch | DDIM-50 img/s |", "| --- | --- | --- | --- | ---: | ---: |"]
        ddim50 = next((r for r in sampling_rows(results, CIFAR) if r["run"] == "DDIM-50"), None)
        if ddim50:
            mode = "compile" if next(e for e in sampling["datasets"] if e["dataset"] == CIFAR)["compile"] else "eager"
            lines.append(f"| {gpu} | diffbench | generate (samplers/ddim.py) | {mode} | {ddim50['batch']} | "
                         f"{ddim50['images_per_s']:.1f} |")
        lines += [f"| {gpu} | diffusers | DDIMScheduler.step | {r['mode']} | {r['batch']} | {r['images_per_s']:.1f} |"
                  for r in sampling["diffusers"]]
    return lines + [""]


def metrics_section(results: dict) -> list[str]:
    metrics = results.get("metrics")
    if not metrics:
        return []
    lines = ["## Metric suite: generated images against cached reference features", ""]
    if "seconds" not in metrics:
        return lines + [f"Not measured: {metrics.get('skipped', 'no result')}.", ""]
    fid, tf_fid = metrics["agreement"]["fid"]
    lines += [f"`benchmarks/metrics_speed.py`'s measurement: {metrics['n']:,} images against {metrics['n_ref']:,} "
              f"reference images, Inception batch {metrics['batch']}, diffbench beside torch-fidelity's functions "
              "on the same features.", "", "| step | seconds |", "| --- | ---: |"]
    lines += [f"| {name} | {seconds:.2f} |" for name, seconds in metrics["seconds"].items()]
    lines += ["", f"- **FID + KID + P/R, features included: {metrics['fid_kid_prc_total_seconds']:.1f} s** "
              f"(torch-fidelity's functions: {metrics['torch_fidelity_total_seconds']:.1f} s, "
              f"{metrics['speedup_vs_torch_fidelity']:.2f}×)",
              f"- FID {fid:.6f} vs torch-fidelity's {tf_fid:.6f} (relative difference "
              f"{metrics['fid_relative_difference']:.1e})"]
    variants = metrics.get("extraction_variants") or []
    if variants:
        lines += ["", "Inception features of the same images under other backend settings (the pipeline uses the "
                  "defaults); FID from the variant's own generated and reference features against the default's:",
                  "", "| setting | features s | vs default | warm-up s (one batch, compile included) | FID | "
                  "relative to default FID |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
        base = metrics["seconds"]["Inception features"]
        lines += [f"| {v['name']} | {v['seconds']:.2f} | {base / v['seconds']:.2f}× | "
                  f"{cell(v.get('warmup_seconds'), '.1f')} | {v['fid']:.6f} | {v['fid_relative_difference']:.1e} |"
                  for v in variants]
    return lines + interval_table(metrics.get("interval_seconds") or {}) + [""]


def interval_table(intervals: dict) -> list[str]:
    """Seconds of each metric's half-sample values per set size (where the intervals' time goes)."""
    if not intervals:
        return []
    names = list(next(iter(intervals.values())))
    return ["", "Each metric's B half-sample values, the statistics built beforehand (seconds):", "",
            "| set | " + " | ".join(names) + " |", "| --- |" + " ---: |" * len(names),
            *(f"| {size} | " + " | ".join(f"{parts[name]:.2f}" for name in names) + " |"
              for size, parts in intervals.items())]


def kernel_name(name: str) -> str:
    short = name if len(name) <= NAME_WIDTH else name[:NAME_WIDTH - 1] + "…"
    return "`" + short.replace("|", "\\|").replace("`", "'") + "`"


def profile_table(title: str, summary: dict) -> list[str]:
    lines = [f"### {title}", "", f"{summary['ms_per_step']:.2f} ms of {summary['clock']} per step, over "
             f"{summary['steps']} profiled steps (torch.profiler).", "",
             "| category | share | ms/step |", "| --- | ---: | ---: |"]
    lines += [f"| {name} | {share:.1%} | {share * summary['ms_per_step']:.2f} |"
              for name, share in sorted(summary["categories"].items(), key=lambda item: -item[1]) if share > 0]
    lines += ["", "| # | kernel | category | ms/step | share |", "| ---: | --- | --- | ---: | ---: |"]
    lines += [f"| {i} | {kernel_name(k['name'])} | {k['category']} | {k['ms_per_step']:.3f} | {k['share']:.1%} |"
              for i, k in enumerate(summary["top"], 1)]
    return lines + launched_by_lines(summary["top"]) + [""]


def short_ops(chain: str) -> str:
    """A launching chain as the report shows it: inductor's graph calls without their hashes."""
    return COMPILED_GRAPH.sub("compiled graph", chain).replace("autograd::engine::evaluate_function: ", "").replace("|", "/")


def launched_by_lines(top: list[dict]) -> list[str]:
    """Which CPU operators launched each top kernel (innermost first), where the profile linked them."""
    rows = [f"- #{i}: " + "; ".join(f"{short_ops(chain['ops'])} ({chain['share']:.0%})"
                                    for chain in k["launched_by"])
            for i, k in enumerate(top, 1) if k.get("launched_by")]
    return ["", "Launched by (CPU operators, innermost first, share of the kernel's time):", "", *rows] if rows else []


def profile_section(results: dict) -> list[str]:
    profiles = results.get("profile")
    if not profiles:
        return []
    lines = ["## Where the time goes", "",
             "Top kernels of the profiled steps by self time, grouped into categories; shares are of all "
             "kernels' self time (on a GPU: CUDA kernels' self CUDA time).", ""]
    for title, summary in profiles.items():
        lines += profile_table(title, summary)
    return lines


def render(results: dict) -> str:
    """The whole performance.md."""
    sections = (header, targets_section, training_section, sampling_section, metrics_section, profile_section)
    return "\n".join(line for section in sections for line in section(results)).rstrip("\n") + "\n"
