"""Stages fail fast on bad input: one line on stderr naming the field or file, exit status 2."""

import shutil
from pathlib import Path

import pytest

from diffbench.plan import write_plan
from diffbench.data import DATA_DIR_ENV
from stages import generate, preflight, prepare, reference, score, train

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    shutil.copy(ROOT / "profiles" / "quick" / "params.yaml", tmp_path / "params.yaml")
    write_plan(tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def fails(main, argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    return err


@pytest.mark.parametrize(
    "main, argv, expected",
    [
        (prepare.main, ["svhn"], "datasets: unknown dataset 'svhn'; allowed: mnist, cifar10-jpeg"),
        (reference.main, ["svhn"], "datasets: unknown dataset 'svhn'"),
        (train.main, ["mnist", "exponential"], "models.schedules: no schedule 'exponential'; allowed: linear, cosine"),
        (train.main, ["mnist", "cosine"], "data/mnist/train.npz"),
        (generate.main, ["mnist-cosine", "ddim-500-cfg1"], "run mnist-cosine/ddim-500-cfg1: not planned by params.yaml"),
        (generate.main, ["mnist-cosine", "ddim-10-cfg1", "--n", "7"], "--n 7: params plan 32 images"),
        (generate.main, ["mnist-cosine", "ddim-10-cfg1"], "reference_models/mnist-cosine/model.pt"),
        (score.main, ["mnist-sqrt", "ddim-10-cfg1"], "run mnist-sqrt/ddim-10-cfg1: not planned"),
        (score.main, ["mnist-cosine", "ddim-10-cfg1"], "features/mnist/reference.npz does not exist"),
    ],
)
def test_bad_input_is_one_line_before_any_work(workdir, capsys, main, argv, expected):
    assert expected in fails(main, argv, capsys)


def test_preflight_refuses_an_image_folder_without_a_local_copy(workdir, capsys, monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)  # cifar10-jpeg has no download source
    err = fails(preflight.main, [], capsys)
    assert f"dataset cifar10-jpeg (imagefolder) has no download source: set {DATA_DIR_ENV}" in err
    assert not Path("preflight.ok").exists()


def test_corrupt_model_file_is_named(workdir, capsys):
    model = workdir / "reference_models" / "mnist-cosine" / "model.pt"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"\x00garbage")
    assert "model.pt: corrupt or unreadable checkpoint" in fails(generate.main, ["mnist-cosine", "ddim-10-cfg1"], capsys)


def test_a_stale_plan_is_refused_before_any_work(workdir, capsys):
    (workdir / "params.yaml").write_text((workdir / "params.yaml").read_text().replace("n_samples: 32", "n_samples: 33"))
    err = fails(generate.main, ["mnist-cosine", "ddim-10-cfg1"], capsys)
    assert "plan.yaml: out of date with params.yaml; run `python -m diffbench plan`" in err


def test_missing_params_file(workdir, capsys):
    assert "nope.yaml: params file not found" in fails(prepare.main, ["mnist", "--params", "nope.yaml"], capsys)


def test_sampling_needs_the_reference_classifier_before_any_work(workdir, capsys, monkeypatch):
    import numpy as np

    from diffbench import layout
    from diffbench.metrics.reference import save_reference

    save_reference(layout.reference_file("mnist"), {"pool": np.zeros((4, 2), np.float32)}, {"n": 4})
    monkeypatch.setenv("DIFFBENCH_INCEPTION_WEIGHTS", str(workdir / "params.yaml"))  # any existing file
    err = fails(score.main, ["mnist-cosine", "ddim-10-cfg1"], capsys)
    assert "mnist-classifier/classifier.json does not exist: run the classifier stage of mnist first" in err


# ---- truncated or damaged inputs: one line naming the file, what is wrong and the rebuild command ----

def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def tiny_split(workdir: Path) -> None:
    import numpy as np

    split = workdir / "data" / "mnist" / "train.npz"
    split.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    np.savez(split, images=rng.integers(0, 256, (16, 8, 8, 1), dtype=np.uint8),
             labels=rng.integers(0, 10, 16).astype(np.int64), class_names=np.array([str(i) for i in range(10)]))


def test_truncated_training_checkpoint_is_named_before_training(workdir, capsys, monkeypatch):
    import torch

    from diffbench.checkpoint import save_atomic

    tiny_split(workdir)
    checkpoint = workdir / "reference_models" / "mnist-cosine" / "checkpoint.pt"
    save_atomic({"format": "x", "weights": torch.zeros(10_000)}, checkpoint)
    truncate(checkpoint)
    monkeypatch.setenv("DIFFBENCH_DEVICE", "cpu")
    err = fails(train.main, ["mnist", "cosine"], capsys)
    assert "reference_models/mnist-cosine/checkpoint.pt: corrupt or unreadable checkpoint" in err
    assert "delete it, then `dvc repro -f train@mnist-cosine`" in err
    assert not (checkpoint.parent / "loss.tsv").exists()  # failed before any training or output


def test_truncated_split_is_named_with_its_rebuild_command(workdir, capsys):
    tiny_split(workdir)
    truncate(workdir / "data" / "mnist" / "train.npz", 0.8)
    err = fails(train.main, ["mnist", "cosine"], capsys)
    assert "corrupt split file data/mnist/train.npz" in err and "`dvc repro -f prepare@mnist`" in err


def test_truncated_model_file_is_named_with_its_rebuild_command(workdir, capsys):
    import torch

    from diffbench.checkpoint import save_atomic

    model = workdir / "reference_models" / "mnist-cosine" / "model.pt"
    save_atomic({"format": "diffbench-model-1", "ema": {"w": torch.zeros(10_000)}}, model)
    truncate(model)
    err = fails(generate.main, ["mnist-cosine", "ddim-10-cfg1"], capsys)
    assert "model.pt: corrupt or unreadable checkpoint" in err and "`dvc repro -f train@mnist-cosine`" in err


def test_truncated_reference_features_fail_before_scoring(workdir, capsys):
    import numpy as np

    from diffbench import layout
    from diffbench.metrics.reference import save_reference

    path = workdir / layout.reference_file("mnist")
    save_reference(path, {"pool": np.ones((64, 32), np.float32)}, {"n": 64})
    truncate(path)
    err = fails(score.main, ["mnist-cosine", "ddim-10-cfg1"], capsys)
    assert "reference features file features/mnist/reference.npz is unreadable or corrupt" in err
    assert "`dvc repro -f reference@mnist`" in err


@pytest.mark.parametrize("damage", ["truncated", "not a zip", "missing", "wrong arrays"])
def test_damaged_samples_file_is_one_line_naming_it_and_the_generate_stage(workdir, damage):
    import numpy as np

    from diffbench import atomic, layout
    from diffbench.errors import DiffbenchError

    path = workdir / layout.run_dir("mnist-cosine", "ddim-10-cfg1") / "samples.npz"
    arrays = {"images": np.zeros((32, 8, 8, 1), np.uint8), "seeds": np.arange(32), "labels": np.arange(32) % 10}
    atomic.write_with(path, lambda handle: np.savez(handle, **arrays))
    if damage == "truncated":
        truncate(path)
    elif damage == "not a zip":
        path.write_bytes(b"\x00" * 100)
    elif damage == "missing":
        path.unlink()
    else:
        atomic.write_with(path, lambda handle: np.savez(handle, images=np.zeros((4, 8), np.float32),
                                                        labels=np.zeros(4)))
    with pytest.raises(DiffbenchError) as caught:
        score.load_samples(path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    assert message.endswith("rebuild it with `dvc repro -f generate@mnist-cosine.ddim-10-cfg1`")


def test_preflight_of_a_shard_checks_only_the_shards_datasets(workdir, capsys, monkeypatch):
    import yaml

    raw = yaml.safe_load(Path("params.yaml").read_text())
    raw["shards"] = {"digits": ["mnist-linear", "mnist-cosine"], "photos": ["cifar10-jpeg-linear", "cifar10-jpeg-cosine"]}
    Path("params.yaml").write_text(yaml.safe_dump(raw))
    write_plan(workdir / "params.yaml")
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)  # cifar10-jpeg has no source; an MNIST shard needs none
    monkeypatch.setenv("DIFFBENCH_SHARD", "digits")
    preflight.main([])
    assert Path("preflight.ok").is_file()
    monkeypatch.setenv("DIFFBENCH_SHARD", "nosuch")
    assert "DIFFBENCH_SHARD=nosuch: not in params shards (digits, photos)" in fails(preflight.main, [], capsys)
