"""The one way diffbench writes a file: all of it or none of it.

Every writer goes through :func:`write_with`: the bytes go to a hidden temporary file in the same
folder (``.<name>.<pid>.<random>.tmp``, gitignored), are flushed and fsynced, and the file is then
renamed over ``path`` with ``os.replace`` (atomic on POSIX) and the folder fsynced. A crash, a kill
or a full disk therefore leaves either the previous file byte-identical or the new one whole, never
half a file; on an exception the temporary file is removed, and a SIGKILL's leftover (its process is
gone) is removed by the next write of the same file. An ``OSError`` (disk full, read-only folder, ...)
becomes :class:`WriteError`: one line naming the file, still an ``OSError``.
"""

from __future__ import annotations

import glob
import io
import os
import secrets
from pathlib import Path
from typing import Any, BinaryIO, Callable

from diffbench.errors import DiffbenchError


class WriteError(DiffbenchError, OSError):
    """A file could not be written (disk full, read-only folder, ...); the previous version is intact."""


def write_with(path: str | Path, writer: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` atomically: ``writer`` gets a binary file handle to fill (np.savez, zip, ...)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_dead_temps(path)
        with open(tmp, "xb") as handle:  # default permissions (0666 & ~umask), like a plain write
            writer(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        reason = error.strerror or type(error).__name__
        failure = WriteError(f"{path}: cannot write ({reason}); the previous version, if any, is unchanged")
        failure.errno = error.errno
        raise failure from error
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def write_bytes(path: str | Path, data: bytes) -> None:
    """``path`` holds exactly ``data`` afterwards, or (on any failure) what it held before."""
    write_with(path, lambda handle: handle.write(data))


def write_text(path: str | Path, text: str) -> None:
    """UTF-8 text, written like :func:`write_bytes`."""
    write_bytes(path, text.encode())


def append_line(path: str | Path, line: str) -> None:
    """Append one line and make it durable before returning (a log others read after a kill: a line is in it
    whole or not at all, since one short write to an O_APPEND file is not interleaved)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, (line.rstrip("\n") + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def save_torch(path: str | Path, obj: Any) -> None:
    """torch.save ``obj`` atomically. Serialised in memory first, so the bytes depend only on ``obj``
    (torch names the archive after the file otherwise): equal objects give equal files."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes(path, buffer.getvalue())


def _remove_dead_temps(path: Path) -> None:
    """Remove temporary files of ``path`` whose writer no longer runs (killed mid-write; pids of this host)."""
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = tmp.name[len(path.name) + 2:].split(".")[0]
        if pid.isdigit() and not _running(int(pid)):
            tmp.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    """Is ``pid`` a process of this host (signal 0 probes without sending)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable; some file systems cannot fsync a folder, which is fine."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
