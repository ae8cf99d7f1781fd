"""Dataset layer: MNIST, CIFAR-10 or an image-folder tree, written once per split to one canonical .npz.

Each split file holds ``images`` (uint8, N x H x W x C), ``labels`` (int64, N) and ``class_names``
(str, K). The files are written deterministically (fixed zip timestamps, fixed order), so the same
input always gives byte-identical output and the same sha256 in the provenance record.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import pickle
import re
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

import numpy as np
from PIL import Image

from diffbench import atomic
from diffbench.errors import DataError, ParamsError
from diffbench.hashing import sha256_bytes, sha256_file
from diffbench.layout import rebuild_command

DATASET_KINDS = ("mnist", "cifar10", "imagefolder")
SPLITS = ("train", "test")
DATA_DIR_ENV = "DIFFBENCH_DATA_DIR"
DOWNLOAD_DIR_ENV = "DIFFBENCH_DOWNLOAD_DIR"
LOCAL_DIR_FIELD = "local"  # params.yaml field the caller pops and passes to resolve_local_dir
_SPEC_FIELDS = ("kind", "archive", "sha256", LOCAL_DIR_FIELD)
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")

# sha256 of the official, uncompressed MNIST IDX files.
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
_MNIST_FILES = {  # split -> (images file, labels file)
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_MNIST_SIZE = (28, 28)

# md5s of the CIFAR-10 python version, as torchvision.datasets.CIFAR10 lists them.
CIFAR10_TGZ_NAME = "cifar-10-python.tar.gz"
CIFAR10_TGZ_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_BATCH_DIR = "cifar-10-batches-py"
CIFAR10_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
_CIFAR10_BATCHES = {
    "train": ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"),
    "test": ("test_batch",),
}

# IDX type code -> big-endian numpy dtype.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed zip member timestamp => byte-identical .npz files
_GRAY_MODES = ("1", "L")


@dataclass(frozen=True)
class DatasetSpec:
    """One entry of params.yaml ``datasets:``."""

    name: str  # label used in every report, e.g. "mnist", "cifar10", "cifar10-jpeg"
    kind: str  # one of DATASET_KINDS
    archive: str | None = None  # imagefolder: a .tar.gz file or a directory inside the local dir
    sha256: str | None = None  # imagefolder: expected sha256 of that archive


@dataclass
class _Loaded:
    """A dataset read into memory, before it is written out."""

    splits: dict[str, tuple[np.ndarray, np.ndarray]]  # split -> (images NHWC uint8, labels int64)
    class_names: list[str]
    source: str
    input_sha256: dict[str, str]


# --------------------------------------------------------------------------- params


def dataset_spec(name: str, entry: dict | None) -> DatasetSpec:
    """Validate one params.yaml ``datasets.<name>`` entry (``kind`` defaults to the name if that is a kind)."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ParamsError(f"datasets: name {name!r} must match {_NAME_RE.pattern}")
    where = f"datasets.{name}"
    entry = {} if entry is None else entry
    if not isinstance(entry, dict):
        raise ParamsError(f"{where}: must be a mapping with fields {', '.join(_SPEC_FIELDS)}")
    unknown = sorted(str(key) for key in entry if key not in _SPEC_FIELDS)
    if unknown:
        raise ParamsError(f"{where}.{unknown[0]}: unknown field; allowed: {', '.join(_SPEC_FIELDS)}")
    kind = entry.get("kind", name if name in DATASET_KINDS else None)
    if kind not in DATASET_KINDS:
        raise ParamsError(f"{where}.kind: {kind!r} is not one of {', '.join(DATASET_KINDS)}")
    archive, sha256, _ = (_optional_str(entry, key, where) for key in ("archive", "sha256", LOCAL_DIR_FIELD))
    for key, value in (("archive", archive), ("sha256", sha256)):
        if value is not None and kind != "imagefolder":
            raise ParamsError(
                f"{where}.{key}: only allowed with kind imagefolder ({kind} has fixed official checksums)"
            )
    if archive is not None and not _is_plain_relative(archive):
        raise ParamsError(f"{where}.archive: {archive!r} must be a relative path inside the local data dir")
    if sha256 is not None:
        sha256 = sha256.lower()
        if not _SHA256_RE.fullmatch(sha256):
            raise ParamsError(f"{where}.sha256: {sha256!r} is not 64 hex digits")
    return DatasetSpec(name=name, kind=kind, archive=archive, sha256=sha256)


def _optional_str(entry: dict, key: str, where: str) -> str | None:
    value = entry.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise ParamsError(f"{where}.{key}: {value!r} must be a non-empty string or absent")
    return value


def _is_plain_relative(path: str) -> bool:
    parts = PurePosixPath(path).parts
    return not PurePosixPath(path).is_absolute() and ".." not in parts and "\\" not in path


def resolve_local_dir(name: str, explicit: str | None) -> Path | None:
    """Local source folder: ``explicit`` if given, else ``$DIFFBENCH_DATA_DIR/<name>`` if it exists, else None."""
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get(DATA_DIR_ENV)
    if base:
        candidate = Path(base).expanduser() / name
        if candidate.is_dir():
            return candidate
    return None


def check_source(spec: DatasetSpec, local_dir: Path | None) -> None:
    """Raise DataError when ``spec`` has no local copy and nothing to download it from (an image folder)."""
    if local_dir is None and spec.kind == "imagefolder":
        raise DataError(
            f"dataset {spec.name} (imagefolder) has no download source: set {DATA_DIR_ENV} "
            f"(to a folder holding {spec.name}/) or params datasets.{spec.name}.{LOCAL_DIR_FIELD}"
        )


# --------------------------------------------------------------------------- prepare / load


def prepare_dataset(spec: DatasetSpec, out_dir: Path, local_dir: Path | None) -> dict:
    """Write ``out_dir/{train,test}.npz`` from the local copy (or a download) and return its provenance."""
    if local_dir is not None and not Path(local_dir).is_dir():
        raise DataError(
            f"local data dir missing: {local_dir} (from params datasets.{spec.name}.{LOCAL_DIR_FIELD} "
            f"or ${DATA_DIR_ENV}/{spec.name})"
        )
    loaded = _LOADERS[spec.kind](spec, None if local_dir is None else Path(local_dir))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    splits = {
        split: _write_split(out_dir / f"{split}.npz", images, labels, loaded.class_names)
        for split, (images, labels) in loaded.splits.items()
    }
    return {
        "name": spec.name,
        "kind": spec.kind,
        "source": loaded.source,
        "class_names": loaded.class_names,
        "splits": splits,
        "input_sha256": loaded.input_sha256,
    }


def take_subset(
    images: np.ndarray, labels: np.ndarray, count: int, seed: int, field: str, path: Path
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` images (and labels) of a split: all of it when ``count`` equals its size, else a seeded
    random subset in split order. Never the first ``count``: image-folder splits are stored class by
    class, so a prefix would hold a few classes only. Asking for more than the split holds fails naming
    ``field``."""
    if count > len(images):
        raise ParamsError(f"{field}: {count} exceeds the {len(images)} images of {path}")
    if count == len(images):
        return images, labels
    index = np.sort(np.random.default_rng(seed).choice(len(images), size=count, replace=False))
    return images[index], labels[index]


def load_split(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read one split .npz: images uint8 NHWC, labels int64, class names."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"split file missing: {path} (expected an .npz written by prepare_dataset)")
    rebuild = f"rebuild it with `{rebuild_command(path)}`"
    if not zipfile.is_zipfile(path):
        raise DataError(f"corrupt split file {path}: not an .npz (zip) archive; {rebuild}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            images, labels, names = npz["images"], npz["labels"], npz["class_names"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise DataError(f"corrupt split file {path}: {_one_line(exc)}; {rebuild}") from exc
    if names.ndim != 1 or names.dtype.kind != "U":
        raise DataError(f"corrupt split file {path}: class_names must be a 1-d str array")
    class_names = [str(name) for name in names.tolist()]
    _check_split(images, labels, class_names, f"corrupt split file {path}")
    return images, labels, class_names


def _write_split(path: Path, images: np.ndarray, labels: np.ndarray, class_names: list[str]) -> dict:
    _check_split(images, labels, class_names, f"dataset for {path}")
    _write_npz(path, {"images": images, "labels": labels, "class_names": np.array(class_names, dtype=str)})
    return {"n": len(labels), "shape": list(images.shape), "sha256": sha256_file(path)}


def _check_split(images: np.ndarray, labels: np.ndarray, class_names: list[str], what: str) -> None:
    """Raise DataError unless the arrays follow the canonical format."""
    problem = None
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        problem = f"images must be uint8 N x H x W x (1|3), got {images.dtype} {images.shape}"
    elif labels.dtype != np.int64 or labels.shape != images.shape[:1]:
        problem = f"labels must be int64 of shape ({images.shape[0]},), got {labels.dtype} {labels.shape}"
    elif len(labels) and (labels.min() < 0 or labels.max() >= len(class_names)):
        problem = f"labels must lie in [0, {len(class_names)}), got {labels.min()}..{labels.max()}"
    if problem:
        raise DataError(f"{what}: {problem}")


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write an uncompressed .npz with fixed metadata, via a temp file renamed into place."""
    def write(handle: IO[bytes]) -> None:
        with zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for key, array in arrays.items():
                info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_DATE)
                with archive.open(info, "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)

    atomic.write_with(path, write)


# --------------------------------------------------------------------------- shared helpers


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _check_digest(what: str, algorithm: str, expected: str, actual: str) -> None:
    if actual != expected:
        raise DataError(f"checksum mismatch for {what}: expected {algorithm} {expected}, got {actual}")


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _download_dir() -> Path:
    base = os.environ.get(DOWNLOAD_DIR_ENV)
    return Path(base).expanduser() if base else Path.home() / ".cache" / "diffbench"


def _torchvision_download(class_name: str, spec: DatasetSpec) -> Path:
    """Let torchvision.datasets.<class_name> download its files into the cache dir; return that dir."""
    root = _download_dir()
    try:
        _torchvision_dataset(class_name)(root=str(root), train=True, download=True)
    except Exception as exc:  # network, disk or torchvision's own checks: all become one line
        raise DataError(
            f"download of {spec.name} via torchvision.datasets.{class_name} into {root} failed ({_one_line(exc)}); "
            f"for a local copy set {DATA_DIR_ENV} or params datasets.{spec.name}.{LOCAL_DIR_FIELD}"
        ) from exc
    return root


def _torchvision_dataset(class_name: str) -> Any:
    import torchvision.datasets  # heavy: imported only when a download is needed

    return getattr(torchvision.datasets, class_name)


# --------------------------------------------------------------------------- MNIST


def _load_mnist(spec: DatasetSpec, local_dir: Path | None) -> _Loaded:
    if local_dir is None:
        local_dir = _torchvision_download("MNIST", spec) / "MNIST" / "raw"
        source = "download:torchvision.datasets.MNIST"
    else:
        source = "local"  # no path: provenance.json is a DVC output and must not differ between machines
    paths = {name: _find_idx(local_dir, name) for name in MNIST_SHA256}  # all missing-file errors first
    raw = {name: _read_verified(path, MNIST_SHA256[name]) for name, path in paths.items()}
    splits = {split: _mnist_split(raw, paths, *files) for split, files in _MNIST_FILES.items()}
    return _Loaded(splits, [str(d) for d in range(10)], source, {name: sha256_bytes(b) for name, b in raw.items()})


def _find_idx(folder: Path, name: str) -> Path:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(f"MNIST file missing: {folder / name}[.gz] (expected the official IDX file, raw or gzipped)")


def _read_verified(path: Path, expected_sha256: str) -> bytes:
    """Bytes of a raw or .gz file, checked against the sha256 of the uncompressed content."""
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"cannot read {path}: {_one_line(exc)}") from exc
    what = f"{path} (uncompressed)" if path.suffix == ".gz" else str(path)
    _check_digest(what, "sha256", expected_sha256, sha256_bytes(data))
    return data


def _mnist_split(
    raw: dict[str, bytes], paths: dict[str, Path], images_name: str, labels_name: str
) -> tuple[np.ndarray, np.ndarray]:
    images = _parse_idx(raw[images_name], str(paths[images_name]))
    labels = _parse_idx(raw[labels_name], str(paths[labels_name]))
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != _MNIST_SIZE:
        raise DataError(f"{paths[images_name]}: expected uint8 N x 28 x 28 images, got {images.dtype} {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(f"{paths[labels_name]}: expected {len(images)} labels, got shape {labels.shape}")
    return images[..., None], labels.astype(np.int64)


def _parse_idx(data: bytes, what: str) -> np.ndarray:
    """Decode an IDX file (magic 0 0 <type> <ndim>, big-endian uint32 dims, then the data)."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataError(f"{what} is not an IDX file (bad magic number 0x{data[:4].hex()})")
    ndim, dtype = data[3], np.dtype(_IDX_DTYPES[data[2]])
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{what}: truncated IDX header ({len(data)} bytes)")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + math.prod(dims) * dtype.itemsize
    if len(data) != expected:
        raise DataError(f"{what}: IDX dims {dims} need {expected} bytes, file has {len(data)}")
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="))


# --------------------------------------------------------------------------- CIFAR-10


def _load_cifar10(spec: DatasetSpec, local_dir: Path | None) -> _Loaded:
    if local_dir is None:
        local_dir = _torchvision_download("CIFAR10", spec)
        source = "download:torchvision.datasets.CIFAR10"
    else:
        source = "local"  # the files and their hashes are in input_sha256
    files = _cifar_files(local_dir)
    meta = _unpickle(files["batches.meta"], "batches.meta")
    class_names = [str(n) for n in meta["label_names"]]
    splits = {split: _cifar_split(files, names) for split, names in _CIFAR10_BATCHES.items()}
    return _Loaded(splits, class_names, source, {name: sha256_bytes(b) for name, b in files.items()})


def _cifar_files(folder: Path) -> dict[str, bytes]:
    """The md5-checked CIFAR-10 batch files, from a batch folder or the official tar.gz."""
    # Preference: <folder>/cifar-10-batches-py/, then batches directly in <folder>, then the tar.gz.
    batch_dir = folder / CIFAR10_BATCH_DIR if (folder / CIFAR10_BATCH_DIR).is_dir() else folder
    if batch_dir != folder or (folder / "batches.meta").exists():
        files, where = _cifar_dir_files(batch_dir)
    else:
        files, where = _cifar_tar_files(folder / CIFAR10_TGZ_NAME, folder)
    for name, data in files.items():
        _check_digest(where[name], "md5", CIFAR10_MD5[name], _md5(data))
    return files


def _cifar_dir_files(batch_dir: Path) -> tuple[dict[str, bytes], dict[str, str]]:
    paths = {name: batch_dir / name for name in CIFAR10_MD5}
    missing = [path for path in paths.values() if not path.is_file()]
    if missing:
        raise DataError(f"CIFAR-10 file missing: {missing[0]} (expected the python-version batch file)")
    return {name: path.read_bytes() for name, path in paths.items()}, {name: str(p) for name, p in paths.items()}


def _cifar_tar_files(tgz: Path, folder: Path) -> tuple[dict[str, bytes], dict[str, str]]:
    if not tgz.is_file():
        raise DataError(
            f"CIFAR-10 files missing: {tgz} (expected it, or {folder / CIFAR10_BATCH_DIR}/ with the python batches)"
        )
    data = tgz.read_bytes()
    _check_digest(str(tgz), "md5", CIFAR10_TGZ_MD5, _md5(data))
    members = {f"{CIFAR10_BATCH_DIR}/{name}": name for name in CIFAR10_MD5}
    files = {members[path]: blob for path, blob in _tar_blobs(io.BytesIO(data), str(tgz)).items() if path in members}
    missing = sorted(set(members) - {f"{CIFAR10_BATCH_DIR}/{n}" for n in files})
    if missing:
        raise DataError(f"CIFAR-10 member missing: {missing[0]} in {tgz}")
    return files, {name: f"{tgz}:{CIFAR10_BATCH_DIR}/{name}" for name in files}


def _unpickle(data: bytes, what: str) -> dict[str, Any]:
    try:  # safe enough: the bytes passed their md5 check before this
        return pickle.loads(data, encoding="latin1")
    except Exception as exc:
        raise DataError(f"cannot unpickle CIFAR-10 file {what}: {_one_line(exc)}") from exc


def _cifar_split(files: dict[str, bytes], names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    batches = [_unpickle(files[name], name) for name in names]
    images = np.concatenate([np.asarray(b["data"], dtype=np.uint8).reshape(-1, 3, 32, 32) for b in batches])
    labels = np.concatenate([np.asarray(b["labels"], dtype=np.int64) for b in batches])
    return np.ascontiguousarray(images.transpose(0, 2, 3, 1)), labels


# --------------------------------------------------------------------------- image folder


def _load_imagefolder(spec: DatasetSpec, local_dir: Path | None) -> _Loaded:
    check_source(spec, local_dir)
    source = local_dir / spec.archive if spec.archive else local_dir
    # provenance names the archive as params.yaml does (relative to the local dir), never by its path
    if source.is_file():
        blobs, digest = _archive_blobs(source, spec.sha256)
        digest_key = spec.archive
    elif source.is_dir():
        blobs, digest = _folder_blobs(source, spec.sha256)
        digest_key = f"{spec.archive}/" if spec.archive else "./"
    else:
        raise DataError(f"image-folder source missing: {source} (expected a .tar.gz or a folder with train/ and test/)")
    layout, class_names = _imagefolder_layout(blobs, str(source))
    splits = _decode_splits(layout, blobs, str(source))
    return _Loaded(splits, class_names, f"local:{digest_key}", {digest_key: digest})


def _archive_blobs(path: Path, expected_sha256: str | None) -> tuple[dict[str, bytes], str]:
    digest = sha256_file(path)
    if expected_sha256 is not None:
        _check_digest(str(path), "sha256", expected_sha256, digest)
    with open(path, "rb") as handle:
        return _tar_blobs(handle, str(path)), digest


def _folder_blobs(root: Path, expected_sha256: str | None) -> tuple[dict[str, bytes], str]:
    """All visible files under root; their digest is sha256 over sorted '<sha256>  <relpath>' lines."""
    paths = sorted(p for p in root.rglob("*") if p.is_file() and not _hidden(p.relative_to(root).as_posix()))
    blobs = {p.relative_to(root).as_posix(): p.read_bytes() for p in paths}
    digest = sha256_bytes("".join(f"{sha256_bytes(b)}  {k}\n" for k, b in blobs.items()).encode())
    if expected_sha256 is not None:
        _check_digest(f"{root}/ (tree digest)", "sha256", expected_sha256, digest)
    return blobs, digest


def _tar_blobs(handle: IO[bytes], what: str) -> dict[str, bytes]:
    """Regular, visible members of a (possibly compressed) tar stream, read in one pass."""
    blobs: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=handle, mode="r:*") as tar:
            for member in tar:
                name = PurePosixPath(member.name).as_posix().removeprefix("./")
                extracted = tar.extractfile(member) if member.isfile() and not _hidden(name) else None
                if extracted is not None:
                    blobs[name] = extracted.read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataError(f"cannot read archive {what}: {_one_line(exc)}") from exc
    return blobs


def _hidden(relpath: str) -> bool:
    return any(part.startswith(".") for part in relpath.split("/"))


_Layout = dict[str, list[tuple[int, str]]]  # split -> [(label, path)] in canonical order


def _imagefolder_layout(paths: Iterable[str], where: str) -> tuple[_Layout, list[str]]:
    """Map each split to [(label, path)] sorted by class then file name; classes come from train/."""
    parts = {path: tuple(path.split("/")) for path in paths}
    root = _imagefolder_root(parts.values(), where)
    found: dict[str, list[tuple[str, str, str]]] = {split: [] for split in SPLITS}  # (class, file, path)
    for path, names in parts.items():
        rel = names[len(root) :] if names[: len(root)] == root else ()
        if len(rel) < 2 or rel[0] not in SPLITS:
            continue  # e.g. a README beside train/ and test/
        if len(rel) != 3:
            raise DataError(f"unexpected file {path} in {where}: expected {rel[0]}/<class>/<image>")
        found[rel[0]].append((rel[1], rel[2], path))
    for split, items in found.items():
        if not items:
            raise DataError(f"no images for split {split} in {where}: expected {split}/<class>/<image>")
    class_names = sorted({cls for cls, _, _ in found["train"]})
    extra = sorted({cls for cls, _, _ in found["test"]} - set(class_names))
    if extra:
        raise DataError(f"class {extra[0]} is in test/ but not in train/ of {where}")
    index = {cls: i for i, cls in enumerate(class_names)}
    layout = {split: [(index[cls], path) for cls, _, path in sorted(items)] for split, items in found.items()}
    return layout, class_names


def _imagefolder_root(parts: Iterable[tuple[str, ...]], where: str) -> tuple[str, ...]:
    """The one folder (possibly the top) that holds train/ and test/."""
    roots = {names[:-3] for names in parts if len(names) >= 3 and names[-3] in SPLITS}
    if len(roots) != 1:
        raise DataError(
            f"found {len(roots) or 'no'} image-folder trees in {where}: "
            "expected one [<top>/]{train,test}/<class>/<image>"
        )
    return roots.pop()


def _decode_splits(layout: _Layout, blobs: dict[str, bytes], where: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Decode every image to RGB; if every image of every split is grayscale, keep one channel."""
    first = layout["train"][0][1]
    size = _open_image(blobs[first], first, where).size
    decoded = {split: _decode_images([(p, blobs[p]) for _, p in items], size, where) for split, items in layout.items()}
    all_gray = all(gray for _, gray in decoded.values())
    return {
        split: (images[..., :1] if all_gray else images, np.array([label for label, _ in layout[split]], np.int64))
        for split, (images, _) in decoded.items()
    }


def _decode_images(items: list[tuple[str, bytes]], size: tuple[int, int], where: str) -> tuple[np.ndarray, bool]:
    """Stack (name, encoded image) items of one size into N x H x W x 3 uint8; also say if all were grayscale."""
    out = np.empty((len(items), size[1], size[0], 3), dtype=np.uint8)
    all_gray = True
    for i, (name, blob) in enumerate(items):
        image = _open_image(blob, name, where)
        if image.size != size:
            raise DataError(f"image {name} in {where} is {image.size[0]}x{image.size[1]}, expected {size[0]}x{size[1]}")
        gray = image.mode in _GRAY_MODES
        all_gray &= gray
        try:
            pixels = np.asarray(image.convert("L" if gray else "RGB"))
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot decode image {name} in {where}: {_one_line(exc)}") from exc
        out[i] = pixels[..., None] if gray else pixels
    return out, all_gray


def _open_image(blob: bytes, name: str, where: str) -> Image.Image:
    try:
        return Image.open(io.BytesIO(blob))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot read image {name} in {where}: {_one_line(exc)}") from exc


_LOADERS = {"mnist": _load_mnist, "cifar10": _load_cifar10, "imagefolder": _load_imagefolder}
