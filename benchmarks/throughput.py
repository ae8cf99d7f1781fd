"""Issue 9's throughput table in one run: training, sampling and metric-suite speed of diffbench, beside
diffusers' UNet2DModel, and where the time goes.

Parts (``--parts``):
- training: exactly what `stages/train.py` runs, the `Trainer` built by `training.make_trainer` from
  params.yaml (batch, bf16, compile, channels_last, AdamW, clipping, EMA, label dropout, backend
  settings), driven through `Trainer.fit` without checkpoints, on random uint8 images of the dataset's
  shape. The first `--warmup-steps` steps (compile included, reported as start-up) are left out of the
  rate. diffusers' UNet2DModel (DDPM CIFAR-10 configuration) runs in the same Trainer. MFU = 3 ×
  forward FLOPs × images/s ÷ the GPU's dense bf16 peak (989 TFLOP/s on H100/H200).
- sampling: the generate stage's own path (benchmarks/sampling_speed.py): DDIM-50, DDIM-10, DDPM-T
  and DDIM-50 with classifier-free guidance, per dataset U-Net; diffusers' DDIM-50 with its own
  DDIMScheduler loop at the same batch.
- metrics: FID + KID + P/R of 50k images, Inception features included (benchmarks/metrics_speed.py's
  `measure`), when `--metrics-train` and `--metrics-test` name prepared splits.
`--train-variants` adds diffbench training rows in the pipeline's mode with some training settings changed
(``channels_last=true``, ``batch_size=1024``): a lever is measured beside the params.yaml row, in the same run,
before it becomes the default. `--profile` adds torch.profiler tables of the pipeline-mode training step of
every dataset (variants included) and of DDIM steps of the sampling path.
diffusers' rows are skipped, saying so, where diffusers is not importable. `--smoke` runs everything
on the CPU with the quick profile's tiny U-Nets and a few steps, to test the code path only.

    python benchmarks/throughput.py --profile --metrics-train data/cifar10-jpeg/train.npz \\
        --metrics-test data/cifar10-jpeg/test.npz --out reports/performance.json --markdown reports/performance.md
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS))  # the sibling modules, also when imported from elsewhere (tests)

import diffusers_baseline  # noqa: E402
import inductor_levers  # noqa: E402
import performance_report  # noqa: E402
import sampling_speed  # noqa: E402
from bench_common import IMAGE_SHAPES, NUM_CLASSES, fresh_compiler, synchronize  # noqa: E402
from diffbench import distributed  # noqa: E402
from diffbench.config import Params, load_params  # noqa: E402
from diffbench.flops import forward_flops, peak_flops, utilisation  # noqa: E402
from diffbench.records import origin  # noqa: E402
from diffbench.training import Trainer, make_trainer  # noqa: E402
from diffbench.unet import count_parameters  # noqa: E402
from kernel_profile import profile_calls  # noqa: E402

PARTS = ("training", "sampling", "metrics")
LIBRARIES = ("diffbench", "diffusers")
MODES = ("eager", "compile")
# what a --train-variants row may change: training and architecture settings, inductor's levers (inductor_levers.py)
VARIANT_KEYS = {"channels_last": bool, "batch_size": int, "group_norm_moments": bool} | inductor_levers.KEYS
TRAINING_SETTINGS = frozenset({"cudagraphs", "force_layout"})  # params keys of training, set through the Trainer
ARCHITECTURE_SETTINGS = frozenset({"group_norm_moments"})  # params keys of architectures.<dataset>
# Full-size defaults, and the --smoke run's (CPU, quick profile, a few steps); a flag given explicitly wins.
FULL = {"params": "params.yaml", "device": "cuda", "modes": "eager,compile", "warmup_steps": 10, "train_steps": 100,
        "train_batch": None, "sample_batch": None, "sample_batches": 2, "profile_steps": 5, "pool": 50_000}
SMOKE = {"params": "profiles/quick/params.yaml", "device": "cpu", "modes": "eager", "warmup_steps": 1,
         "train_steps": 2, "train_batch": 4, "sample_batch": 4, "sample_batches": 1, "profile_steps": 2, "pool": 64}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", help="settings of the pipeline (default params.yaml)")
    parser.add_argument("--parts", default=",".join(PARTS), help="which parts to run")
    parser.add_argument("--datasets", default="cifar10-jpeg,mnist")
    parser.add_argument("--libraries", default=",".join(LIBRARIES), help="diffusers runs on cifar10-jpeg only")
    parser.add_argument("--modes", help="training modes (default eager,compile)")
    parser.add_argument("--train-batch", type=int, help="override training.<dataset>.batch_size")
    parser.add_argument("--train-variants", nargs="+", default=[], metavar="KEY=VALUE[,KEY=VALUE]",
                        help=f"extra diffbench rows with these training settings; keys: {', '.join(VARIANT_KEYS)}")
    parser.add_argument("--sample-variants", nargs="+", default=[], metavar="KEY=VALUE[,KEY=VALUE]",
                        help="extra DDIM-50 rows of the generate path with these settings; keys: "
                             f"{', '.join(sampling_speed.VARIANT_KEYS)}")
    parser.add_argument("--warmup-steps", type=int)
    parser.add_argument("--train-steps", type=int)
    parser.add_argument("--sample-batch", type=int, help="override sampling.batch_size")
    parser.add_argument("--sample-batches", type=int, help="batches per timed sampling row (DDPM-T: one)")
    parser.add_argument("--cfg-scale", type=float, default=3.0, help="guidance scale of the CFG row")
    parser.add_argument("--metrics-train", help="prepared split playing the 50k generated images")
    parser.add_argument("--metrics-test", help="prepared split of the reference")
    parser.add_argument("--metrics-n", type=int, default=50000)
    parser.add_argument("--inception-weights", help="else $DIFFBENCH_INCEPTION_WEIGHTS")
    parser.add_argument("--profile", action="store_true", help="add the 'where the time goes' tables")
    parser.add_argument("--profile-steps", type=int)
    parser.add_argument("--peak-tflops", type=float, help="the device's dense bf16 peak, where it is not known")
    parser.add_argument("--no-cudnn-benchmark", action="store_true",
                        help="turn off the pipeline's cudnn.benchmark in training (to measure what it buys)")
    parser.add_argument("--device", help="cuda (default) or cpu")
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny U-Nets, a few steps: tests the code only")
    parser.add_argument("--out", help="write results JSON here")
    parser.add_argument("--markdown", help="write performance.md here")
    parser.add_argument("--from-json", nargs="+", help="only render --markdown from earlier --out files (merged)")
    parser.add_argument("--note", action="append", default=[],
                        help="with --from-json: a line for the report's header (what a run did not measure, and why)")
    args = parser.parse_args(argv)
    for key, value in (SMOKE if args.smoke else FULL).items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return check_args(args)


def listed(value: str, allowed: tuple[str, ...] | dict, flag: str) -> list[str]:
    """A comma-separated flag value, every item one of ``allowed``."""
    items = [item for item in value.split(",") if item]
    unknown = [item for item in items if item not in allowed]
    if unknown or not items:
        raise SystemExit(f"{flag}: unknown or no value(s) {unknown}; allowed: {', '.join(allowed)}")
    return items


def parse_variant(text: str, keys: dict = VARIANT_KEYS, flag: str = "--train-variants") -> dict:
    """``channels_last=true,batch_size=1024`` → typed overrides of ``keys``; one line naming the flag otherwise."""
    variant = {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        if key not in keys or not value:
            raise SystemExit(f"{flag} {text!r}: {item!r} is not KEY=VALUE with KEY one of {', '.join(keys)}")
        kind = keys[key]
        if kind is bool and value.lower() in ("true", "false"):
            variant[key] = value.lower() == "true"
        elif kind is int and value.isdigit() and int(value) > 0:
            variant[key] = int(value)
        else:
            raise SystemExit(f"{flag} {text!r}: {key} must be {'true or false' if kind is bool else 'an integer >= 1'}, "
                             f"got {value!r}")
    return variant


def variant_text(variant: dict | None) -> str | None:
    """``channels_last=true,batch_size=1024``, as given; None for the params.yaml row."""
    return ",".join(f"{k}={str(v).lower()}" for k, v in variant.items()) if variant else None


def check_args(args: argparse.Namespace) -> argparse.Namespace:
    """Fail fast, in one line, on a bad flag."""
    args.parts = listed(args.parts, PARTS, "--parts")
    args.datasets = listed(args.datasets, IMAGE_SHAPES, "--datasets")
    args.libraries = listed(args.libraries, LIBRARIES, "--libraries")
    args.modes = listed(args.modes, MODES, "--modes")
    args.train_variants = [parse_variant(text) for text in args.train_variants]
    args.sample_variants = [parse_variant(text, sampling_speed.VARIANT_KEYS, "--sample-variants")
                            for text in args.sample_variants]
    if bool(args.metrics_train) != bool(args.metrics_test):
        raise SystemExit("--metrics-train and --metrics-test go together")
    for flag in ("warmup_steps", "train_steps", "sample_batches", "profile_steps", "metrics_n"):
        if getattr(args, flag) < 1:
            raise SystemExit(f"--{flag.replace('_', '-')}: must be >= 1")
    if args.device.startswith("cuda") and not args.from_json and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: run on a GPU, or use --smoke (CPU) to test the code path")
    return args


# --------------------------------------------------------------------------- training


def train_pool(shape: tuple[int, int, int], size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Random uint8 images (N×H×W×C) and labels on the device: their content does not change the speed."""
    height, width, channels = shape
    images = torch.randint(0, 256, (size, height, width, channels), dtype=torch.uint8, device=device)
    return images, torch.randint(0, NUM_CLASSES, (size,), device=device)


def time_training(trainer: Trainer, images: torch.Tensor, labels: torch.Tensor, warmup: int, steps: int) -> dict:
    """Start-up seconds (first ``warmup`` steps) and images/s of the next ``steps``, through Trainer.fit."""
    if trainer.config.steps < warmup + steps:
        raise SystemExit(f"training.steps {trainer.config.steps} < --warmup-steps + --train-steps")
    noop = lambda row, rate: None  # noqa: E731
    synchronize(trainer.ctx.device)
    start = time.perf_counter()
    trainer.fit(images, labels, None, noop, stop_at=warmup)  # ends with a check: synchronised
    startup = time.perf_counter() - start
    start = time.perf_counter()
    trainer.fit(images, labels, None, noop, stop_at=warmup + steps)
    seconds = time.perf_counter() - start
    return {"startup_seconds": startup, "train_images_per_s": steps * trainer.config.batch_size / seconds,
            "train_batch": trainer.config.batch_size, "mean_loss": mean_loss(trainer)}


def mean_loss(trainer: Trainer) -> float:
    """The mean loss over every step the Trainer took (its closed log intervals and the open one). Rows of one
    run start from the same seed, weights and images, so a variant that only changes how the step is compiled
    or launched (CUDA graphs, layouts, tuning) must land within bf16 noise of the params row's."""
    total, done = 0.0, 0
    for row in trainer.history:
        total, done = total + row.loss * (row.step - done), row.step
    pending = trainer.window.buffer[:trainer.window.count, 0].double()
    return (total + float(pending.sum())) / (done + len(pending))


def pipeline_mode(params: Params, dataset: str) -> str:
    """The training mode the train stage runs: params training.<dataset>.compile."""
    return "compile" if params.section("training")[dataset]["compile"] else "eager"


def profile_training(trainer: Trainer, images: torch.Tensor, labels: torch.Tensor, steps: int) -> dict:
    """Where the time of ``steps`` Trainer steps goes (``kernel_profile.profile_calls``)."""
    batch = trainer.config.batch_size
    return profile_calls(lambda: trainer.train_step(images, labels, batch), steps, trainer.ctx.device)


def measure_training(params: Params, library: str, dataset: str, mode: str, args: argparse.Namespace,
                     profiles: dict, variant: dict | None = None) -> dict:
    """One training row (params.yaml's settings, or these with ``variant`` changed); with --profile, diffbench's
    rows in the pipeline's mode add a table to ``profiles``."""
    shape = IMAGE_SHAPES[dataset]
    ctx = distributed.Context(rank=0, world_size=1, device=torch.device(args.device))
    fresh_compiler()
    settings, levers = inductor_levers.split(variant, TRAINING_SETTINGS)
    architecture = {k: settings.pop(k) for k in ARCHITECTURE_SETTINGS if k in settings}
    overrides = ({"compile": mode == "compile"} | ({"batch_size": args.train_batch} if args.train_batch else {})
                 | settings)
    network = diffusers_baseline.DiffusersEps() if library == "diffusers" else None
    trainer = make_trainer(params, dataset, "linear", shape, NUM_CLASSES, ctx, "benchmark", model=network,
                           overrides=overrides, architecture=architecture)
    if args.no_cudnn_benchmark:
        torch.backends.cudnn.benchmark = False
    chw = (shape[2], shape[0], shape[1])
    flops = (forward_flops(trainer.unet_config) if network is None
             else diffusers_baseline.counted_forward_flops(trainer.model, chw, ctx.device))
    row = {"library": library, "dataset": dataset, "mode": mode, "variant": variant_text(variant),
           "parameters": count_parameters(trainer.model),
           "forward_gflops_per_image": flops / 1e9}
    images, labels = train_pool(shape, args.pool, ctx.device)
    with inductor_levers.patched(levers):  # compiled in the warm-up steps, replayed in the timed ones
        row |= time_training(trainer, images, labels, args.warmup_steps, args.train_steps)
        rate = row["train_images_per_s"]
        row |= {f"train_{k}": v for k, v in utilisation(rate, flops, args.gpu, peak=args.peak).items()}
        if args.profile and (library, mode) == ("diffbench", pipeline_mode(params, dataset)):
            described = ", ".join([mode, *([row["variant"]] if variant else []), f"batch {trainer.config.batch_size}"])
            title = f"training step, {dataset} U-Net ({described})"
            profiles[title] = profile_training(trainer, images, labels, args.profile_steps)
    del trainer, images, labels
    torch.backends.cudnn.benchmark = False  # the Trainer turned it on; the next part starts from the default
    if ctx.device.type == "cuda":
        torch.cuda.empty_cache()
    return row


def failed_or(measure: Callable[[], dict], what: dict, failed: list[dict]) -> dict | None:
    """``measure()``; if a variant row raises, None, with ``what`` and the error's first line added to ``failed``:
    a lever that does not compile or run here is a result, and the params rows around it still get measured."""
    try:
        return measure()
    except Exception as error:  # noqa: BLE001 - any failure of the lever is reported, never hidden
        line = (str(error).strip().splitlines() or [""])[0][:300]
        failed.append(what | {"error": f"{type(error).__name__}: {line}"})
        print(f"variant failed: {what} ({failed[-1]['error']})", flush=True)
        fresh_compiler()
        return None


def same_as_params(params: Params, dataset: str, variant: dict) -> bool:
    """Whether a training variant only restates ``dataset``'s params settings (its row would be the params row
    again: skipped). Inductor levers are never params settings."""
    _, levers = inductor_levers.split(variant, TRAINING_SETTINGS)
    settings = params.section("training")[dataset] | {
        key: params.section("architectures")[dataset].get(key, False) for key in ARCHITECTURE_SETTINGS}
    return not levers and all(settings.get(key) == value for key, value in variant.items())


def training_part(params: Params, args: argparse.Namespace, profiles: dict) -> dict:
    rows, failed = [], []
    for dataset in args.datasets:
        for library in args.libraries:
            if library == "diffusers" and (dataset != "cifar10-jpeg" or not args.with_diffusers):
                continue
            runs = [(mode, None) for mode in args.modes]
            if library == "diffbench":
                runs += [(pipeline_mode(params, dataset), variant) for variant in args.train_variants
                         if not same_as_params(params, dataset, variant)]
            for mode, variant in runs:
                measure = lambda: measure_training(params, library, dataset, mode, args, profiles, variant)  # noqa: E731
                row = failed_or(measure, {"library": library, "dataset": dataset, "mode": mode,
                                          "variant": variant_text(variant)}, failed) if variant else measure()
                if row is None:
                    continue
                rows.append(row)
                print(f"{args.gpu} | train {library:9s} | {dataset:12s} | {performance_report.mode_text(row):7s} | "
                      f"{row['train_images_per_s']:8.0f} img/s | MFU {performance_report.cell(row['train_mfu'], '.1%')} "
                      f"| start-up {row['startup_seconds']:.0f} s", flush=True)
    return {"warmup_steps": args.warmup_steps, "train_steps": args.train_steps, "rows": rows, "failed_variants": failed,
            "cudnn_benchmark": not args.no_cudnn_benchmark, "peak_tflops": args.peak and args.peak / 1e12,
            "pipeline_modes": {dataset: pipeline_mode(params, dataset) for dataset in args.datasets}}


# --------------------------------------------------------------------------- sampling and metrics


def sampling_part(params: Params, args: argparse.Namespace, profiles: dict) -> dict:
    device = torch.device(args.device)
    batch = args.sample_batch or params.section("sampling")["batch_size"]
    datasets = []
    for dataset in args.datasets:
        calls = args.profile_steps if args.profile and dataset == args.datasets[0] else 0
        entry = sampling_speed.measure_dataset(params, dataset, device, args.gpu, batch, args.sample_batches,
                                               args.cfg_scale, args.peak, calls)
        if "profile" in entry:
            mode = "compiled" if entry["compile"] else "eager"
            profiles[f"sampling: one DDIM step of the generate path, {dataset} U-Net ({mode}, batch {batch})"] = \
                entry.pop("profile")
        datasets.append(entry)
        for row in entry["rows"]:
            print(f"{args.gpu} | sample {dataset:12s} | {row['run']:14s} | {row['images_per_s']:8.1f} img/s | "
                  f"{row['image_steps_per_s']:9.0f} image-steps/s | {row['share_of_ddim50']:.1%} of DDIM-50", flush=True)
        for variant in args.sample_variants:
            row = failed_or(lambda: sampling_speed.measure_variant(params, dataset, device, args.gpu, batch,
                                                                   args.sample_batches, args.peak, variant,
                                                                   entry["rows"][0]),
                            {"variant": variant_text(variant)}, entry.setdefault("failed_variants", []))
            if row is None:
                continue
            row |= {"variant": variant_text(variant)}
            entry.setdefault("variants", []).append(row)
            print(f"{args.gpu} | sample {dataset:12s} | DDIM-50 + {row['variant']} | {row['images_per_s']:8.1f} img/s | "
                  f"{row['times_params_row']:.2f}x the params row", flush=True)
    diffusers = []
    if "diffusers" in args.libraries and args.with_diffusers and "cifar10-jpeg" in args.datasets:
        height, width, channels = IMAGE_SHAPES["cifar10-jpeg"]
        for mode in args.modes:
            fresh_compiler()
            rate = diffusers_baseline.ddim_rate((channels, height, width), batch, mode == "compile", 50,
                                                params.timesteps, device)
            diffusers.append({"library": "diffusers", "mode": mode, "batch": batch, "steps": 50, "images_per_s": rate})
            print(f"{args.gpu} | sample diffusers DDIMScheduler | {mode:7s} | {rate:8.1f} img/s", flush=True)
    return {"batch": batch, "batches": args.sample_batches, "cfg_scale": args.cfg_scale, "datasets": datasets,
            "diffusers": diffusers}


def metrics_part(args: argparse.Namespace, profiles: dict) -> dict:
    if not args.metrics_train:
        return {"skipped": "no --metrics-train/--metrics-test given (prepared splits, e.g. data/cifar10-jpeg/"
                           "train.npz and test.npz)"}
    import metrics_speed

    result = metrics_speed.measure(args.metrics_train, args.metrics_test, n=args.metrics_n,
                                   weights=args.inception_weights, profile=args.profile)
    if "extraction_profile" in result:
        profiles["metric suite: Inception features of one batch (extract, as the score stage runs it)"] = \
            result.pop("extraction_profile")
    print(f"{result['gpu']} | metric suite | {result['n']} images | {result['fid_kid_prc_total_seconds']:.1f} s", flush=True)
    return result


# --------------------------------------------------------------------------- main


def results_header(args: argparse.Namespace, argv: list[str]) -> dict:
    notes = []
    if "diffusers" in args.libraries and not args.with_diffusers:
        notes.append("diffusers is not importable here: its training and sampling rows are skipped")
    return {"gpu": args.gpu, "torch": torch.__version__, "params": args.params, "device": args.device,
            "smoke": args.smoke, "command": shlex.join(["python", "benchmarks/throughput.py", *argv]),
            "notes": notes} | origin()


def merged(paths: list[str]) -> dict:
    """Results of several --out files in one: each part from the last file that has it, the first header;
    training rows merged row by row (``merged_training``). Where the files come from different commits, the
    header lists every run (``runs``) and each training row names its commit. A file that is itself such a
    merge (a committed reports/performance.json) keeps its runs, its rows' commits and its profiles' titles."""
    files = [json.loads(Path(path).read_text()) for path in paths]
    out = {key: value for results in files for key, value in results.items()}
    commands = dict.fromkeys(results["header"]["command"] for results in files)  # each run's, in order
    out["header"] = files[0]["header"] | {"command": "; ".join(commands)}
    several = len({commit for results in files for commit in commits_of(results)}) > 1
    if several:
        last_with = {part: max(i for i, results in enumerate(files) if part in results)
                     for part in ("sampling", "metrics") if part in out}
        out["header"]["runs"] = [
            run | {"parts": [part for part in run["parts"] if part == "training" or last_with.get(part) == i]}
            for i, results in enumerate(files) for run in runs_of(results)]
    profiles = {}
    for results in files:
        tagged = several and "runs" not in results["header"]  # a merged file's titles name their commits
        commit = (results["header"].get("commit") or "unknown")[:7]
        profiles |= {(f"{title} — `{commit}`" if tagged else title): summary
                     for title, summary in (results.get("profile") or {}).items()}
    out["profile"] = profiles
    if any("training" in results for results in files):
        out["training"] = merged_training([results for results in files if "training" in results], several)
    return out


def runs_of(results: dict) -> list[dict]:
    """The runs a results file holds: those its header lists (a merge), else the file's own run."""
    if "runs" in results["header"]:
        return results["header"]["runs"]
    return [{k: results["header"].get(k) for k in ("commit", "date", "command")}
            | {"parts": [part for part in PARTS if part in results]}]


def commits_of(results: dict) -> set:
    return {run["commit"] for run in runs_of(results)}


def merged_training(files: list[dict], tag_commits: bool) -> dict:
    """The training parts of ``files`` as one: every row kept, a row (library, dataset, mode, variant) measured
    again in the same commit from the last file; with ``tag_commits`` each row carries its run's ``commit`` (a
    merged file's rows keep theirs), so that a ratio is only ever taken between rows of one run."""
    rows: dict[tuple, dict] = {}
    failed: list[dict] = []
    steps_by_run: dict[str, list[int]] = {}
    for results in files:
        training = results["training"]
        for row in training["rows"]:
            commit = row.get("commit", results["header"].get("commit"))
            tagged = row | {"commit": commit} if tag_commits else row
            rows[(row["library"], row["dataset"], row["mode"], row.get("variant"), commit)] = tagged
        failed += training.get("failed_variants", [])
        steps_by_run |= training.get("steps_by_run") or {
            results["header"].get("commit"): [training["warmup_steps"], training["train_steps"]]}
    modes = {dataset: mode for results in files for dataset, mode in results["training"].get("pipeline_modes", {}).items()}
    last = files[-1]["training"] | {"rows": list(rows.values()), "pipeline_modes": modes}
    if tag_commits:
        last["steps_by_run"] = steps_by_run
    return last | ({"failed_variants": failed} if failed else {})


def write(results: dict, args: argparse.Namespace) -> None:
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(performance_report.render(results))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.from_json:
        results = merged(args.from_json)
        results["header"]["notes"] = results["header"].get("notes", []) + args.note
        write(results, args)
        return
    params = load_params(args.params)
    if args.smoke:
        torch.set_num_threads(1)  # tiny ops on a shared CPU: a 2-thread pool ran them ~40 times slower
    device = torch.device(args.device)
    args.gpu = distributed.device_name(device)
    args.peak = args.peak_tflops * 1e12 if args.peak_tflops else peak_flops(args.gpu)
    args.with_diffusers = diffusers_baseline.available()
    results: dict = {"header": results_header(args, argv)}
    for note in results["header"]["notes"]:
        print(f"note: {note}", flush=True)
    profiles: dict = {}
    if "training" in args.parts:
        results["training"] = training_part(params, args, profiles)
    if "sampling" in args.parts:
        results["sampling"] = sampling_part(params, args, profiles)
    if "metrics" in args.parts:
        results["metrics"] = metrics_part(args, profiles)
    if profiles:
        results["profile"] = profiles
    for target in performance_report.targets(results):
        print(f"{target.what}: {target.measured} (target {target.goal}): {target.status}")
    write(results, args)


if __name__ == "__main__":
    main()
