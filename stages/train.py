"""DVC stage: train the reference DDPM <dataset>-<schedule> on every visible GPU (torchrun) or the CPU.

Writes reference_models/<model>/{model.pt, loss.tsv, model_card.md} (DVC outputs: deterministic,
no timings) and train.json (the run record: the same facts plus images/s, TFLOP/s, MFU, wall
time, device). Keeps checkpoint.pt (not a DVC output) with weights, EMA, RNG, loss history and
timings, so an interrupted `dvc repro` resumes where it stopped and writes loss.tsv and train.json
whole, as an uninterrupted run would have.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING

import torch

from diffbench import __version__, distributed, layout, model_card
from diffbench.checkpoint import save_atomic, write_text_atomic
from diffbench.cli import environment, stage_main, stage_parser, write_json
from diffbench.config import load_params
from diffbench.data import load_split
from diffbench.flops import utilisation
from diffbench.hashing import sha256_file
from diffbench.loss_window import LossRow, loss_tsv
from diffbench.progress import eta
from diffbench.run_clock import summary
from diffbench.training import Trainer, load_training_data, make_trainer
from diffbench.unet import count_parameters

if TYPE_CHECKING:
    from diffbench.config import ModelSpec


def model_record(trainer: Trainer, spec: "ModelSpec", seed: int, data: dict, chosen_by: str | None = None) -> dict:
    """The deterministic facts of a trained model: model card, model.pt provenance, train.json.
    ``chosen_by``: params training.<dataset>.chosen_by, where the recipe comes from."""
    return {
        "model": spec.name, "dataset": spec.dataset, "schedule": spec.schedule,
        "timesteps": trainer.schedule.timesteps, "seed": seed, "unet": asdict(trainer.unet_config),
        "parameters": count_parameters(trainer.model), "training": asdict(trainer.config), "data": data,
        "recipe": trainer.recipe() | {"chosen_by": chosen_by}, "result": {"steps": trainer.step, "final_loss": trainer.final_loss},
        "software": {"torch": torch.__version__, "diffbench": __version__},
    }


def run_record(trainer: Trainer, forward_flops_per_image: float) -> dict:
    """Speed and wall time over every segment of the run (train.json only)."""
    timing = summary(trainer.segments, trainer.config.batch_size)
    return timing | utilisation(timing["images_per_second"], forward_flops_per_image, timing["device"] or "")


@stage_main
def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__, "dataset", "schedule")
    parser.add_argument("--stop-at", type=int, default=None, help="stop after this step (tests resume)")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    spec = params.model(args.dataset, args.schedule)
    data_path = layout.split_file(spec.dataset, "train")
    images, labels, class_names = load_split(data_path)
    distributed.relaunch_with_torchrun("stages.train", sys.argv[1:] if argv is None else argv)

    ctx = distributed.setup(os.environ.get("DIFFBENCH_DEVICE"))
    data_sha = sha256_file(data_path)
    trainer = make_trainer(params, spec.dataset, spec.schedule, images.shape[1:], len(class_names), ctx, data_sha)
    out = layout.model_dir(spec.name)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint, loss_file = out / "checkpoint.pt", out / "loss.tsv"
    if trainer.load_state(checkpoint) and ctx.is_main:
        print(f"{spec.name}: resuming from step {trainer.step} ({checkpoint})")
    steps = trainer.config.steps

    def log(row: LossRow, images_per_second: float) -> None:
        write_text_atomic(loss_tsv(trainer.history), loss_file)
        steps_per_second = images_per_second / trainer.config.batch_size
        print(f"{spec.name} step {row.step}/{steps} ({100 * row.step // max(steps, 1)}%) loss {row.loss:.4f} "
              f"lr {row.lr:.2e} {images_per_second:.0f} img/s, {eta(row.step, steps, steps_per_second)}", flush=True)

    if ctx.is_main:  # the history so far (DVC deleted loss.tsv before the stage started)
        write_text_atomic(loss_tsv(trainer.history), loss_file)
    x, y = load_training_data(images, labels, ctx.device)
    trainer.fit(x, y, checkpoint, log, stop_at=args.stop_at)
    if ctx.is_main and trainer.step >= steps:
        data = {"path": data_path.as_posix(), "sha256": data_sha, "n": len(images), "class_names": class_names}
        record = model_record(trainer, spec, params.seed, data, params.section("training")[spec.dataset].get("chosen_by"))
        run = run_record(trainer, record["recipe"]["forward_gflops_per_image"] * 1e9)
        write_text_atomic(loss_tsv(trainer.history), loss_file)
        save_atomic(trainer.model_file(record), out / "model.pt")
        write_text_atomic(model_card.render(record), out / "model_card.md")
        write_json(out / "train.json", record | {"run": run, "environment": environment()})
        mfu = "" if run["mfu"] is None else f", MFU {run['mfu']:.1%}"
        print(f"{spec.name}: {trainer.step} steps, {run['images_per_second'] or 0:.0f} img/s{mfu}, "
              f"{run['wall_minutes']:.1f} min on {run['world_size']} x {run['device']} -> {out / 'model.pt'}")
    distributed.cleanup()


if __name__ == "__main__":
    main()
