"""Record finished stages in dvc.lock in one pass: ``dvc commit --force A B C`` with one lock write per file.

    python -m diffbench.dvc_commit STAGE...

``dvc commit`` handles its targets one at a time, and each target loads and rewrites the whole dvc.lock
(~0.5 MB for the reference profile, several seconds of YAML on a GPU machine's core). A shard's runners
finish ~100 stages, so its bookkeeping fell behind them: in the MNIST lease of 2026-12-03 the last
``dvc commit`` (23 stages) ran for minutes after the last stage had ended. Here every target is saved
(dependency and output hashes) and committed to the cache as ``dvc commit --force`` does, then each DVC
file's lock is written once, with the entries ``dvc commit`` would have written.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path


def commit_stages(targets: Sequence[str], root: str | Path = ".") -> tuple[list[str], dict[str, str]]:
    """Save and commit ``targets`` (stage names as ``dvc commit`` takes them) under DVC's repository lock,
    then write each DVC file's lock once. A target that cannot be committed (an output missing, say) is
    left out, as ``dvc commit`` leaves it, and the others are recorded. Returns the committed stages'
    names and {target: error} for those left out."""
    from dvc.repo import Repo, lock_repo

    failed: dict[str, str] = {}
    with contextlib.chdir(root), contextlib.closing(Repo(".")) as repo, lock_repo(repo):
        by_file: dict[str, tuple[object, list]] = {}
        for target in targets:
            try:
                infos = repo.stage.collect_granular(target)
                if not infos:
                    raise LookupError("no such stage")
                for info in infos:
                    stage = info.stage
                    stage.save(allow_missing=False)
                    stage.commit(filter_info=info.filter_info, allow_missing=False, relink=True)
                    by_file.setdefault(stage.dvcfile.path, (stage.dvcfile, []))[1].append(stage)
            except Exception as error:  # noqa: BLE001 - DVC raises many kinds; the target is named
                failed[target] = f"{type(error).__name__}: {error}"
        for dvcfile, stages in by_file.values():
            dvcfile.dump_stages(stages, update_pipeline=False)
        return [stage.addressing for _, stages in by_file.values() for stage in stages], failed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stages", nargs="+", help="stage names, e.g. score@mnist-linear.ddim-50-cfg1")
    args = parser.parse_args(argv)
    committed, failed = commit_stages(args.stages)
    for target, error in failed.items():
        print(f"dvc_commit: {target} not recorded: {error}", file=sys.stderr, flush=True)
    print(f"dvc_commit: {len(committed)} stage(s) recorded, one lock write per DVC file", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
