"""Stages fail fast on bad input: one line on stderr naming the field or file, exit status 2."""

import shutil
from pathlib import Path

import pytest

from diffbench.plan import write_plan
from stages import generate, prepare, reference, score, train

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
