"""diffbench.atomic: every writer goes through one helper that leaves the old file or the new one, whole."""

import errno
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from diffbench import atomic, checkpoint, cli
from diffbench.errors import DiffbenchError

ROOT = Path(__file__).resolve().parents[1]


def fail_fsync(error: BaseException):
    def fsync(fd):
        raise error
    return fsync


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_writes_replace_the_file_whole(tmp_path):
    path = tmp_path / "sub" / "a.bin"
    atomic.write_bytes(path, b"one")
    atomic.write_bytes(path, b"two, longer")
    assert path.read_bytes() == b"two, longer" and leftovers(path.parent) == ["a.bin"]
    atomic.write_text(tmp_path / "t.txt", "ü\n")
    assert (tmp_path / "t.txt").read_bytes() == "ü\n".encode()


def test_new_files_get_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    atomic.write_text(tmp_path / "p.txt", "x")
    assert (tmp_path / "p.txt").stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"),
                                   OSError(errno.EROFS, "Read-only file system")])
def test_disk_full_leaves_the_earlier_file_byte_identical_and_no_temp_file(tmp_path, monkeypatch, error):
    path = tmp_path / "metrics.json"
    cli.write_json(path, {"fid": 1.5})
    before = path.read_bytes()
    monkeypatch.setattr(atomic.os, "fsync", fail_fsync(error))
    with pytest.raises(atomic.WriteError) as caught:
        cli.write_json(path, {"fid": 2.5})
    assert path.read_bytes() == before and leftovers(tmp_path) == ["metrics.json"]
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{path}: cannot write ({error.strerror})")
    assert caught.value.errno == error.errno
    assert isinstance(caught.value, OSError) and isinstance(caught.value, DiffbenchError)  # stages print one line


def test_a_failure_inside_the_writer_leaves_the_earlier_file(tmp_path):
    path = tmp_path / "samples.npz"
    atomic.write_with(path, lambda handle: np.savez(handle, images=np.arange(3)))
    before = path.read_bytes()

    def half_then_crash(handle):
        handle.write(b"PK\x03\x04 half an archive")
        raise KeyboardInterrupt  # any exception, not only OSError

    with pytest.raises(KeyboardInterrupt):
        atomic.write_with(path, half_then_crash)
    assert path.read_bytes() == before and leftovers(tmp_path) == ["samples.npz"]
    with np.load(path) as data:
        assert data["images"].tolist() == [0, 1, 2]


def test_a_failed_rename_leaves_the_earlier_file(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    checkpoint.save_atomic({"step": 3}, path)
    before = path.read_bytes()

    def replace(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", replace)
    with pytest.raises(atomic.WriteError, match="checkpoint.pt: cannot write"):
        checkpoint.save_atomic({"step": 6}, path)
    assert path.read_bytes() == before and leftovers(tmp_path) == ["checkpoint.pt"]
    assert torch.load(path)["step"] == 3


def test_torch_files_do_not_depend_on_their_name(tmp_path):
    atomic.save_torch(tmp_path / "a.pt", {"w": torch.arange(4)})
    atomic.save_torch(tmp_path / "b.pt", {"w": torch.arange(4)})
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()


def test_every_writer_uses_the_one_helper():
    """No module writes a file by hand: no temp names, renames or plain writes outside diffbench.atomic
    (reports.py, the report stage's figures and tables, is left to its own change)."""
    offenders = []
    for path in sorted([*(ROOT / "diffbench").rglob("*.py"), *(ROOT / "stages").glob("*.py")]):
        if path.name in ("atomic.py", "reports.py"):
            continue
        text = path.read_text()
        pattern = r"os\.replace\(|\.rename\(|\.tmp\b|(?<!atomic)\.write_(text|bytes)\(|np\.savez\(out|\.save\(path\)|open\([^)]*\"[wax]b?\"\)"
        offenders += [f"{path.relative_to(ROOT)}: {m.group(0)}" for m in re.finditer(pattern, text)]
    assert offenders == []


def test_writers_route_through_atomic(tmp_path, monkeypatch):
    """Each writer module calls diffbench.atomic (seen by failing it): JSON, data splits, features,
    grids, plan files."""
    from diffbench import data, grids
    from diffbench.metrics.reference import save_reference

    monkeypatch.setattr(atomic.os, "fsync", fail_fsync(OSError(errno.ENOSPC, "No space left on device")))
    writers = {
        "a.json": lambda p: cli.write_json(p, {}),
        "train.npz": lambda p: data._write_npz(p, {"x": np.zeros(2)}),
        "reference.npz": lambda p: save_reference(p, {"pool": np.zeros((2, 2), np.float32)}, {}),
        "grid.png": lambda p: grids.save_grid(np.zeros((2, 4, 4, 1), np.uint8), p),
        "model.pt": lambda p: checkpoint.save_atomic({}, p),
    }
    for name, write in writers.items():
        with pytest.raises(atomic.WriteError, match=f"{name}: cannot write"):
            write(tmp_path / name)
    assert leftovers(tmp_path) == []


def test_the_temp_file_of_a_killed_writer_goes_with_the_next_write(tmp_path):
    """SIGKILL skips the clean-up; the next write of the same file removes a temp file whose process is gone,
    never one of a running process or of another file."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    names = [f".a.bin.{gone.pid}.0000.tmp", f".a.bin.{os.getpid()}.1111.tmp", f".b.bin.{gone.pid}.2222.tmp"]
    for name in names:
        (tmp_path / name).write_bytes(b"half a file")
    atomic.write_bytes(tmp_path / "a.bin", b"whole")
    assert leftovers(tmp_path) == sorted(names[1:] + ["a.bin"])
