"""The results of benchmarks/recipe.py as a markdown table (FID per recipe × EMA at each image count, the best
cell of each column in bold, the chosen recipe) and a FID-vs-images plot; ``Outputs`` writes them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diffbench import atomic
from diffbench.cli import write_json
from diffbench.ema import warmup_decay
from diffbench.loss_plots import save_figure


def ordered(rows: list[dict], record: dict) -> list[dict]:
    """Rows in table order: recipe, then EMA decay, then images."""
    recipes = [r["name"] for r in record["recipes"]]
    return sorted(rows, key=lambda r: (recipes.index(r["recipe"]), record["ema_decays"].index(r["ema"]), r["images"]))


def best_cells(rows: list[dict]) -> set[tuple[str, float, int]]:
    """(recipe, ema, images) of the lowest FID at each image count (every one of a tie)."""
    lowest: dict[int, float] = {}
    for row in rows:
        lowest[row["images"]] = min(row["fid"], lowest.get(row["images"], np.inf))
    return {(r["recipe"], r["ema"], r["images"]) for r in rows if r["fid"] == lowest[r["images"]]}


def images_label(images: int) -> str:
    """A column heading: 1.23M, or the plain count below 100k."""
    return f"{images / 1e6:.2f}M" if images >= 100_000 else f"{images:,}"


def ema_label(decay: float, steps: int | None) -> str:
    """The decay, marked when the warm-up min(d, (1+n)/(10+n)) stays below it for the whole run."""
    if steps is not None and warmup_decay(decay, steps - 1) < decay:
        return f"{decay:g} (warm-up only)"
    return f"{decay:g}"


def speed_lines(record: dict) -> list[str]:
    """One line per recipe: steps and training images/s so far (start-up and compile included)."""
    lines = []
    for recipe in record["recipes"]:
        rows = [r for r in record["rows"] if r["recipe"] == recipe["name"]]
        if rows:
            last = max(rows, key=lambda r: r["images_seen"])
            lines.append(f"- {recipe['name']}: {last['step']:,} of {recipe['steps']:,} steps, "
                         f"{last['images_seen']:,} images in {last['train_seconds']:.0f} s of training "
                         f"({last['train_images_per_s'] or 0:,.0f} img/s, start-up and compile included)")
    return lines


def chosen(record: dict) -> str:
    """The one-line verdict: the recipe and EMA with the lowest FID at the whole budget ("leading so far"
    until every average has got there)."""
    final = [r for r in record["rows"] if r["images"] == record["images"]]
    if not final:
        return f"Chosen: none yet (no recipe has reached {record['images']:,} images)."
    best = min(final, key=lambda r: r["fid"])
    expected = len(record["recipes"]) * len(record["ema_decays"])
    verdict = "Chosen" if len(final) == expected else f"Leading so far ({len(final)} of {expected} averages there)"
    return (f"{verdict}: **{best['recipe']}, EMA {best['ema']:g}**: lowest FID at {record['images']:,} images, "
            f"{best['fid']:.2f} [{best['fid_lo']:.2f}, {best['fid_hi']:.2f}] (n={best['n']}).")


def at_equal_time(record: dict) -> str | None:
    """The verdict for a time budget: each recipe's best average when the fastest recipe finished its images,
    a slower recipe at its first evaluation point past that time (which favours it). None until every
    average of every recipe has finished."""
    final = [r for r in record["rows"] if r["images"] == record["images"]]
    if len(final) < len(record["recipes"]) * len(record["ema_decays"]) or len(record["recipes"]) < 2:
        return None
    finals = {r["recipe"]: r["train_seconds"] for r in final}
    budget = min(finals.values())
    best = []
    for name in finals:
        rows = [r for r in record["rows"] if r["recipe"] == name and r["train_seconds"] >= budget - 1e-9]
        point = min(r["images"] for r in rows)
        best.append(min((r for r in rows if r["images"] == point), key=lambda r: r["fid"]))
    best.sort(key=lambda r: r["fid"])
    cells = "; ".join(f"{r['recipe']}, EMA {r['ema']:g}: {r['fid']:.2f} [{r['fid_lo']:.2f}, {r['fid_hi']:.2f}] at "
                      f"{images_label(r['images'])} images, {r['train_seconds']:.0f} s" for r in best)
    return (f"At equal training time ({budget:.0f} s, when the fastest recipe had seen all its images; a slower "
            f"recipe at its first evaluation point past that, which favours it): **{best[0]['recipe']}, EMA "
            f"{best[0]['ema']:g}** leads. {cells}.")


def render_markdown(record: dict) -> str:
    """Rows recipe x EMA, a column per evaluation point (FID [95% interval]); the best of each column bold."""
    rows = {(r["recipe"], r["ema"], r["images"]): r for r in record["rows"]}
    best = best_cells(record["rows"])
    points = record["eval_points"]
    env, sampler = record["provenance"], record["sampler"]
    lines = [
        f"# Training recipe: FID against images seen ({record['dataset']}, {record['schedule']} schedule)", "",
        f"Measured by `benchmarks/recipe.py` on one {env['device']}, torch {env['environment']['torch']}, commit "
        f"{env['commit'] or 'unknown'}. Each recipe trains the pipeline's Trainer (keys not named: params "
        f"`training.{record['dataset']}`) for {record['images']:,} images; every EMA decay is averaged in the "
        f"same run ({record['ema_warmup']}). Cells: FID [95% interval] of n={record['n']} DDIM-{sampler['steps']} "
        f"samples (seeds 0–{record['n'] - 1}, guidance {sampler['guidance']:g}) against {record['reference']['n']} "
        f"{record['reference']['split']} images. FID at this n carries a finite-n bias: compare rows with each "
        f"other, not with n=10k results.", "",
        "| recipe | EMA | " + " | ".join(f"{images_label(p)} img" for p in points) + " |",
        "| --- | ---: | " + " | ".join("---:" for _ in points) + " |",
    ]
    for recipe in record["recipes"]:
        for decay in record["ema_decays"]:
            cells = [cell(rows.get((recipe["name"], decay, p)), (recipe["name"], decay, p) in best) for p in points]
            lines.append(f"| {recipe['name']} | {ema_label(decay, recipe.get('steps'))} | " + " | ".join(cells) + " |")
    timed = at_equal_time(record)
    lines += ["", chosen(record), *(["", timed] if timed else []), "", *speed_lines(record), "",
              f"Command: `{env['command']}`", ""]
    return "\n".join(lines)


def cell(row: dict | None, bold: bool) -> str:
    """One table cell: FID [lo, hi], bold when best in its column; – when not measured (yet)."""
    if row is None:
        return "–"
    text = f"{row['fid']:.2f} [{row['fid_lo']:.2f}, {row['fid_hi']:.2f}]"
    return f"**{text}**" if bold else text


def plot(record: dict, path: Path) -> None:
    """FID against images seen (log y), one line per recipe x EMA: colour per recipe, dash per EMA."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    dashes = ["-", "--", ":", "-."]
    for i, recipe in enumerate(record["recipes"]):
        for j, decay in enumerate(record["ema_decays"]):
            rows = [r for r in record["rows"] if r["recipe"] == recipe["name"] and r["ema"] == decay]
            if rows:
                ax.plot([r["images_seen"] for r in rows], [r["fid"] for r in rows], dashes[j % len(dashes)],
                        color=f"C{i}", marker="o", label=f"{recipe['name']}, EMA {decay:g}")
    ax.set_yscale("log")
    ax.set_xlabel("training images seen")
    ax.set_ylabel(f"FID (n={record['n']})")
    ax.set_title(f"{record['dataset']} {record['schedule']}: FID vs images, DDIM-{record['sampler']['steps']}")
    ax.grid(True, which="both", alpha=0.3)
    if record["rows"]:
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


@dataclass(frozen=True)
class Outputs:
    """Where results go: JSON always; markdown and plot unless None."""

    json: Path
    markdown: Path | None
    plot: Path | None

    def write(self, record: dict) -> None:
        write_json(self.json, record)
        if self.markdown is not None:
            atomic.write_text(self.markdown, render_markdown(record))
        if self.plot is not None:
            plot(record, self.plot)
