"""Bring a shard's results into this checkout: its records, cards, curves and logs, and its dvc.lock entries.

    python scripts/unpack_shard.py shard-mnist.tar.gz [--profile .]

Files from the archive replace those here. dvc.lock is merged, not replaced: every stage the shard's
lock records (code and params hashes, output hashes) overwrites this lock's entry of the same name and
the entries of other shards stay, so one lock describes every shard committed so far. Model weights and
sample sets are not in the archive (they stay in the DVC cache of the machine that made them).
"""

from __future__ import annotations

import argparse
import io
import tarfile
from pathlib import Path

import yaml


def merge_locks(mine: dict, theirs: dict) -> dict:
    """``mine`` with every stage of ``theirs`` added or replaced (stage order: mine first, then new ones)."""
    stages = dict(mine.get("stages") or {})
    stages.update(theirs.get("stages") or {})
    return {"schema": theirs.get("schema", mine.get("schema", "2.0")), "stages": stages}


def unpack(archive: Path, profile: Path) -> list[str]:
    """Extract ``archive`` into ``profile``, merging dvc.lock; returns the stages whose entries came in."""
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.isfile()]
        for member in members:
            if Path(member.name).is_absolute() or ".." in Path(member.name).parts:
                raise SystemExit(f"error: {archive}: unsafe path {member.name!r}")
        lock_path = profile / "dvc.lock"
        theirs: dict = {}
        for member in members:
            data = tar.extractfile(member).read()
            if member.name == "dvc.lock":
                theirs = yaml.safe_load(io.BytesIO(data)) or {}
                continue
            target = profile / member.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    mine = yaml.safe_load(lock_path.read_text()) if lock_path.is_file() else {}
    lock_path.write_text(yaml.safe_dump(merge_locks(mine or {}, theirs), sort_keys=False, width=1000))
    return sorted(theirs.get("stages") or {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive", type=Path)
    parser.add_argument("--profile", type=Path, default=Path("."), help="profile folder (default: .)")
    args = parser.parse_args()
    stages = unpack(args.archive, args.profile)
    print(f"{args.archive}: {len(stages)} stage entries merged into {args.profile / 'dvc.lock'}")


if __name__ == "__main__":
    main()
