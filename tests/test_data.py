"""Tests for diffbench.data: IDX/CIFAR/image-folder readers, checksums, canonical .npz files, local-dir lookup."""

from __future__ import annotations

import gzip
import hashlib
import json
import pickle
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffbench import data
from diffbench.data import DATA_DIR_ENV, DatasetSpec, dataset_spec, load_split, prepare_dataset, resolve_local_dir
from diffbench.errors import DataError, ParamsError
from diffbench.hashing import sha256_bytes, sha256_file
from tests.offline import needs_offline, offline_path

CIFAR_JPEG_SHA256 = "144e6539645fe5451f1cf851459511d452505d5dd65aaa24d07c4e69edb4a970"
CLASSES = ("cat", "ant", "bee")  # deliberately unsorted


# --------------------------------------------------------------------------- helpers


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode an array as IDX (uint8 or int32)."""
    code = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C}[array.dtype]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_mnist(folder: Path, n_train: int = 6, n_test: int = 4, gz: bool = True) -> dict[str, np.ndarray]:
    """Write four synthetic MNIST IDX files; return the arrays by file name."""
    rng = np.random.default_rng(0)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        arrays[f"{prefix}-images-idx3-ubyte"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[f"{prefix}-labels-idx1-ubyte"] = rng.integers(0, 10, n, dtype=np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        raw = idx_bytes(array)
        (folder / (f"{name}.gz" if gz else name)).write_bytes(gzip.compress(raw) if gz else raw)
    return arrays


@pytest.fixture
def synthetic_mnist(tmp_path, monkeypatch) -> tuple[Path, dict[str, np.ndarray]]:
    """Synthetic MNIST files, with the module's checksum table pointed at them."""
    folder = tmp_path / "mnist"
    arrays = write_mnist(folder)
    monkeypatch.setattr(data, "MNIST_SHA256", {name: sha256_bytes(idx_bytes(a)) for name, a in arrays.items()})
    return folder, arrays


def image_tree(root: Path, mode: str = "RGB", size: tuple[int, int] = (5, 4)) -> dict[str, list[np.ndarray]]:
    """Write <root>/{train,test}/<class>/<i>.png; return the pixel arrays per split in canonical order."""
    rng = np.random.default_rng(1)
    channels = 3 if mode == "RGB" else 1
    expected: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    for split, count in (("train", 3), ("test", 2)):
        for cls in sorted(CLASSES):
            for i in range(count):
                pixels = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
                path = root / split / cls / f"{i:02d}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels if channels == 3 else pixels[..., 0]).save(path)
                expected[split].append(pixels)
    (root / "README.txt").write_text("not an image\n")
    (root / "train" / "cat" / ".DS_Store").write_bytes(b"junk")
    return expected


def make_tar(source: Path, tar_path: Path, arcname: str) -> Path:
    """Pack source as arcname/ into a .tar.gz, members in a deliberately shuffled order."""
    files = sorted(p for p in source.rglob("*") if p.is_file())
    with tarfile.open(tar_path, "w:gz") as tar:
        for path in reversed(files):
            tar.add(path, arcname=f"{arcname}/{path.relative_to(source).as_posix()}")
    return tar_path


def check_imagefolder(out_dir: Path, expected: dict[str, list[np.ndarray]], channels: int = 3) -> None:
    for split, pixels in expected.items():
        images, labels, names = load_split(out_dir / f"{split}.npz")
        per_class = len(pixels) // len(CLASSES)
        assert names == sorted(CLASSES)
        assert images.shape == (len(pixels), 4, 5, channels) and images.dtype == np.uint8
        assert labels.dtype == np.int64 and labels.tolist() == [c for c in range(3) for _ in range(per_class)]
        np.testing.assert_array_equal(images, np.stack(pixels))


def write_cifar_batches(folder: Path) -> dict[str, bytes]:
    """Synthetic CIFAR-10 python batches (2 images each); return the pickled bytes by file name."""
    rng = np.random.default_rng(2)
    files = {}
    for name in data.CIFAR10_MD5:
        if name == "batches.meta":
            entry = {"label_names": [f"class{i}" for i in range(10)], "num_vis": 3072}
        else:
            entry = {"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), "labels": [int(rng.integers(10))] * 2}
        files[name] = pickle.dumps(entry, protocol=2)
    folder.mkdir(parents=True, exist_ok=True)
    for name, blob in files.items():
        (folder / name).write_bytes(blob)
    return files


def one_line_error(excinfo: pytest.ExceptionInfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------- params


def test_dataset_spec_accepts_valid_entries():
    assert dataset_spec("mnist", {}) == DatasetSpec("mnist", "mnist")
    assert dataset_spec("cifar10", None).kind == "cifar10"
    spec = dataset_spec("cifar10-jpeg", {"kind": "imagefolder", "archive": "x.tar.gz", "sha256": "AB" * 32})
    assert spec == DatasetSpec("cifar10-jpeg", "imagefolder", "x.tar.gz", "ab" * 32)
    assert dataset_spec("m2", {"kind": "mnist", "local": "/data/m"}).kind == "mnist"


@pytest.mark.parametrize(
    ("name", "entry", "needle"),
    [
        ("faces", {"kind": "celeba"}, "datasets.faces.kind: 'celeba' is not one of mnist, cifar10, imagefolder"),
        ("faces", {}, "datasets.faces.kind: None is not one of"),
        ("mnist", {"kind": "mnist", "colour": 1}, "datasets.mnist.colour: unknown field; allowed: kind"),
        ("mnist", {"archive": "a.tar.gz"}, "datasets.mnist.archive: only allowed with kind imagefolder"),
        ("x", {"kind": "imagefolder", "sha256": "abc"}, "datasets.x.sha256: 'abc' is not 64 hex digits"),
        ("x", {"kind": "imagefolder", "archive": "../up.tar.gz"}, "datasets.x.archive: '../up.tar.gz' must be"),
        ("bad name", {}, "name 'bad name' must match"),
        ("x", ["imagefolder"], "datasets.x: must be a mapping"),
    ],
)
def test_dataset_spec_rejects_with_one_line(name, entry, needle):
    with pytest.raises(ParamsError) as excinfo:
        dataset_spec(name, entry)
    assert needle in one_line_error(excinfo)


def test_resolve_local_dir_precedence(tmp_path, monkeypatch):
    (tmp_path / "env" / "mnist").mkdir(parents=True)
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path / "env"))
    assert resolve_local_dir("mnist", str(tmp_path / "explicit")) == tmp_path / "explicit"
    assert resolve_local_dir("mnist", None) == tmp_path / "env" / "mnist"
    assert resolve_local_dir("cifar10", None) is None  # env set but no such sub-folder
    monkeypatch.delenv(data.DATA_DIR_ENV)
    assert resolve_local_dir("mnist", None) is None


# --------------------------------------------------------------------------- IDX / MNIST


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path, gz):
    arrays = write_mnist(tmp_path, gz=gz)
    for name, array in arrays.items():
        raw_path = tmp_path / (f"{name}.gz" if gz else name)
        parsed = data._parse_idx(data._read_verified(raw_path, sha256_bytes(idx_bytes(array))), name)
        np.testing.assert_array_equal(parsed, array)
    wide = np.arange(-6, 6, dtype=np.int32).reshape(3, 4)
    parsed = data._parse_idx(idx_bytes(wide), "wide")
    assert parsed.dtype == np.int32 and parsed.dtype.isnative
    np.testing.assert_array_equal(parsed, wide)


@pytest.mark.parametrize(
    ("blob", "needle"),
    [
        (b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00", "bad magic number 0x01000801"),
        (b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00", "is not an IDX file"),
        (b"\x00\x00", "is not an IDX file"),
        (b"\x00\x00\x08\x03" + struct.pack(">I", 2), "truncated IDX header"),
        (b"\x00\x00\x08\x01" + struct.pack(">I", 5) + b"\x00", "IDX dims (5,) need 13 bytes, file has 9"),
    ],
)
def test_idx_rejects_bad_files(blob, needle):
    with pytest.raises(DataError) as excinfo:
        data._parse_idx(blob, "some.idx")
    message = one_line_error(excinfo)
    assert "some.idx" in message and needle in message


def test_mnist_prepare_and_load(synthetic_mnist, tmp_path):
    folder, arrays = synthetic_mnist
    provenance = prepare_dataset(dataset_spec("mnist", {}), tmp_path / "out", folder)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images, labels, names = load_split(tmp_path / "out" / f"{split}.npz")
        np.testing.assert_array_equal(images[..., 0], arrays[f"{prefix}-images-idx3-ubyte"])
        np.testing.assert_array_equal(labels, arrays[f"{prefix}-labels-idx1-ubyte"])
        assert images.shape[1:] == (28, 28, 1) and labels.dtype == np.int64 and names == list("0123456789")
        assert provenance["splits"][split] == {
            "n": len(labels),
            "shape": list(images.shape),
            "sha256": sha256_file(tmp_path / "out" / f"{split}.npz"),
        }
    assert provenance["source"] == "local" and provenance["input_sha256"] == data.MNIST_SHA256
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["test.npz", "train.npz"]  # no temp files left


def test_prepare_is_byte_deterministic(synthetic_mnist, tmp_path):
    folder, _ = synthetic_mnist
    first = prepare_dataset(dataset_spec("mnist", {}), tmp_path / "a", folder)
    second = prepare_dataset(dataset_spec("mnist", {}), tmp_path / "b", folder)
    assert first["splits"] == second["splits"]
    with zipfile.ZipFile(tmp_path / "a" / "train.npz") as archive:  # no wall-clock timestamps inside
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


@pytest.mark.parametrize("kind", ["mnist", "imagefolder"])
def test_provenance_json_is_byte_identical_from_two_folders_with_the_same_files(tmp_path, monkeypatch, kind):
    """The prepare stage's provenance.json (a DVC output) holds file names and sha256s, never a path,
    host or time: identical raw files in two different folders, prepared from two different working
    folders, give byte-identical provenance.json files."""
    import shutil

    import yaml

    from stages import prepare

    root = Path(__file__).resolve().parents[1]
    if kind == "mnist":
        arrays = write_mnist(tmp_path / "raw-a" / "deep" / "mnist")
        monkeypatch.setattr(data, "MNIST_SHA256", {name: sha256_bytes(idx_bytes(a)) for name, a in arrays.items()})
        name, entry = "mnist", {"kind": "mnist"}
    else:
        image_tree(tmp_path / "raw-a" / "deep" / "mnist")
        name, entry = "mnist", {"kind": "imagefolder"}  # no archive: the local folder itself
    shutil.copytree(tmp_path / "raw-a" / "deep" / "mnist", tmp_path / "raw-b-elsewhere")
    texts = []
    for work, raw in (("work-a", tmp_path / "raw-a" / "deep" / "mnist"), ("work-b", tmp_path / "raw-b-elsewhere")):
        params = yaml.safe_load((root / "profiles" / "quick" / "params.yaml").read_text())
        params["datasets"][name] = entry | {"local": str(raw)}
        (tmp_path / work).mkdir()
        (tmp_path / work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        monkeypatch.chdir(tmp_path / work)
        prepare.main([name])
        texts.append((tmp_path / work / "data" / name / "provenance.json").read_bytes())
        assert sorted(p.name for p in (tmp_path / work / "data" / name).iterdir()) == [
            "provenance.json", "test.npz", "train.npz"]  # no temp files left behind
    assert texts[0] == texts[1]
    text = texts[0].decode()
    assert str(tmp_path) not in text and "raw-" not in text and "work-" not in text
    import socket

    hostname = socket.gethostname()
    assert len(hostname) < 4 or hostname not in text
    record = json.loads(text)
    assert all(len(digest) == 64 for digest in record["input_sha256"].values())


def test_mnist_checksum_mismatch_names_file_and_hashes(tmp_path):
    write_mnist(tmp_path / "mnist")  # synthetic bytes vs the official checksums
    with pytest.raises(DataError) as excinfo:
        prepare_dataset(dataset_spec("mnist", {}), tmp_path / "out", tmp_path / "mnist")
    message = one_line_error(excinfo)
    assert str(tmp_path / "mnist" / "train-images-idx3-ubyte.gz") in message
    assert data.MNIST_SHA256["train-images-idx3-ubyte"] in message and "got " in message
    assert not (tmp_path / "out" / "train.npz").exists()


def test_mnist_missing_file_names_full_path(synthetic_mnist, tmp_path):
    folder, _ = synthetic_mnist
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as excinfo:
        prepare_dataset(dataset_spec("mnist", {}), tmp_path / "out", folder)
    assert f"MNIST file missing: {folder / 't10k-labels-idx1-ubyte'}[.gz]" in one_line_error(excinfo)


def test_missing_local_dir_is_reported(tmp_path):
    with pytest.raises(DataError) as excinfo:
        prepare_dataset(dataset_spec("mnist", {}), tmp_path / "out", tmp_path / "nowhere")
    assert f"local data dir missing: {tmp_path / 'nowhere'}" in one_line_error(excinfo)


def test_mnist_download_goes_through_the_same_checks(tmp_path, monkeypatch, synthetic_mnist):
    calls = []

    def fake_mnist(root, train, download):  # stands in for torchvision.datasets.MNIST
        calls.append((root, train, download))
        write_mnist(Path(root) / "MNIST" / "raw", gz=False)

    monkeypatch.setenv(data.DOWNLOAD_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(data, "_torchvision_dataset", lambda name: {"MNIST": fake_mnist}[name])
    provenance = prepare_dataset(dataset_spec("mnist", {}), tmp_path / "out", None)
    assert calls == [(str(tmp_path / "cache"), True, True)]
    assert provenance["source"] == "download:torchvision.datasets.MNIST"
    assert load_split(tmp_path / "out" / "train.npz")[0].shape == (6, 28, 28, 1)


def test_download_failure_is_one_line(tmp_path, monkeypatch):
    def offline(root, train, download):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried http://...")

    monkeypatch.setenv(data.DOWNLOAD_DIR_ENV, str(tmp_path))
    monkeypatch.setattr(data, "_torchvision_dataset", lambda name: offline)
    with pytest.raises(DataError) as excinfo:
        prepare_dataset(dataset_spec("cifar10", {}), tmp_path / "out", None)
    message = one_line_error(excinfo)
    assert "torchvision.datasets.CIFAR10" in message and data.DATA_DIR_ENV in message


# --------------------------------------------------------------------------- CIFAR-10


@pytest.fixture
def cifar_md5s(monkeypatch):
    def point_at(files: dict[str, bytes], tgz: Path | None = None) -> None:
        monkeypatch.setattr(data, "CIFAR10_MD5", {n: hashlib.md5(b).hexdigest() for n, b in files.items()})
        if tgz is not None:
            monkeypatch.setattr(data, "CIFAR10_TGZ_MD5", hashlib.md5(tgz.read_bytes()).hexdigest())

    return point_at


@pytest.mark.parametrize("packed", [False, True])
def test_cifar10_from_batches(tmp_path, cifar_md5s, packed):
    batch_dir = tmp_path / "src" / data.CIFAR10_BATCH_DIR
    files = write_cifar_batches(batch_dir)
    local = tmp_path / "src"
    if packed:
        local = tmp_path / "packed"
        local.mkdir()
        make_tar(batch_dir, local / data.CIFAR10_TGZ_NAME, data.CIFAR10_BATCH_DIR)
    cifar_md5s(files, local / data.CIFAR10_TGZ_NAME if packed else None)
    provenance = prepare_dataset(dataset_spec("cifar10", {}), tmp_path / "out", local)
    images, labels, names = load_split(tmp_path / "out" / "train.npz")
    first = pickle.loads(files["data_batch_1"])
    assert images.shape == (10, 32, 32, 3) and names == [f"class{i}" for i in range(10)]
    np.testing.assert_array_equal(images[0], first["data"][0].reshape(3, 32, 32).transpose(1, 2, 0))
    assert labels[:2].tolist() == first["labels"]
    assert load_split(tmp_path / "out" / "test.npz")[0].shape == (2, 32, 32, 3)
    assert provenance["input_sha256"]["test_batch"] == sha256_bytes(files["test_batch"])


def test_cifar10_md5_mismatch(tmp_path, cifar_md5s):
    files = write_cifar_batches(tmp_path / data.CIFAR10_BATCH_DIR)
    cifar_md5s(files)
    (tmp_path / data.CIFAR10_BATCH_DIR / "data_batch_3").write_bytes(b"tampered")
    with pytest.raises(DataError) as excinfo:
        prepare_dataset(dataset_spec("cifar10", {}), tmp_path / "out", tmp_path)
    message = one_line_error(excinfo)
    assert str(tmp_path / data.CIFAR10_BATCH_DIR / "data_batch_3") in message
    assert data.CIFAR10_MD5["data_batch_3"] in message


def test_cifar10_missing_source(tmp_path):
    with pytest.raises(DataError) as excinfo:
        prepare_dataset(dataset_spec("cifar10", {}), tmp_path / "out", tmp_path)
    assert f"CIFAR-10 files missing: {tmp_path / data.CIFAR10_TGZ_NAME}" in one_line_error(excinfo)


@pytest.mark.slow  # importing torchvision takes seconds
def test_cifar10_md5s_match_torchvision():
    datasets = pytest.importorskip("torchvision.datasets")
    listed = dict(datasets.CIFAR10.train_list + datasets.CIFAR10.test_list)
    listed[datasets.CIFAR10.meta["filename"]] = datasets.CIFAR10.meta["md5"]
    assert listed == data.CIFAR10_MD5 and datasets.CIFAR10.tgz_md5 == data.CIFAR10_TGZ_MD5


# --------------------------------------------------------------------------- image folder


def imagefolder_spec(archive: str | None = None, sha256: str | None = None) -> DatasetSpec:
    return dataset_spec("tiny", {"kind": "imagefolder", "archive": archive, "sha256": sha256})


def test_imagefolder_from_tar_gz(tmp_path):
    expected = image_tree(tmp_path / "tree")
    tar_path = make_tar(tmp_path / "tree", tmp_path / "tiny.tar.gz", "tiny")
    digest = sha256_file(tar_path)
    provenance = prepare_dataset(imagefolder_spec("tiny.tar.gz", digest), tmp_path / "out", tmp_path)
    check_imagefolder(tmp_path / "out", expected)
    assert provenance["input_sha256"] == {"tiny.tar.gz": digest}
    assert provenance["source"] == "local:tiny.tar.gz"  # the name params.yaml gives, never a path
    assert provenance["class_names"] == sorted(CLASSES)


def test_imagefolder_from_directory_matches_tar(tmp_path):
    expected = image_tree(tmp_path / "tree")
    make_tar(tmp_path / "tree", tmp_path / "tiny.tar.gz", "tiny")
    from_dir = prepare_dataset(imagefolder_spec("tree"), tmp_path / "dir", tmp_path)
    from_tar = prepare_dataset(imagefolder_spec("tiny.tar.gz"), tmp_path / "tar", tmp_path)
    check_imagefolder(tmp_path / "dir", expected)
    assert from_dir["splits"] == from_tar["splits"]
    pinned = prepare_dataset(imagefolder_spec("tree", from_dir["input_sha256"]["tree/"]), tmp_path / "again", tmp_path)
    assert pinned["splits"] == from_dir["splits"]


def test_imagefolder_without_archive_uses_local_dir(tmp_path):
    expected = image_tree(tmp_path / "tiny")
    prepare_dataset(imagefolder_spec(), tmp_path / "out", tmp_path / "tiny")
    check_imagefolder(tmp_path / "out", expected)


def test_imagefolder_grayscale_keeps_one_channel(tmp_path):
    expected = image_tree(tmp_path / "tree", mode="L")
    prepare_dataset(imagefolder_spec("tree"), tmp_path / "out", tmp_path)
    check_imagefolder(tmp_path / "out", expected, channels=1)


def test_imagefolder_sha256_mismatch(tmp_path):
    image_tree(tmp_path / "tree")
    tar_path = make_tar(tmp_path / "tree", tmp_path / "tiny.tar.gz", "tiny")
    with pytest.raises(DataError) as excinfo:
        prepare_dataset(imagefolder_spec("tiny.tar.gz", "0" * 64), tmp_path / "out", tmp_path)
    message = one_line_error(excinfo)
    assert str(tar_path) in message and "0" * 64 in message and sha256_file(tar_path) in message


def test_imagefolder_needs_a_local_dir():
    with pytest.raises(DataError) as excinfo:
        prepare_dataset(imagefolder_spec("tiny.tar.gz"), Path("unused"), None)
    assert data.DATA_DIR_ENV in one_line_error(excinfo) and "datasets.tiny.local" in str(excinfo.value)


def test_imagefolder_missing_archive(tmp_path):
    with pytest.raises(DataError) as excinfo:
        prepare_dataset(imagefolder_spec("tiny.tar.gz"), tmp_path / "out", tmp_path)
    assert f"image-folder source missing: {tmp_path / 'tiny.tar.gz'}" in one_line_error(excinfo)


def _drop_test_split(root: Path) -> None:
    for path in sorted((root / "test").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()


def _add_image(root: Path, relpath: str, size: tuple[int, int] = (5, 4)) -> None:
    (root / relpath).parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size).save(root / relpath)


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (_drop_test_split, "no images for split test"),
        (lambda root: (root / "train" / "cat" / "00.png").write_bytes(b"bad"), "cannot read image train/cat/00.png"),
        (lambda root: _add_image(root, "test/ant/00.png", (7, 7)), "test/ant/00.png in"),
        (lambda root: _add_image(root, "train/loose.png"), "unexpected file train/loose.png"),
        (lambda root: _add_image(root, "train/cat/deeper/0.png"), "unexpected file train/cat/deeper/0.png"),
        (lambda root: _add_image(root, "test/wasp/0.png"), "class wasp is in test/ but not in train/"),
        (lambda root: _add_image(root, "extra/train/ant/0.png"), "found 2 image-folder trees in"),
    ],
)
def test_imagefolder_layout_errors(tmp_path, damage, needle):
    image_tree(tmp_path / "tree")
    damage(tmp_path / "tree")
    with pytest.raises(DataError) as excinfo:
        prepare_dataset(imagefolder_spec("tree"), tmp_path / "out", tmp_path)
    assert needle in one_line_error(excinfo)


def test_corrupt_archive(tmp_path):
    (tmp_path / "tiny.tar.gz").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(DataError) as excinfo:
        prepare_dataset(imagefolder_spec("tiny.tar.gz"), tmp_path / "out", tmp_path)
    assert f"cannot read archive {tmp_path / 'tiny.tar.gz'}" in one_line_error(excinfo)


# --------------------------------------------------------------------------- load_split


def test_load_split_missing(tmp_path):
    with pytest.raises(DataError) as excinfo:
        load_split(tmp_path / "train.npz")
    assert f"split file missing: {tmp_path / 'train.npz'}" in one_line_error(excinfo)


def _save(path: Path, **arrays: np.ndarray) -> None:
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def _save_npy(path: Path) -> None:
    with open(path, "wb") as handle:
        np.save(handle, np.zeros(3))


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda path: path.write_bytes(b"garbage"),
        lambda path: path.write_bytes(path.read_bytes()[: path.stat().st_size // 2]),
        _save_npy,
        lambda path: _save(path, images=np.zeros((1, 2, 2, 1), np.uint8), labels=np.zeros(1, np.int64)),
        lambda path: _save(
            path,
            images=np.zeros((2, 2, 2, 1), np.uint8),
            labels=np.array([0, 5], np.int64),
            class_names=np.array(["a", "b"]),
        ),
        lambda path: _save(
            path,
            images=np.zeros((2, 2, 2), np.uint8),
            labels=np.array([0, 1], np.int64),
            class_names=np.array(["a", "b"]),
        ),
        lambda path: _save(
            path,
            images=np.zeros((1, 2, 2, 1), np.uint8),
            labels=np.array([0], np.int64),
            class_names=np.array([b"a"], dtype=object),
        ),
    ],
    ids=["garbage", "truncated", "npy", "no-class-names", "label-range", "not-nhwc", "pickled-names"],
)
def test_load_split_corrupt(synthetic_mnist, tmp_path, corrupt):
    folder, _ = synthetic_mnist
    prepare_dataset(dataset_spec("mnist", {}), tmp_path / "out", folder)
    path = tmp_path / "out" / "test.npz"
    corrupt(path)
    with pytest.raises(DataError) as excinfo:
        load_split(path)
    assert f"corrupt split file {path}" in one_line_error(excinfo)


# --------------------------------------------------------------------------- the real local copies


@needs_offline(DATA_DIR_ENV, "mnist")
def test_real_mnist(tmp_path):
    provenance = prepare_dataset(dataset_spec("mnist", {}), tmp_path, offline_path(DATA_DIR_ENV, "mnist"))
    assert {s: v["shape"] for s, v in provenance["splits"].items()} == {
        "train": [60000, 28, 28, 1],
        "test": [10000, 28, 28, 1],
    }
    for split in ("train", "test"):
        images, labels, _ = load_split(tmp_path / f"{split}.npz")
        assert images.dtype == np.uint8 and sorted(set(labels.tolist())) == list(range(10))
    assert labels[:5].tolist() == [7, 2, 1, 0, 4]  # the well-known first t10k labels


@pytest.mark.slow
@needs_offline(DATA_DIR_ENV, "cifar10-jpeg")
def test_real_cifar10_jpeg(tmp_path):
    spec = dataset_spec(
        "cifar10-jpeg", {"kind": "imagefolder", "archive": "cifar10-jpeg.tar.gz", "sha256": CIFAR_JPEG_SHA256}
    )
    provenance = prepare_dataset(spec, tmp_path, offline_path(DATA_DIR_ENV, "cifar10-jpeg"))
    assert provenance["splits"]["train"]["shape"] == [50000, 32, 32, 3]
    assert provenance["splits"]["test"]["shape"] == [10000, 32, 32, 3]
    _, labels, names = load_split(tmp_path / "test.npz")
    assert names == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    assert np.bincount(labels).tolist() == [1000] * 10


def test_take_subset_is_a_seeded_subset_in_split_order_never_a_prefix():
    from diffbench.data import take_subset

    labels = np.repeat(np.arange(10), 100)  # stored class by class, as image folders are
    images = labels.astype(np.uint8).reshape(-1, 1, 1, 1)
    sub_images, sub_labels = take_subset(images, labels, 200, 0, "metrics.floor_n", Path("train.npz"))
    assert len(sub_labels) == 200 and set(sub_labels) == set(range(10))  # a prefix would be classes 0 and 1
    assert np.all(np.diff(sub_labels) >= 0) and np.array_equal(sub_images.ravel(), sub_labels)
    again = take_subset(images, labels, 200, 0, "metrics.floor_n", Path("train.npz"))[1]
    assert np.array_equal(again, sub_labels)
    assert take_subset(images, labels, 1000, 0, "x", Path("t"))[1] is labels
    with pytest.raises(ParamsError, match="metrics.floor_n: 1001 exceeds the 1000 images of train.npz"):
        take_subset(images, labels, 1001, 0, "metrics.floor_n", Path("train.npz"))
