"""``python -m diffbench compare [REV_A] [REV_B]``: which numbers moved between two revisions, and is it real?

Reads ``<profile>/params.yaml`` and ``<profile>/reports/summary.json`` at each revision through git (never a
checkout; ``--workspace`` reads the new side from the working tree) and reports, in markdown or JSON:
params that changed; runs added and removed; rows not comparable because their provenance differs
(``diff.PROVENANCE``); and for every metric of every comparable row old [interval] → new [interval], Δ and a
verdict, largest significant changes first.

Significance test (``significance.py``): the two values are independent estimates with 95% intervals. Each
standard error is approximated as the half-width of the interval on the side facing the other estimate divided
by 1.96 (asymmetric intervals allowed), and the difference is tested with z = Δ / √(se_old² + se_new²),
significant when |z| > 1.96 (two-sided, 5% level). This is more powerful than "the intervals do not overlap"
(about the 0.6% level). Verdicts: better / worse (by the metric's declared direction,
``significance.DIRECTIONS``), changed (significant, no declared direction), not significant, no interval
(either side has none: Δ shown, untested).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from diffbench.compare.diff import Comparison, compare
from diffbench.compare.render import as_json, markdown
from diffbench.compare.source import Revision, profile_path, repository_root
from diffbench.errors import DiffbenchError

__all__ = ["Comparison", "compare", "compare_revisions", "add_arguments", "run"]

FORMATS = {"markdown": markdown, "json": as_json}


def compare_revisions(cwd: Path, rev_a: str, rev_b: str | None, profile: str = ".") -> Comparison:
    """Compare ``profile`` at ``rev_a`` with ``rev_b`` (None: the working tree), from the repository of ``cwd``."""
    top = repository_root(cwd)
    where = profile_path(top, cwd, profile)
    old = Revision.resolve(top, rev_a)
    new = Revision.workspace(top) if rev_b is None else Revision.resolve(top, rev_b)
    return compare(old.summary(where), new.summary(where), old.params(where), new.params(where),
                   old.label, new.label, where)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("revisions", nargs="*", metavar="REV", help="REV_A REV_B (default: HEAD~1 HEAD; one REV: "
                        "REV HEAD; with --workspace: REV_A, default HEAD)")
    parser.add_argument("--workspace", action="store_true", help="compare REV_A with the working tree files")
    parser.add_argument("--profile", default=".",
                        help="profile folder holding params.yaml and reports/ (default: .; e.g. profiles/quick)")
    parser.add_argument("--format", choices=sorted(FORMATS), default="markdown", help="output (default: markdown)")


def _revisions(revisions: list[str], workspace: bool) -> tuple[str, str | None]:
    if workspace:
        if len(revisions) > 1:
            raise DiffbenchError(f"compare --workspace: takes at most one revision (REV_A), got {len(revisions)}")
        return (revisions[0] if revisions else "HEAD"), None
    if len(revisions) > 2:
        raise DiffbenchError(f"compare: takes at most two revisions (REV_A REV_B), got {len(revisions)}")
    rev_a, rev_b = revisions + ["HEAD~1", "HEAD"][len(revisions):]  # one revision: it against HEAD
    return rev_a, rev_b


def run(args: argparse.Namespace) -> int:
    """The ``compare`` subcommand: print the report; exit status 0 (bad input raises DiffbenchError)."""
    rev_a, rev_b = _revisions(args.revisions, args.workspace)
    print(FORMATS[args.format](compare_revisions(Path.cwd(), rev_a, rev_b, args.profile)), end="")
    return 0
