"""Which way is better for each metric, and whether a change between two estimates is significant.

The test: the two numbers are independent estimates, each with a central interval at level L (0.95 unless the
row records ``interval_level``). Each standard error is approximated from the half-width of its interval on the
side facing the other estimate, ``se = half_width / q`` with ``q`` the normal quantile of (1 + L)/2 (1.96 at
95%), so asymmetric (e.g. clipped) intervals are allowed. The difference Δ = new − old is significant when
``|z| = |Δ| / √(se_old² + se_new²) > 1.96`` (two-sided, 5% level). That is more powerful than "the intervals do
not overlap", which for equal widths is a test at about the 0.6% level. Each metric is tested on its own:
among N tests about N/20 come out significant by chance alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

LOWER, HIGHER = "lower", "higher"
# Direction of "better" per base metric; ``classifier_<m>`` follows ``<m>``, and ``<m>_mean`` follows ``<m>``.
DIRECTIONS: dict[str, str] = {
    "fid": LOWER, "kid": LOWER, "bpd": LOWER, "bits_per_dim": LOWER,
    "precision": HIGHER, "recall": HIGHER, "inception_score": HIGHER, "class_accuracy": HIGHER,
    "clip_score": HIGHER,
}
DEFAULT_LEVEL = 0.95
CRITICAL_Z = NormalDist().inv_cdf(0.975)  # 1.96: the two-sided 5% test

BETTER, WORSE, CHANGED = "better", "worse", "changed"
NOT_SIGNIFICANT, NO_INTERVAL, UNCHANGED = "not significant", "no interval", "unchanged"
SIGNIFICANT = (BETTER, WORSE, CHANGED)


def direction(metric: str) -> str | None:
    """'lower' or 'higher' is better; None for a metric without a declared direction."""
    name = metric.removeprefix("classifier_")
    for candidate in (name, name.removesuffix("_mean")):
        if candidate in DIRECTIONS:
            return DIRECTIONS[candidate]
    return None


@dataclass(frozen=True)
class Estimate:
    """A metric value with its interval (``lo``/``hi`` None when the row has none) at ``level``."""

    value: float
    lo: float | None = None
    hi: float | None = None
    level: float = DEFAULT_LEVEL

    @property
    def has_interval(self) -> bool:
        return self.lo is not None and self.hi is not None

    def se_towards(self, other: float) -> float:
        """Standard error from the half-width of the interval on the side facing ``other``."""
        assert self.lo is not None and self.hi is not None
        half = self.hi - self.value if other >= self.value else self.value - self.lo
        return max(half, 0.0) / NormalDist().inv_cdf((1 + self.level) / 2)


def z_score(old: Estimate, new: Estimate) -> float | None:
    """Δ / √(se_old² + se_new²); None without both intervals; ±inf when both intervals have zero width."""
    if not (old.has_interval and new.has_interval):
        return None
    delta = new.value - old.value
    if delta == 0:
        return 0.0
    se = math.hypot(old.se_towards(new.value), new.se_towards(old.value))
    return delta / se if se > 0 else math.copysign(math.inf, delta)


def verdict(metric: str, old: Estimate, new: Estimate) -> tuple[float | None, str]:
    """(z, verdict): better / worse / changed (significant, no declared direction) / not significant /
    no interval / unchanged (the very same value)."""
    z = z_score(old, new)
    if new.value == old.value:
        return z, UNCHANGED
    if z is None:
        return None, NO_INTERVAL
    if abs(z) <= CRITICAL_Z:
        return z, NOT_SIGNIFICANT
    way = direction(metric)
    if way is None:
        return z, CHANGED
    return z, BETTER if (z < 0) == (way == LOWER) else WORSE
