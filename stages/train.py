"""DVC stage: train the reference DDPM <dataset>-<schedule> on every visible GPU (torchrun) or the CPU.

Writes reference_models/<model>/{model.pt, loss.tsv, train.json, model_card.md}; keeps
checkpoint.pt (not a DVC output) so an interrupted `dvc repro` resumes where it stopped.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict
from pathlib import Path

from diffbench import distributed, layout, model_card
from diffbench.checkpoint import save_atomic
from diffbench.cli import stage_parser, environment, stage_main, write_json
from diffbench.config import load_params
from diffbench.data import load_split
from diffbench.diffusion import NoiseSchedule
from diffbench.hashing import sha256_file
from diffbench.training import TrainConfig, Trainer, load_training_data, run_signature
from diffbench.unet import UNetConfig, count_parameters

LOSS_HEADER = "step\tloss\tlr\timages_per_second\n"


def open_loss_log(path: Path, resumed_step: int):
    """The loss TSV, keeping rows up to ``resumed_step`` (a fresh file when starting over)."""
    rows = path.read_text().splitlines(keepends=True)[1:] if path.exists() and resumed_step else []
    kept = [row for row in rows if int(row.split("\t", 1)[0]) <= resumed_step]
    path.write_text(LOSS_HEADER + "".join(kept))
    return open(path, "a", buffering=1)


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
    _, height, width, channels = images.shape
    unet = UNetConfig.from_params(params.section("architectures")[spec.dataset], height, channels, len(class_names))
    config = TrainConfig(**params.section("training")[spec.dataset])
    schedule = NoiseSchedule.named(spec.schedule, params.timesteps)
    data_sha = sha256_file(data_path)
    trainer = Trainer(unet, schedule, config, params.seed, ctx, run_signature(unet, schedule, config, params.seed, data_sha))
    out = layout.model_dir(spec.name)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / "checkpoint.pt"
    if trainer.load_state(checkpoint) and ctx.is_main:
        print(f"{spec.name}: resuming from step {trainer.step} ({checkpoint})")
    log_file = open_loss_log(out / "loss.tsv", trainer.step) if ctx.is_main else None

    def log(step: int, loss: float, lr: float, rate: float) -> None:
        log_file.write(f"{step}\t{loss:.6f}\t{lr:.3e}\t{rate:.1f}\n")
        print(f"{spec.name} step {step}/{config.steps} loss {loss:.4f} lr {lr:.2e} {rate:.0f} img/s", flush=True)

    x, y = load_training_data(images, labels, ctx.device)
    result = trainer.fit(x, y, checkpoint, log, stop_at=args.stop_at)
    if ctx.is_main:
        log_file.close()
        record = {
            "model": spec.name, "dataset": spec.dataset, "schedule": spec.schedule,
            "timesteps": params.timesteps, "seed": params.seed, "unet": asdict(unet),
            "parameters": count_parameters(trainer.model), "training": asdict(config),
            "data": {"path": str(data_path), "sha256": data_sha, "n": len(images), "class_names": class_names},
            "result": asdict(result), "environment": environment(),
        }
        if trainer.step >= config.steps:
            save_atomic(trainer.model_file(record), out / "model.pt")
            write_json(out / "train.json", record)
            (out / "model_card.md").write_text(model_card.render(record))
            print(f"{spec.name}: {result.steps} steps, {result.images_per_second:.0f} img/s on "
                  f"{result.world_size} x {result.device} -> {out / 'model.pt'}")
    distributed.cleanup()


if __name__ == "__main__":
    main()
