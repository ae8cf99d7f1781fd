"""A Comparison as markdown (for people) or JSON (for tools)."""

from __future__ import annotations

import json
import math
from typing import Any

from diffbench.compare.diff import MISSING, Change, Comparison, MetricChange, RowKey, row_name
from diffbench.compare.significance import (
    CRITICAL_Z, NO_INTERVAL, NOT_SIGNIFICANT, SIGNIFICANT, UNCHANGED, Estimate,
)

TEST = ("two-sided z-test on Δ = new − old: se of each estimate = half-width of its 95% interval on the side "
        f"facing the other / 1.96; significant when |z| > {CRITICAL_Z:.2f} (5% level per metric, so about 1 in 20 "
        "metrics that did not really change comes out significant by chance)")
ABSENT = "(absent)"
_LISTED = 3  # regressions named in the summary line


def _num(x: float) -> str:
    return f"{x:.4g}"


def _estimate(e: Estimate) -> str:
    return f"{_num(e.value)} [{_num(e.lo)}, {_num(e.hi)}]" if e.has_interval else _num(e.value)


def _value(v: Any) -> str:
    if v is MISSING:
        return ABSENT
    return v if isinstance(v, str) else json.dumps(v, default=str, ensure_ascii=False)


def _cell(v: Any) -> str:
    return _value(v).replace("|", "\\|")


def _changes(changes: list[Change]) -> str:
    return ", ".join(f"{c.key} {_value(c.old)} → {_value(c.new)}" for c in changes)


def _brief(m: MetricChange) -> str:
    return f"{m.metric} {row_name(m.row)} {_num(m.old.value)} → {_num(m.new.value)}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def summary_line(c: Comparison) -> str:
    """'3 significant changes, 2 regressions: fid mnist/… 25.8 → 43.4; …; 1 row not comparable, …'."""
    worse = c.regressions
    head = f"{_plural(len(c.significant), 'significant change')}, {_plural(len(worse), 'regression')}"
    if worse:
        head += ": " + "; ".join(_brief(m) for m in worse[:_LISTED]) + ("; …" if len(worse) > _LISTED else "")
    untested = sum(m.verdict == NO_INTERVAL for m in c.metrics)
    tail = [f"{c.tested} metrics tested" + (f", {untested} changed without an interval" if untested else "")]
    if c.not_comparable:
        tail.append(f"{_plural(len(c.not_comparable), 'row')} not comparable")
    if c.runs_added or c.runs_removed:
        tail.append(f"runs {len(c.runs_added)} added, {len(c.runs_removed)} removed")
    tail.append(f"{_plural(len(c.params_changed), 'param')} {'differs' if len(c.params_changed) == 1 else 'differ'}")
    return f"{head} ({'; '.join(tail)})"


def _metric_table(metrics: list[MetricChange]) -> list[str]:
    lines = ["| run | metric | old [95% interval] | new [95% interval] | Δ | z | better | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for m in metrics:
        z = "" if m.z is None else f"{m.z:+.2f}"
        word = f"**{m.verdict}**" if m.verdict in SIGNIFICANT else m.verdict
        lines.append(f"| {row_name(m.row)} | {m.metric} | {_estimate(m.old)} | {_estimate(m.new)} | "
                     f"{m.delta:+.4g} | {z} | {m.direction or 'no direction'} | {word} |")
    return lines


def _rows(keys: list[RowKey]) -> str:
    return ", ".join(row_name(k) for k in keys) if keys else "none"


def _params_heading(c: Comparison) -> str:
    kinds = [p.kind for p in c.params_changed]
    return (f"## Params: {kinds.count('changed')} changed, {kinds.count('added')} added, "
            f"{kinds.count('removed')} removed")


def markdown(c: Comparison) -> str:
    out = [f"# diffbench compare: {c.old_label} → {c.new_label} (profile {c.profile or '.'})", "",
           f"**{summary_line(c)}**", "", f"Test: {TEST}.", "", _params_heading(c), ""]
    if c.params_changed:
        out += ["| key | old | new |", "|---|---|---|"]
        out += [f"| {p.key} | {_cell(p.old)} | {_cell(p.new)} |" for p in c.params_changed]
    else:
        out.append("none")
    out += ["", "## Runs", "", f"- added: {_rows(c.runs_added)}", f"- removed: {_rows(c.runs_removed)}",
            "- not comparable (what produced them differs; their metrics are not compared): "
            + ("none" if not c.not_comparable else "")]
    out += [f"  - {row_name(k)}: {_changes(v)}" for k, v in c.not_comparable.items()]
    groups = [("Significant changes", [m for m in c.metrics if m.verdict in SIGNIFICANT]),
              ("Not significant", [m for m in c.metrics if m.verdict == NOT_SIGNIFICANT]),
              ("Changed without an interval: Δ only, untested", [m for m in c.metrics if m.verdict == NO_INTERVAL])]
    for title, metrics in groups:
        out += ["", f"## {title} ({len(metrics)})", ""]
        out += _metric_table(metrics) if metrics else ["none"]
    same = sum(m.verdict == UNCHANGED for m in c.metrics)
    out += ["", f"{_plural(same, 'metric')} of comparable rows {'is' if same == 1 else 'are'} unchanged "
            "(the same value in both revisions; listed in --format json)."]
    if c.metrics_added or c.metrics_removed:
        out += ["", "## Metrics in one revision only", ""]
        out += [f"- {name}: added in {_plural(len(keys), 'row')}" for name, keys in sorted(c.metrics_added.items())]
        out += [f"- {name}: removed in {_plural(len(keys), 'row')}"
                for name, keys in sorted(c.metrics_removed.items())]
    return "\n".join(out) + "\n"


def _finite(x: float | None) -> float | str | None:
    return x if x is None or math.isfinite(x) else ("inf" if x > 0 else "-inf")


def _metric_json(m: MetricChange) -> dict:
    return {"dataset": m.row[0], "model": m.row[1], "run": m.row[2], "metric": m.metric,
            "old": m.old.value, "old_lo": m.old.lo, "old_hi": m.old.hi,
            "new": m.new.value, "new_lo": m.new.lo, "new_hi": m.new.hi,
            "delta": m.delta, "z": _finite(m.z), "better": m.direction, "verdict": m.verdict}


def _change_json(change: Change) -> dict:
    """{key, kind, old, new}; an absent side is left out."""
    sides = {"old": change.old, "new": change.new}
    return {"key": change.key, "kind": change.kind} | {k: v for k, v in sides.items() if v is not MISSING}


def as_json(c: Comparison) -> str:
    payload = {
        "old": c.old_label, "new": c.new_label, "profile": c.profile or ".", "summary": summary_line(c),
        "test": TEST,
        "counts": {"significant": len(c.significant), "regressions": len(c.regressions), "tested": c.tested,
                   "metrics": len(c.metrics)},
        "params_changed": [_change_json(p) for p in c.params_changed],
        "runs_added": [row_name(k) for k in c.runs_added],
        "runs_removed": [row_name(k) for k in c.runs_removed],
        "not_comparable": [{"run": row_name(k), "fields": [_change_json(x) for x in v]}
                           for k, v in c.not_comparable.items()],
        "metrics": [_metric_json(m) for m in c.metrics],
        "metrics_added": {name: [row_name(k) for k in keys] for name, keys in c.metrics_added.items()},
        "metrics_removed": {name: [row_name(k) for k in keys] for name, keys in c.metrics_removed.items()},
    }
    return json.dumps(payload, indent=2, default=str, ensure_ascii=False) + "\n"
