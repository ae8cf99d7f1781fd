"""Finished batches of a generation kept on disk, so a killed run resumes where it stopped.

A 10k-image DDPM-1000 run takes minutes on a GPU and a machine can be taken back mid-run. Each batch of
seeds is written (atomically) to ``<run folder>/partial/seeds-<first>-<last>.npz`` with a signature of
everything that decides its pixels (model file, sampler and settings, steps, guidance, precision, batch
size). A rerun loads every batch whose file exists with the same signature and seeds, and samples the rest;
per-image seeds make the result equal to an uninterrupted run. The folder is not a DVC output (DVC does not
delete it before rerunning the stage) and the stage removes it once samples.npz is written.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
import zlib
from pathlib import Path

import numpy as np

from diffbench import atomic


def signature(**fields: object) -> str:
    """A short hash of what decides a batch's pixels (JSON of ``fields``, keys sorted)."""
    text = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class ChunkStore:
    """Batches of one generation in a folder, keyed by their first and last seed."""

    def __init__(self, folder: str | Path, key: str):
        self.folder, self.key = Path(folder), key

    def _path(self, seeds: np.ndarray) -> Path:
        return self.folder / f"seeds-{int(seeds[0])}-{int(seeds[-1])}.npz"

    def load(self, seeds: np.ndarray) -> tuple[np.ndarray, int] | None:
        """(uint8 images, network evaluations) of a stored batch with exactly these seeds and this key, else None.

        A damaged file (a kill during a write leaves none: writes are atomic; a disk fault might) is ignored and
        that batch sampled again."""
        path = self._path(seeds)
        if not path.is_file():
            return None
        try:
            with np.load(path) as data:
                if str(data["key"]) != self.key or not np.array_equal(data["seeds"], seeds):
                    return None
                return data["images"], int(data["nfe"])
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, zlib.error):
            return None

    def save(self, seeds: np.ndarray, images: np.ndarray, nfe: int) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic.write_with(self._path(seeds), lambda handle: np.savez(
            handle, key=np.array(self.key), seeds=seeds, images=images, nfe=np.array(nfe)))

    def clear(self) -> None:
        """Remove the folder (after the whole sample set is written)."""
        shutil.rmtree(self.folder, ignore_errors=True)
