"""diffbench.noisy_classifier (network, file) and noisy_classifier_training (params, training on x_t,
accuracy by t), and the stage stages/noisy_classifier.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from diffbench import layout
from diffbench.checkpoint import load_file
from diffbench.diffusion import NoiseSchedule
from diffbench.errors import DiffbenchError, ParamsError
from diffbench.noisy_classifier import (
    NoisyClassifier,
    NoisyClassifierConfig,
    classifier_bytes,
    load_noisy_classifier,
    save_noisy_classifier,
)
from diffbench.noisy_classifier_config import NoisyClassifierTraining, config_for
from diffbench.noisy_classifier_training import (
    accuracy_by_t,
    accuracy_tsv,
    eval_timesteps,
    learning_rate,
    net_config,
    train_noisy_classifier,
)
from stages import noisy_classifier as stage

ROOT = Path(__file__).resolve().parents[1]
SCHEDULE = NoiseSchedule.named("cosine", 100)
ENTRY = {
    "channels": 16, "channel_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [4], "dropout": 0.0,
    "norm_groups": 8, "steps": 100, "batch_size": 32, "lr": 0.002, "weight_decay": 0.0, "label_smoothing": 0.0,
    "hflip": True, "bf16": True, "compile": False, "log_every": 50, "eval_n": 256, "eval_timesteps": 6,
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def stripes(n: int, seed: int, classes: int = 4, size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Noisy 8×8 grey images whose class is a bright band (rows 2k, 2k+1): flip-invariant, separable at t = 0."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    images = rng.normal(60, 30, (n, size, size, 1))
    for i, label in enumerate(labels):
        images[i, 2 * label : 2 * label + 2] += 120
    return np.clip(images, 0, 255).astype(np.uint8), labels.astype(np.int64)


def training(**changes) -> NoisyClassifierTraining:
    return NoisyClassifierTraining.from_params(ENTRY | changes, "noisy_classifier.toy", SCHEDULE.timesteps)


def toy_net(schedule: NoiseSchedule = SCHEDULE) -> NoisyClassifierConfig:
    return net_config(training(), 8, 1, 4, schedule, "noisy_classifier.toy")


def one_line(error: pytest.ExceptionInfo) -> str:
    text = str(error.value)
    assert "\n" not in text
    return text


@pytest.fixture(scope="module")
def trained() -> tuple[NoisyClassifier, object, list[dict]]:
    model, result = train_noisy_classifier(training(), toy_net(), SCHEDULE, stripes(512, 0), seed=0, device="cpu")
    rows = accuracy_by_t(model, SCHEDULE, stripes(256, 1), eval_timesteps(100, 6), seed=0, batch_size=128)
    return model, result, rows


# --------------------------------------------------------------------------- network


def randomised(model: NoisyClassifier) -> NoisyClassifier:
    """Zero-initialised output convolutions would hide the timestep embedding; give them weights."""
    for p in model.parameters():
        if p.abs().sum() == 0:
            torch.nn.init.normal_(p, std=0.05)
    return model.eval()


def test_logits_for_integer_and_fractional_t_and_batch_independence():
    torch.manual_seed(0)
    model = randomised(NoisyClassifier(toy_net()))
    x = torch.randn(5, 1, 8, 8)
    t = torch.tensor([0, 10, 50, 90, 99])
    with torch.no_grad():
        logits = model(x, t)
        assert logits.shape == (5, 4)
        assert torch.allclose(model(x, t.float()), logits, atol=1e-6)  # float t = integer t at integers
        assert not torch.allclose(model(x, t.float() + 0.5), logits, atol=1e-4)  # and the embedding moves in between
        one_by_one = torch.cat([model(x[i : i + 1], t[i : i + 1]) for i in range(5)])
    assert torch.allclose(one_by_one, logits, atol=1e-5)  # GroupNorm only: no batch statistics


def test_attention_pool_reads_every_position():
    """A change at any single pixel of the last feature map changes the logits (no crop, no stride loss)."""
    torch.manual_seed(0)
    model = NoisyClassifier(toy_net()).eval()
    features = torch.randn(1, 32, 4, 4)
    base = model.pool(features)
    for i in range(4):
        for j in range(4):
            moved = features.clone()
            moved[0, :, i, j] += 1
            assert not torch.allclose(model.pool(moved), base, atol=1e-6)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"norm_groups": 5}, "noisy_classifier.toy.norm_groups: 5 must divide every width [16, 32]"),
        ({"channel_mult": [1, 1, 1, 1, 1]}, "noisy_classifier.toy.channel_mult: 5 levels halve 8px to an odd size 1"),
    ],
)
def test_impossible_shapes_fail_in_one_line(changes, message):
    with pytest.raises(ParamsError) as error:
        net_config(training(**changes), 8, 1, 4, SCHEDULE, "noisy_classifier.toy")
    assert message in one_line(error)


# --------------------------------------------------------------------------- params


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"steps": 0}, "noisy_classifier.toy.steps: must be >= 1, got 0"),
        ({"lr": 0}, "noisy_classifier.toy.lr: must be > 0"),
        ({"label_smoothing": 1.0}, "noisy_classifier.toy.label_smoothing: must be in [0, 1)"),
        ({"dropout": 1.5}, "noisy_classifier.toy.dropout: must be in [0, 1)"),
        ({"eval_timesteps": 101}, "noisy_classifier.toy.eval_timesteps: must be in 2..100 (T), got 101"),
        ({"eval_timesteps": 1}, "noisy_classifier.toy.eval_timesteps: must be in 2..100 (T)"),
        ({"channel_mult": []}, "noisy_classifier.toy.channel_mult: must be a non-empty list of integers >= 1"),
        ({"attn_resolutions": [0]}, "noisy_classifier.toy.attn_resolutions: must be a list of integers >= 1"),
        ({"hflip": "yes"}, "noisy_classifier.toy.hflip: must be bool"),
        ({"width": 8}, "noisy_classifier.toy: unknown key(s) ['width']"),
    ],
)
def test_bad_params_fail_in_one_line(changes, message):
    with pytest.raises(ParamsError) as error:
        training(**changes)
    assert message in one_line(error)


def test_missing_params_fail_in_one_line():
    with pytest.raises(ParamsError, match="noisy_classifier: missing section"):
        config_for(None, "mnist", 100)
    with pytest.raises(ParamsError, match="noisy_classifier.svhn: missing; configured: mnist"):
        config_for({"mnist": ENTRY}, "svhn", 100)
    with pytest.raises(ParamsError, match="noisy_classifier.mnist.eval_n: missing"):
        config_for({"mnist": {k: v for k, v in ENTRY.items() if k != "eval_n"}}, "mnist", 100)
    assert config_for({"mnist": ENTRY}, "mnist", 100) == training()


def test_learning_rate_warms_up_then_decays_to_zero():
    rates = [learning_rate(step, 200, 1.0) for step in range(200)]
    assert rates[0] == pytest.approx(0.1) and max(rates) == pytest.approx(1.0) and rates.index(1.0) == 9
    assert all(a >= b for a, b in zip(rates[9:], rates[10:])) and rates[-1] < 0.01


# --------------------------------------------------------------------------- training and accuracy by t


def test_training_beats_chance_at_small_t_and_accuracy_falls_with_t(trained):
    _, result, rows = trained
    assert [r["t"] for r in rows] == [0, 20, 40, 59, 79, 99]
    accuracy = [r["accuracy"] for r in rows]
    assert accuracy[0] > 0.9 and rows[0]["lo"] > 0.25  # chance is 1/4
    assert accuracy[-1] < 0.4  # ᾱ ≈ 0 at t = T−1: no signal left
    assert all(later <= earlier + 0.05 for earlier, later in zip(accuracy, accuracy[1:]))  # decreasing-ish
    assert all(r["n"] == 256 and r["lo"] <= r["accuracy"] <= r["hi"] + 1e-12 for r in rows)
    assert result.steps == 100 and len(result.history) == 2 and result.history[-1]["step"] == 100
    assert result.history[-1]["loss"] < result.history[0]["loss"]


def test_training_is_seeded():
    short = training(steps=3, log_every=3)
    first, _ = train_noisy_classifier(short, toy_net(), SCHEDULE, stripes(64, 0), seed=1, device="cpu")
    second, _ = train_noisy_classifier(short, toy_net(), SCHEDULE, stripes(64, 0), seed=1, device="cpu")
    other, _ = train_noisy_classifier(short, toy_net(), SCHEDULE, stripes(64, 0), seed=2, device="cpu")
    assert classifier_bytes(first, {}) == classifier_bytes(second, {}) != classifier_bytes(other, {})


def test_accuracy_tsv_and_eval_timesteps():
    assert eval_timesteps(1000, 11) == [0, 100, 200, 300, 400, 500, 599, 699, 799, 899, 999]
    assert eval_timesteps(3, 3) == [0, 1, 2]
    text = accuracy_tsv([{"t": 5, "alpha_bar": 0.5, "accuracy": 0.75, "lo": 0.7, "hi": 0.8, "n": 100}])
    assert text == "t\talpha_bar\taccuracy\tlo\thi\tn\n5\t0.500000\t0.7500\t0.7000\t0.8000\t100\n"


def test_wrong_image_shape_fails():
    with pytest.raises(DiffbenchError, match="takes 8px"):
        train_noisy_classifier(training(steps=1), toy_net(), SCHEDULE, stripes(64, 0, size=16), 0, "cpu")


# --------------------------------------------------------------------------- files


def test_saving_twice_gives_identical_bytes_and_loads_back(trained, tmp_path):
    model = trained[0]
    save_noisy_classifier(tmp_path / "a" / "noisy_classifier.pt", model, {"dataset": "toy"})
    save_noisy_classifier(tmp_path / "b.pt", model, {"dataset": "toy"})
    assert (tmp_path / "a" / "noisy_classifier.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    loaded = load_noisy_classifier(tmp_path / "b.pt", NoiseSchedule.named("cosine", 100))
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    x, t = torch.randn(3, 1, 8, 8), torch.tensor([0, 50, 99])
    with torch.no_grad():
        assert torch.equal(loaded(x, t), model(x, t))
    assert load_file(tmp_path / "b.pt")["net"]["schedule"] == "cosine"


@pytest.mark.parametrize("name, timesteps", [("linear", 100), ("cosine", 1000)])
def test_loading_for_another_schedule_or_t_fails_in_one_line(trained, tmp_path, name, timesteps):
    save_noisy_classifier(tmp_path / "c.pt", trained[0], {})
    with pytest.raises(DiffbenchError) as error:
        load_noisy_classifier(tmp_path / "c.pt", NoiseSchedule.named(name, timesteps))
    expected = f"trained for schedule 'cosine' with T=100, but the model uses {name!r} with T={timesteps}"
    assert expected in one_line(error)


def test_foreign_files_fail_in_one_line(tmp_path):
    torch.save({"format": "diffbench-classifier-1", "net": {}, "state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(DiffbenchError, match="'diffbench-classifier-1', expected 'diffbench-noisy-classifier-1'"):
        load_noisy_classifier(tmp_path / "other.pt", SCHEDULE)
    (tmp_path / "junk.pt").write_bytes(b"\x00junk")
    with pytest.raises(DiffbenchError, match="corrupt or unreadable"):
        load_noisy_classifier(tmp_path / "junk.pt", SCHEDULE)


# --------------------------------------------------------------------------- the stage


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """The quick profile's params with a tiny noisy_classifier.mnist, and toy 8×8 mnist splits."""
    params = yaml.safe_load((ROOT / "profiles" / "quick" / "params.yaml").read_text())
    params["noisy_classifier"] = {"mnist": ENTRY | {"steps": 20, "log_every": 10, "eval_n": 64, "eval_timesteps": 4}}
    params["guidance"]["classifier_scales"] = []  # the stage trains for any model; only mnist is configured
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    for split, (n, seed) in {"train": (128, 0), "test": (96, 1)}.items():
        images, labels = stripes(n, seed)
        path = tmp_path / layout.split_file("mnist", split)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, images=images, labels=labels, class_names=np.array(["a", "b", "c", "d"]))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIFFBENCH_DEVICE", "cpu")
    return tmp_path


def test_stage_writes_reproducible_outputs(workdir):
    out = workdir / "reference_models" / "mnist-cosine-noisy-classifier"
    stage.main(["mnist", "cosine"])
    first = (out / "noisy_classifier.pt").read_bytes()
    record = json.loads((out / "train.json").read_text())
    shutil.rmtree(out)
    stage.main(["mnist", "cosine"])
    assert (out / "noisy_classifier.pt").read_bytes() == first  # no timings or paths in the file
    provenance = load_file(out / "noisy_classifier.pt")["provenance"]
    assert "result" not in provenance and "path" not in json.dumps(provenance)
    assert record["result"]["seconds"] > 0 and record["net"]["schedule"] == "cosine" and record["timesteps"] == 100
    assert record["data"]["train"]["path"] == "data/mnist/train.npz"
    tsv = (out / "accuracy_by_t.tsv").read_text().splitlines()
    assert tsv[0] == "t\talpha_bar\taccuracy\tlo\thi\tn"
    assert [row.split("\t")[0] for row in tsv[1:]] == ["0", "33", "66", "99"]
    card = (out / "model_card.md").read_text()
    assert "schedule cosine, T=100" in card and "training time" in card and card.count("`█") + card.count("` ") >= 4


@pytest.mark.parametrize(
    "argv, edit, expected",
    [
        (["mnist", "exponential"], None, "models.schedules: no schedule 'exponential'"),
        (["svhn", "cosine"], None, "models.datasets: no dataset 'svhn'"),
        (["cifar10-jpeg", "cosine"], None, "noisy_classifier.cifar10-jpeg: missing; configured: mnist"),
        (["mnist", "cosine"], {"eval_n": 1000}, "noisy_classifier.mnist.eval_n: 1000 exceeds the 96 images"),
    ],
)
def test_stage_bad_input_is_one_line_before_training(workdir, capsys, argv, edit, expected):
    if edit:
        params = yaml.safe_load((workdir / "params.yaml").read_text())
        params["noisy_classifier"]["mnist"].update(edit)
        (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(SystemExit) as exit_info:
        stage.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and expected in err
    assert not (workdir / "reference_models").exists()
