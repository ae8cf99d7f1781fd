"""What differs between two revisions of a profile: params, runs, provenance, and every metric's verdict."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from diffbench.compare.significance import (
    DEFAULT_LEVEL, NOT_SIGNIFICANT, SIGNIFICANT, UNCHANGED, WORSE, Estimate, direction, verdict,
)

# Fields that say what produced a row. Present in either row → must be equal in both, or the rows are not
# comparable (named, never compared). Absent in both → ignored. Adding a field is one line here.
PROVENANCE: tuple[str, ...] = (
    "n_samples",
    "device",             # compared by kind: "cpu (2 threads)" ≈ "cpu (4 threads)", "NVIDIA H200" ≠ "NVIDIA H100"
    "deterministic",      # the sampler's kind
    "weights_sha256",     # feature extractor / classifier weights
    "feature_extractor",
    "reference_split",
    "reference_n",
    "metric_backend",
    "nfe",
)
# How a provenance field is compared, when not by equality.
NORMALIZE: dict[str, Callable[[Any], Any]] = {
    "device": lambda value: re.sub(r"\s*\(.*\)\s*$", "", str(value)),
}
# Fields that are neither metrics nor provenance: never compared (a commit or date always differs; timings
# depend on the machine's load; kid_std is the spread of KID subsets, not an interval).
NOT_METRICS: tuple[str, ...] = ("seconds_per_image", "kid_std", "commit", "date", "interval_level")
INTERVAL_SUFFIXES = ("_lo", "_hi")

RowKey = tuple[str, str, str]


def row_name(key: RowKey) -> str:
    return "/".join(key)


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings → {"a.b.c": leaf}; lists are leaves; an empty mapping is a leaf of its own."""
    if not isinstance(tree, dict) or (not tree and prefix):
        return {prefix: tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def rows(summary: dict) -> dict[RowKey, dict[str, Any]]:
    """summary.json (dataset → model → run → fields) → {(dataset, model, run): fields}."""
    return {(d, m, r): f for d, models in summary.items() for m, runs in models.items() for r, f in runs.items()}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def metric_names(fields: dict[str, Any]) -> set[str]:
    """Numeric fields that are metrics: not provenance, not an interval bound, not declared informational."""
    bounds = {name for name in fields if name.endswith(INTERVAL_SUFFIXES) and name[:-3] in fields}
    skip = set(PROVENANCE) | set(NOT_METRICS) | bounds
    return {name for name, value in fields.items() if name not in skip and _is_number(value)}


def estimate(fields: dict[str, Any], metric: str) -> Estimate:
    lo, hi = fields.get(metric + "_lo"), fields.get(metric + "_hi")
    level = fields.get("interval_level", DEFAULT_LEVEL)
    if _is_number(lo) and _is_number(hi):
        return Estimate(float(fields[metric]), float(lo), float(hi), float(level))
    return Estimate(float(fields[metric]), level=float(level))


class _Missing:
    """The value of a key or field absent on one side (distinct from a present null)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class Change:
    """One key or field that differs: ``old``/``new`` is MISSING when absent on that side."""

    key: str
    old: Any
    new: Any

    @property
    def kind(self) -> str:
        """'added', 'removed' or 'changed'."""
        return "added" if self.old is MISSING else "removed" if self.new is MISSING else "changed"


def provenance_differences(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """The declared provenance fields on which two rows differ (present in one only counts)."""
    changes = []
    for name in PROVENANCE:
        if name not in old and name not in new:
            continue
        same = NORMALIZE.get(name, lambda v: v)
        if name not in old or name not in new or same(old[name]) != same(new[name]):
            changes.append(Change(name, old.get(name, MISSING), new.get(name, MISSING)))
    return changes


@dataclass(frozen=True)
class MetricChange:
    row: RowKey
    metric: str
    old: Estimate
    new: Estimate
    z: float | None
    verdict: str

    @property
    def delta(self) -> float:
        return self.new.value - self.old.value

    @property
    def direction(self) -> str | None:
        return direction(self.metric)


@dataclass
class Comparison:
    """Everything ``compare`` reports, in report order."""

    old_label: str
    new_label: str
    profile: str
    params_changed: list[Change] = field(default_factory=list)
    runs_added: list[RowKey] = field(default_factory=list)
    runs_removed: list[RowKey] = field(default_factory=list)
    not_comparable: dict[RowKey, list[Change]] = field(default_factory=dict)
    metrics: list[MetricChange] = field(default_factory=list)
    metrics_added: dict[str, list[RowKey]] = field(default_factory=dict)    # metric → rows that gained it
    metrics_removed: dict[str, list[RowKey]] = field(default_factory=dict)  # metric → rows that lost it

    @property
    def significant(self) -> list[MetricChange]:
        return [m for m in self.metrics if m.verdict in SIGNIFICANT]

    @property
    def regressions(self) -> list[MetricChange]:
        return [m for m in self.metrics if m.verdict == WORSE]

    @property
    def tested(self) -> int:
        """Metrics with an interval on both sides."""
        return sum(m.z is not None for m in self.metrics)


def _order(change: MetricChange) -> tuple:
    """Significant, not significant, no interval, unchanged; within a group larger |z| first, then by name."""
    rank = (0 if change.verdict in SIGNIFICANT else 1 if change.verdict == NOT_SIGNIFICANT
            else 3 if change.verdict == UNCHANGED else 2)
    return rank, -abs(change.z or 0.0), change.row, change.metric


def compare(old_summary: dict, new_summary: dict, old_params: dict, new_params: dict,
            old_label: str, new_label: str, profile: str) -> Comparison:
    """Compare two revisions' summary.json and params.yaml (already parsed)."""
    result = Comparison(old_label, new_label, profile)
    old_flat, new_flat = flatten(old_params), flatten(new_params)
    for key in sorted(old_flat.keys() | new_flat.keys()):
        if key not in old_flat or key not in new_flat or old_flat[key] != new_flat[key]:
            result.params_changed.append(Change(key, old_flat.get(key, MISSING), new_flat.get(key, MISSING)))
    old_rows, new_rows = rows(old_summary), rows(new_summary)
    result.runs_added = sorted(new_rows.keys() - old_rows.keys())
    result.runs_removed = sorted(old_rows.keys() - new_rows.keys())
    for key in sorted(old_rows.keys() & new_rows.keys()):
        old, new = old_rows[key], new_rows[key]
        if differences := provenance_differences(old, new):
            result.not_comparable[key] = differences
            continue
        old_metrics, new_metrics = metric_names(old), metric_names(new)
        for metric in sorted(old_metrics & new_metrics):
            a, b = estimate(old, metric), estimate(new, metric)
            z, word = verdict(metric, a, b)
            result.metrics.append(MetricChange(key, metric, a, b, z, word))
        for metric in sorted(new_metrics - old_metrics):
            result.metrics_added.setdefault(metric, []).append(key)
        for metric in sorted(old_metrics - new_metrics):
            result.metrics_removed.setdefault(metric, []).append(key)
    result.metrics.sort(key=_order)
    return result
