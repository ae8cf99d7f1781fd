import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from diffbench import distributed, training
from diffbench.checkpoint import load_file, load_model_file
from diffbench.diffusion import NoiseSchedule
from diffbench.errors import DiffbenchError
from diffbench.loss_window import LOSS_HEADER, loss_tsv
from diffbench.training import (
    TrainConfig, Trainer, TrainingDiverged, compile_options, draw_batch, learning_rate, make_trainer, run_signature,
)
from tests.conftest import tiny_unet_config

ROOT = Path(__file__).resolve().parents[1]
CTX = distributed.Context(rank=0, world_size=1, device=torch.device("cpu"))


def config(**changes) -> TrainConfig:
    values = dict(steps=6, batch_size=4, lr=1e-3, warmup_steps=2, weight_decay=0.0, grad_clip=1.0, ema_decay=0.9,
                  p_uncond=0.1, hflip=True, checkpoint_every=3, log_every=2, compile=False, cudagraphs=True,
                  force_layout=False, bf16=True, channels_last=False)
    return TrainConfig(**(values | changes))


def data():
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, (20, 8, 8, 1), dtype=np.uint8))
    return images, torch.from_numpy(rng.integers(0, 10, 20))


def trainer(cfg: TrainConfig) -> Trainer:
    schedule = NoiseSchedule.named("linear", 100)
    unet = tiny_unet_config()
    return Trainer(unet, schedule, cfg, seed=3, ctx=CTX, signature=run_signature(unet, schedule, cfg, 3, "data"))


def states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Killed(Exception):
    """Stands in for SIGKILL between two checkpoints."""


def kill_at(step: int):
    def log(row, rate):
        if row.step == step:
            raise Killed
    return log


def test_resume_gives_bitwise_the_same_weights_ema_and_loss_curve(tmp_path):
    """Checkpoints at 3 and 6, log rows at 2, 4, 6, 8: one run stops cleanly at 3 (mid-interval),
    another is killed at 8 after the checkpoint at 6; both resume to 9 and equal the straight run."""
    images, labels = data()
    cfg = config(steps=9)
    straight = trainer(cfg)
    straight.fit(images, labels, tmp_path / "a.pt", lambda *row: None)

    first = trainer(cfg)
    first.fit(images, labels, tmp_path / "b.pt", lambda *row: None, stop_at=3)
    killed = trainer(cfg)
    assert killed.load_state(tmp_path / "b.pt") and killed.step == 3
    with pytest.raises(Killed):
        killed.fit(images, labels, tmp_path / "b.pt", kill_at(8))
    resumed = trainer(cfg)
    assert resumed.load_state(tmp_path / "b.pt") and resumed.step == 6
    resumed.fit(images, labels, tmp_path / "b.pt", lambda *row: None)

    assert states_equal(straight.model.state_dict(), resumed.model.state_dict())
    assert states_equal(straight.ema.weights(), resumed.ema.weights())
    assert straight.ema.updates == resumed.ema.updates == 9
    assert [row.step for row in straight.history] == [2, 4, 6, 8, 9]
    assert resumed.history == straight.history  # same steps, bitwise the same interval means and lr
    assert [(s.start_step, s.end_step) for s in resumed.segments] == [(0, 3), (3, 6), (6, 9)]


def test_loss_rows_are_the_mean_step_loss_of_each_interval(tmp_path):
    images, labels = data()
    run = trainer(config(steps=7, log_every=3, checkpoint_every=7))
    losses = []
    step = run.train_step
    run.train_step = lambda *args: losses.append(step(*args).item()) or losses[-1]
    run.fit(images, labels, tmp_path / "e.pt", lambda *row: None)
    assert [row.step for row in run.history] == [3, 6, 7]
    for row, chunk in zip(run.history, (losses[0:3], losses[3:6], losses[6:7])):
        assert row.loss == pytest.approx(np.mean(chunk), rel=1e-6)
        assert row.lr == learning_rate(row.step - 1, run.config)
    text = loss_tsv(run.history)
    assert text.startswith(LOSS_HEADER) and LOSS_HEADER == "step\tloss\tlr\n"
    assert text.splitlines()[1] == f"3\t{np.mean(losses[0:3]):.6f}\t{run.history[0].lr:.3e}"


def test_short_run_ema_follows_the_recent_weights_not_the_init(tmp_path):
    """decay 0.9999 over 200 steps: without warm-up the EMA would be ≈ 98% the initial network."""
    images, labels = data()
    run = trainer(config(steps=200, ema_decay=0.9999, log_every=100, checkpoint_every=200, lr=3e-3))
    init = torch.cat([p.detach().flatten().clone() for p in run.model.parameters()])
    run.fit(images, labels, None, lambda *row: None)
    final = torch.cat([p.detach().flatten() for p in run.model.parameters()])
    ema = torch.cat([p.flatten() for p in run.ema.model.parameters()])
    assert (ema - final).norm() < 0.3 * (final - init).norm()
    assert (ema - init).norm() > 0.7 * (final - init).norm()


@pytest.mark.parametrize("bad_step", [5, 6])
def test_nan_batch_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, bad_step):
    images, labels = data()
    run = trainer(config(steps=9))
    path = tmp_path / "f.pt"
    original = training.draw_batch

    def poisoned(*args, **kwargs):
        x0, y = original(*args, **kwargs)
        return (x0 * float("nan"), y) if run.step == bad_step - 1 else (x0, y)

    monkeypatch.setattr(training, "draw_batch", poisoned)
    saved = {}
    with pytest.raises(TrainingDiverged, match=f"non-finite loss at step {bad_step}; stopped at step 6") as error:
        run.fit(images, labels, path, lambda row, rate: saved.setdefault(row.step, sha256(path) if path.exists() else None))
    assert "\n" not in str(error.value) and "last good checkpoint is step 3" in str(error.value)
    assert saved[4] == sha256(path)  # untouched since the checkpoint at step 3
    state = load_file(path)
    assert state["step"] == 3 and all(torch.isfinite(v).all() for v in state["model"].values())


@pytest.mark.parametrize("grad_clip", [1.0, 0.0])
def test_non_finite_gradient_stops_training(tmp_path, grad_clip):
    images, labels = data()
    run = trainer(config(steps=6, grad_clip=grad_clip))
    weight = next(run.model.parameters())
    weight.register_hook(lambda grad: grad * float("inf") if run.step == 3 else grad)
    with pytest.raises(TrainingDiverged, match="non-finite gradient norm at step 4"):
        run.fit(images, labels, tmp_path / "g.pt", lambda *row: None)
    assert load_file(tmp_path / "g.pt")["step"] == 3


def test_checkpoint_from_other_settings_is_not_resumed(tmp_path):
    images, labels = data()
    trainer(config()).fit(images, labels, tmp_path / "c.pt", lambda *row: None, stop_at=3)
    other = trainer(config(lr=5e-4))
    assert not other.load_state(tmp_path / "c.pt") and other.step == 0
    longer = trainer(config(steps=12))  # more steps only: resume is allowed
    assert longer.load_state(tmp_path / "c.pt") and longer.step == 3
    shorter = trainer(config(steps=2))  # already past the end: start over
    assert not shorter.load_state(tmp_path / "c.pt") and shorter.step == 0


def test_corrupt_checkpoint_fails_naming_the_file(tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(DiffbenchError, match="checkpoint.pt: corrupt"):
        trainer(config()).load_state(path)


def test_label_dropout_rate_and_flip():
    images, labels = data()
    generator = torch.Generator().manual_seed(0)
    _, y = draw_batch(images, labels, 20_000, config(p_uncond=0.25), null_label=10, generator=generator)
    assert (y == 10).float().mean().item() == pytest.approx(0.25, abs=0.015)
    x, _ = draw_batch(images[:1], labels[:1], 400, config(p_uncond=0.0), 10, generator)
    flipped = torch.isclose(x, x[:, :, :, torch.arange(7, -1, -1)]).all(dim=(1, 2, 3))
    original = (x == x[0]).all(dim=(1, 2, 3))
    assert 0.4 < (~original).float().mean().item() < 0.6 or flipped.all()


def test_warmup_is_linear_then_constant():
    cfg = config(warmup_steps=4, lr=1.0)
    assert [learning_rate(s, cfg) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_training_lowers_the_loss_on_a_tiny_set(tmp_path):
    images, labels = data()
    images = images[:2]
    run = trainer(config(steps=60, log_every=20, hflip=False, lr=3e-3, checkpoint_every=60))
    run.fit(images, labels[:2], tmp_path / "d.pt", lambda *row: None)
    assert run.history[-1].loss < run.history[0].loss


# ---- the train stage ----------------------------------------------------------------------

@pytest.fixture
def stage_dir(tmp_path, monkeypatch):
    """A quick-profile workdir with a tiny 8×8 'mnist' split and an 8-step training recipe."""
    from diffbench import layout

    params = yaml.safe_load((ROOT / "profiles" / "quick" / "params.yaml").read_text())
    params["training"]["mnist"] |= {"steps": 8, "batch_size": 4, "warmup_steps": 2, "checkpoint_every": 4, "log_every": 2,
                                    "chosen_by": "a test's own recipe"}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    rng = np.random.default_rng(0)
    split = tmp_path / layout.split_file("mnist", "train")
    split.parent.mkdir(parents=True)
    np.savez(split, images=rng.integers(0, 256, (16, 8, 8, 1), dtype=np.uint8),
             labels=rng.integers(0, 10, 16).astype(np.int64), class_names=np.array([str(i) for i in range(10)]))
    monkeypatch.setenv("DIFFBENCH_DEVICE", "cpu")
    monkeypatch.chdir(tmp_path)
    return tmp_path / layout.model_dir("mnist-cosine")


def train_stage(*extra: str) -> None:
    from stages import train

    train.main(["mnist", "cosine", *extra])


def outputs(out: Path) -> dict:
    record = json.loads((out / "train.json").read_text())
    return {"model.pt": sha256(out / "model.pt"), "loss.tsv": (out / "loss.tsv").read_text(),
            "model_card.md": (out / "model_card.md").read_text(), "record": record}


def test_stage_outputs_are_deterministic_and_timings_stay_in_train_json(stage_dir):
    train_stage()
    first = outputs(stage_dir)
    shutil.rmtree(stage_dir)
    train_stage()
    second = outputs(stage_dir)
    for name in ("model.pt", "loss.tsv", "model_card.md"):
        assert first[name] == second[name], name
    run = second["record"]["run"]
    assert run["images_per_second"] > 0 and run["tflops_per_second"] > 0 and run["mfu"] is None  # CPU: no peak
    assert run["wall_minutes"] > 0 and run["images_trained"] == 32 and run["device"].startswith("cpu")
    assert second["record"]["recipe"]["images_seen"] == 32
    card = second["model_card.md"]
    assert "32 images seen" in card and "min(decay, (1 + n)/(10 + n))" in card
    assert "| recipe chosen by | a test's own recipe |" in card  # params training.mnist.chosen_by
    table = card.split("| field | value |")[1]
    assert not any(word in table for word in ("cpu", "img/s", "seconds", "minutes", "resumed"))
    provenance = load_model_file(stage_dir / "model.pt")["provenance"]
    assert "run" not in provenance and "environment" not in provenance
    assert second["loss.tsv"].splitlines()[0] == "step\tloss\tlr" and len(second["loss.tsv"].splitlines()) == 5


def test_stage_resume_after_dvc_deleted_the_outputs_equals_an_uninterrupted_run(stage_dir):
    train_stage()
    straight = outputs(stage_dir)
    shutil.rmtree(stage_dir)
    train_stage("--stop-at", "5")  # checkpoint at 5, inside the log interval 5..6
    assert (stage_dir / "loss.tsv").read_text().count("\n") == 3  # header + rows 2, 4
    (stage_dir / "loss.tsv").unlink()  # dvc repro removes outputs before the stage runs
    train_stage()
    resumed = outputs(stage_dir)
    for name in ("model.pt", "loss.tsv", "model_card.md"):
        assert straight[name] == resumed[name], name
    timing_free = lambda record: {k: v for k, v in record.items() if k != "run"}  # noqa: E731
    assert timing_free(resumed["record"]) == timing_free(straight["record"])
    segments = resumed["record"]["run"]["segments"]
    assert [(s["start_step"], s["end_step"]) for s in segments] == [(0, 5), (5, 8)]
    assert resumed["record"]["run"]["images_trained"] == 32

    for name in ("model.pt", "loss.tsv", "model_card.md", "train.json"):  # killed after the last checkpoint
        (stage_dir / name).unlink()
    train_stage()
    assert outputs(stage_dir) == resumed  # rebuilt from checkpoint.pt: train.json timings included


def test_make_trainer_builds_the_pipeline_trainer_from_params():
    from diffbench.config import load_params

    params = load_params(ROOT / "params.yaml")
    run = make_trainer(params, "mnist", "cosine", (28, 28, 1), 10, CTX, "sha")
    settings = dict(params.section("training")["mnist"])
    assert settings.pop("chosen_by")  # the model card's text, not a training setting
    assert run.config == TrainConfig(**settings)
    assert run.unet_config.channels == params.section("architectures")["mnist"]["channels"]
    assert run.unet_config.image_size == 28 and run.schedule.name == "cosine"


def test_stage_killed_right_after_a_checkpoint_resumes_with_the_whole_loss_curve(stage_dir, monkeypatch):
    """Killed just after the checkpoint at step 4 (mid-run), outputs deleted as `dvc repro` does: the
    rerun resumes from checkpoint.pt, which carries the loss rows, so loss.tsv has every logged step
    exactly once and equals an uninterrupted run's, as do model.pt, the card and train.json's facts."""
    train_stage()
    straight = outputs(stage_dir)
    shutil.rmtree(stage_dir)

    original = training.save_atomic

    def save_then_die(state, path):
        original(state, path)
        if state["step"] == 4:
            raise Killed  # SIGKILL right after the checkpoint reached the disk

    monkeypatch.setattr(training, "save_atomic", save_then_die)
    with pytest.raises(Killed):
        train_stage()
    monkeypatch.setattr(training, "save_atomic", original)
    assert load_file(stage_dir / "checkpoint.pt")["step"] == 4
    for name in ("loss.tsv", "train.json", "model.pt", "model_card.md"):  # dvc repro deletes outputs first
        (stage_dir / name).unlink(missing_ok=True)
    train_stage()
    resumed = outputs(stage_dir)
    steps = [int(line.split("\t")[0]) for line in resumed["loss.tsv"].splitlines()[1:]]
    assert steps == [2, 4, 6, 8]  # every logged step, once
    for name in ("model.pt", "loss.tsv", "model_card.md"):
        assert straight[name] == resumed[name], name
    timing_free = lambda record: {k: v for k, v in record.items() if k != "run"}  # noqa: E731
    assert timing_free(resumed["record"]) == timing_free(straight["record"])
    assert resumed["record"]["result"]["final_loss"] == straight["record"]["result"]["final_loss"] > 0
    assert [(s["start_step"], s["end_step"]) for s in resumed["record"]["run"]["segments"]] == [(0, 4), (4, 8)]


def test_stage_nan_batch_is_one_line_naming_the_step_and_keeps_the_good_checkpoint(stage_dir, monkeypatch, capsys):
    """A NaN batch at step 6 (after the checkpoint at 4): exit status 2, one line naming step 6, and
    checkpoint.pt byte-identical to the good step-4 one; no model.pt, card or train.json is written."""
    original = training.draw_batch
    calls, seen = [], {}

    def poisoned(*args, **kwargs):
        x0, y = original(*args, **kwargs)
        calls.append(None)
        if len(calls) == 6:  # the batch of step 6
            seen["checkpoint"] = sha256(stage_dir / "checkpoint.pt")
            x0 = x0 * float("nan")
        return x0, y

    monkeypatch.setattr(training, "draw_batch", poisoned)
    with pytest.raises(SystemExit) as exit_info:
        train_stage()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: training diverged: non-finite loss at step 6")
    assert "the last good checkpoint is step 4" in err and "checkpoint.pt" in err
    assert sha256(stage_dir / "checkpoint.pt") == seen["checkpoint"]
    assert load_file(stage_dir / "checkpoint.pt")["step"] == 4
    assert not any((stage_dir / name).exists() for name in ("model.pt", "model_card.md", "train.json"))


def test_group_norm_moments_is_not_in_the_run_signature():
    """A checkpoint trained with either GroupNorm statistics resumes under the other: the same function."""
    schedule = NoiseSchedule.named("linear", 100)
    signatures = {run_signature(replace(tiny_unet_config(), group_norm_moments=on), schedule, config(), 0, "data")
                  for on in (False, True)}
    assert len(signatures) == 1
    assert run_signature(replace(tiny_unet_config(), channels=8), schedule, config(), 0, "data") not in signatures


def test_compile_options_cuda_graphs_on_one_cuda_device_layout_on_cuda_neither_in_the_signature():
    cuda = distributed.Context(rank=0, world_size=1, device=torch.device("cuda"))
    ddp = distributed.Context(rank=0, world_size=2, device=torch.device("cuda"))
    both = config(cudagraphs=True, force_layout=True)
    assert compile_options(both, cuda) == {"triton.cudagraphs": True, "force_layout_optimization": True}
    assert compile_options(both, ddp) == {"force_layout_optimization": True}
    assert compile_options(config(cudagraphs=False, force_layout=False), cuda) is None
    assert compile_options(both, CTX) is None
    assert both.signature() == config(cudagraphs=False, force_layout=False).signature()  # a checkpoint resumes


def test_recipe_and_model_card_name_the_inductor_options_the_step_ran_with():
    from diffbench.model_card import inductor_text

    assert trainer(config(compile=False)).recipe()["inductor_options"] is None
    assert trainer(config(compile=True, cudagraphs=True, force_layout=True)).recipe()["inductor_options"] == []  # CPU
    options = compile_options(config(cudagraphs=True, force_layout=True),
                              distributed.Context(rank=0, world_size=1, device=torch.device("cuda")))
    assert inductor_text({"inductor_options": sorted(options)}) == \
        " (inductor: force_layout_optimization, triton.cudagraphs)"
    assert inductor_text({}) == inductor_text({"inductor_options": []}) == ""
