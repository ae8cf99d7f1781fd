"""diffbench.metrics.reference: the reference-features file and its compatibility check."""

from __future__ import annotations

import zipfile
from types import SimpleNamespace

import numpy as np
import pytest
import torch_fidelity

from diffbench.errors import DiffbenchError
from diffbench.metrics.reference import (
    backend_info,
    check_compatible,
    load_reference,
    reference_meta,
    save_reference,
)

EXTRACTOR = SimpleNamespace(name="inception-v3-compat", weights_sha256="ab" * 32)


def meta() -> dict:
    return reference_meta("mnist", "test", 10, "cd" * 32, EXTRACTOR)


def features(with_logits: bool) -> dict:
    rng = np.random.default_rng(0)
    out = {"pool": rng.random((10, 2048), dtype=np.float32)}
    if with_logits:
        out["logits"] = rng.random((10, 1008), dtype=np.float32)
    return out


@pytest.mark.parametrize("with_logits", [False, True])
def test_round_trip_keeps_arrays_bit_exact_and_meta(tmp_path, with_logits):
    path = tmp_path / "cache" / "ref-mnist-test"  # no .npz suffix: the name is kept as given
    save_reference(path, features(with_logits), meta())
    loaded, loaded_meta = load_reference(path)
    assert sorted(loaded) == sorted(features(with_logits))
    for key, array in features(with_logits).items():
        assert loaded[key].dtype == array.dtype and np.array_equal(loaded[key], array)
    assert loaded_meta == meta()
    assert sorted(p.name for p in path.parent.iterdir()) == ["ref-mnist-test"]  # no leftover .part


def test_meta_records_data_extractor_weights_and_backend():
    assert meta() == {
        "dataset": "mnist",
        "split": "test",
        "n": 10,
        "split_sha256": "cd" * 32,
        "feature_extractor": "inception-v3-compat",
        "weights_sha256": "ab" * 32,
        "torch_fidelity_version": torch_fidelity.__version__,
    }


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DiffbenchError, match="ref.npz does not exist"):
        load_reference(tmp_path / "ref.npz")


def corrupt_garbage(path):
    path.write_bytes(b"\x00garbage" * 10)


def corrupt_truncated(path):
    path.write_bytes(path.read_bytes()[:200])


def corrupt_bad_member(path):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("pool.npy", b"not an npy")
        archive.writestr("meta_json.npy", b"")


def corrupt_no_meta(path):
    with path.open("wb") as handle:
        np.savez(handle, pool=np.zeros((2, 3)))


def corrupt_no_pool(path):
    with path.open("wb") as handle:
        np.savez(handle, meta_json=np.array("{}"))


@pytest.mark.parametrize(
    "corrupt", [corrupt_garbage, corrupt_truncated, corrupt_bad_member, corrupt_no_meta, corrupt_no_pool]
)
def test_corrupt_file_is_a_one_line_error_naming_it(tmp_path, corrupt):
    path = tmp_path / "ref.npz"
    save_reference(path, features(True), meta())
    corrupt(path)
    with pytest.raises(DiffbenchError, match="ref.npz") as err:
        load_reference(path)
    assert "\n" not in str(err.value)


def test_saving_without_pool_is_refused(tmp_path):
    with pytest.raises(DiffbenchError, match="no 'pool'"):
        save_reference(tmp_path / "ref.npz", {"logits": np.zeros((2, 3))}, meta())


def test_check_compatible_accepts_same_weights_and_rejects_others():
    check_compatible(meta(), EXTRACTOR)
    other_weights = SimpleNamespace(name=EXTRACTOR.name, weights_sha256="ef" * 32)
    with pytest.raises(DiffbenchError, match="weights_sha256=abab"):
        check_compatible(meta(), other_weights)
    unknown_weights = SimpleNamespace(name=EXTRACTOR.name, weights_sha256=None)
    with pytest.raises(DiffbenchError, match="weights_sha256"):
        check_compatible(meta(), unknown_weights)
    other_network = SimpleNamespace(name="clip-vit-b-32", weights_sha256=EXTRACTOR.weights_sha256)
    with pytest.raises(DiffbenchError, match="feature_extractor"):
        check_compatible(meta(), other_network)


def test_backend_info():
    assert backend_info() == {
        "backend": "torch-fidelity",
        "version": torch_fidelity.__version__,
        "feature_extractor": "inception-v3-compat",
    }
