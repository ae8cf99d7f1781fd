"""Training recipes compared by FID against images seen: lr, batch size and EMA length (issue 10).

Each recipe (``lr=1e-3,batch=512,warmup=200``; a key left out comes from params.yaml
``training.<dataset>``) trains the pipeline's own ``Trainer`` (``training.make_trainer``: the train
stage's model, loss, optimiser, clipping, bf16, compile) on the dataset's prepared train split for a
fixed image budget, so recipes with different batch sizes are compared at equal images seen (steps =
images / batch, rounded). Every EMA decay of ``--ema`` is averaged in the same run: the trainer's own
EMA holds the first, extra ``diffbench.ema.EMA`` copies (same warm-up rule) follow every step, so EMA
length costs no training. Every ``--eval-every`` images, each average samples ``--n`` images with the
pipeline's sampler path (``generation.generate``: DDIM-``--steps``, image i from seed i with class
i mod K, guidance 1, params ``sampling`` bf16 and compile on CUDA) and gets its FID, with the
half-sample 95% interval, against the reference features of the reference stage
(``features/<dataset>/reference.npz``), else against the same seeded test subset computed once and
cached in ``--cache``. The first evaluation is after the first ``--eval-every`` images: no number
comes from untrained weights.

After every evaluation point the JSON (one row per recipe x EMA x point, with provenance), the
markdown table (best cell of each column in bold, the chosen recipe and the command) and the
FID-vs-images plot are rewritten atomically, so a killed run leaves what it measured. With
``--side-by-side`` each recipe trains in its own process on the same GPU (small U-Nets leave most of
an H200 idle: three MNIST trainings side by side run ~4.3k img/s each, one alone ~8k img/s).

    python benchmarks/recipe.py --dataset mnist --schedule cosine --side-by-side \\
        --recipes "lr=1e-3,batch=512" "lr=2e-4,batch=512" "lr=1e-3,batch=256" --ema 0.99 0.995 0.999 \\
        --images 1228800 --eval-every 409600 --n 2000 --steps 50

Decays the warm-up never reaches within a recipe's steps are one average bit for bit (0.999, 0.9995
and 0.9999 all are in a 2,400-step run): the script refuses two of them (``check_warmup``).
"""

from __future__ import annotations

import argparse
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffbench import layout
from diffbench.cli import environment, read_json, stage_main, write_json
from diffbench.config import Params, load_params
from diffbench.data import dataset_spec, load_split, prepare_dataset, resolve_local_dir, take_subset
from diffbench.distributed import Context, device_name
from diffbench.ema import EMA, WARMUP_RULE, warmup_decay
from diffbench.errors import DiffbenchError, ParamsError
from diffbench.generation import LoadedModel, generate, prepare_model
from diffbench.hashing import sha256_file
from diffbench.metrics.fast import FidStatistic, reference_statistics
from diffbench.metrics.inception import load_inception
from diffbench.metrics.intervals import METHOD, batched_interval, half_samples
from diffbench.metrics.reference import check_compatible, load_reference, reference_meta, save_reference
from diffbench.metrics.suite import SuiteConfig
from diffbench.records import origin
from diffbench.samplers import check_steps
from diffbench.schedules import SCHEDULES
from diffbench.training import Trainer, load_training_data, make_trainer
from diffbench.unet import UNet

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling module, also when imported (tests)
from recipe_report import Outputs, chosen, ordered  # noqa: E402

RECIPE_KEYS = {"lr": "lr", "batch": "batch_size", "warmup": "warmup_steps"}  # recipe key -> training.<dataset> key
DEFAULT_RECIPES = ("lr=1e-3,batch=512", "lr=2e-4,batch=512", "lr=1e-3,batch=256")
DEFAULT_EMAS = (0.99, 0.995, 0.999)  # 0.999 never leaves the warm-up in 2,400 steps: see check_warmup
GUIDANCE = 1.0  # plain conditional sampling, as the sweep runs
POLL_S = 5.0  # how often the side-by-side parent merges its children's results


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Recipe:
    """One training recipe: the training keys it sets (the rest come from params)."""

    lr: float
    batch_size: int
    warmup_steps: int

    @property
    def name(self) -> str:
        return f"lr={self.lr:g},batch={self.batch_size},warmup={self.warmup_steps}"

    def steps(self, images: int) -> int:
        """Optimiser steps that show ``images`` images (rounded to the nearest whole batch)."""
        return steps_for(images, self.batch_size)


@dataclass(frozen=True)
class Plan:
    """Every validated choice of a run: what trains, when it is evaluated, how it is sampled and scored."""

    dataset: str
    schedule: str
    recipes: tuple[Recipe, ...]
    decays: tuple[float, ...]
    images: int
    points: tuple[int, ...]
    n: int
    steps: int
    sampler: str
    reference_n: int
    device: torch.device


def steps_for(images: int, batch: int) -> int:
    """Steps of ``batch`` images nearest to ``images`` (half a batch rounds up)."""
    return (images + batch // 2) // batch


def eval_points(images: int, every: int) -> tuple[int, ...]:
    """Image counts at which to evaluate: every ``every`` images, and the whole budget last."""
    points = list(range(every, images + 1, every))
    if not points or points[-1] != images:
        points.append(images)
    return tuple(points)


def parse_value(spec: str, key: str, text: str) -> float | int:
    """One recipe value: lr a number > 0, batch an integer >= 1, warmup an integer >= 0."""
    try:
        value = float(text) if key == "lr" else int(text)
    except ValueError:
        value = None
    low = {"lr": 0.0, "batch": 1, "warmup": 0}[key]
    if value is None or not np.isfinite(value) or value < low or (key == "lr" and value == 0):
        what = "a number > 0" if key == "lr" else f"an integer >= {low}"
        raise ParamsError(f"--recipes {spec!r}: {key} must be {what}, got {text!r}")
    return value


def parse_recipe(spec: str, defaults: dict) -> Recipe:
    """``key=value[,key=value]`` over params ``training.<dataset>`` (``defaults``); keys: lr, batch, warmup."""
    values = {RECIPE_KEYS[key]: defaults[RECIPE_KEYS[key]] for key in RECIPE_KEYS}
    allowed = ", ".join(RECIPE_KEYS)
    for item in filter(None, (part.strip() for part in spec.split(","))):
        key, sep, text = (s.strip() for s in item.partition("="))
        if not sep:
            raise ParamsError(f"--recipes {spec!r}: {item!r} is not key=value; keys: {allowed}")
        if key not in RECIPE_KEYS:
            raise ParamsError(f"--recipes {spec!r}: unknown key {key!r}; allowed: {allowed}")
        values[RECIPE_KEYS[key]] = parse_value(spec, key, text)
    return Recipe(**values)


def parse_recipes(specs: list[str], defaults: dict) -> tuple[Recipe, ...]:
    """Every recipe, each different."""
    recipes = tuple(parse_recipe(spec, defaults) for spec in specs)
    for i, recipe in enumerate(recipes):
        if recipe in recipes[:i]:
            raise ParamsError(f"--recipes: {specs[i]!r} repeats {recipe.name}")
    return recipes


def check_decays(decays: list[float]) -> tuple[float, ...]:
    """EMA decays in [0, 1), each once."""
    for decay in decays:
        if not 0 <= decay < 1:
            raise ParamsError(f"--ema: a decay must be in [0, 1), got {decay:g}")
    if len(set(decays)) != len(decays):
        raise ParamsError(f"--ema: {decays} repeats a decay")
    return tuple(decays)


def check_warmup(decays: tuple[float, ...], recipes: tuple[Recipe, ...], images: int) -> None:
    """Fail when several decays stay in the EMA warm-up through a whole recipe: d_n = min(d, (1+n)/(10+n))
    never reaches any of them, so they are one and the same average, bit for bit (0.999 needs 8,991
    updates, 0.9999 99,990)."""
    for recipe in recipes:
        steps = recipe.steps(images)
        warming = [decay for decay in decays if warmup_decay(decay, steps - 1) < decay]
        if len(warming) > 1:
            raise ParamsError(
                f"--ema: {', '.join(f'{d:g}' for d in warming)} never leave the EMA warm-up ({WARMUP_RULE}) in "
                f"the {steps:,} steps of {recipe.name}, so they are the same average bit for bit; keep one and "
                f"add decays below {warmup_decay(1.0, steps - 1):.4f}")


def check_budget(images: int, every: int, recipes: tuple[Recipe, ...]) -> tuple[int, ...]:
    """Evaluation points where every recipe has trained at least one step."""
    if images < 1 or every < 1:
        raise ParamsError(f"--images and --eval-every: must be >= 1, got {images} and {every}")
    if every > images:
        raise ParamsError(f"--eval-every: {every} exceeds --images {images}")
    batch = max(recipe.batch_size for recipe in recipes)
    if every < batch:
        raise ParamsError(f"--eval-every: {every} images is less than one batch of {batch}; "
                          f"the first evaluation must follow trained steps")
    return eval_points(images, every)


def check_device(text: str) -> torch.device:
    """A torch device this machine has."""
    try:
        device = torch.device(text)
    except RuntimeError:
        raise DiffbenchError(f"--device: {text!r} is not a torch device (cpu, cuda, cuda:0, ...)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DiffbenchError(f"--device: {text} asked for, but torch sees no GPU")
    if device.type == "cuda" and device.index is None:  # torch.cuda.set_device needs an index
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def make_plan(args: argparse.Namespace, params: Params) -> Plan:
    """Validate every argument against params before any work; each problem is one line naming it."""
    params.dataset_entry(args.dataset)
    if args.schedule not in SCHEDULES:
        raise ParamsError(f"--schedule: unknown schedule {args.schedule!r}; allowed: {', '.join(sorted(SCHEDULES))}")
    training = params.section("training")[args.dataset]
    recipes = parse_recipes(args.recipes, training)
    decays = check_decays(args.ema)
    images = args.images if args.images is not None else training["steps"] * training["batch_size"]
    every = args.eval_every if args.eval_every is not None else max(1, images // 4)
    points = check_budget(images, every, recipes)
    check_warmup(decays, recipes, images)
    if args.n < 4:
        raise ParamsError(f"--n: must be >= 4 (FID and its half-sample interval), got {args.n}")
    check_steps(args.steps, params.timesteps, "--steps")
    samplers = params.section("samplers")
    if args.sampler not in samplers or samplers[args.sampler]["kind"] != "ddim":
        ddim = [name for name, entry in samplers.items() if entry["kind"] == "ddim"]
        raise ParamsError(f"--sampler: {args.sampler!r} is no DDIM setting of params samplers; "
                          f"allowed: {', '.join(ddim)}")
    reference_n = args.reference_n if args.reference_n is not None else params.section("metrics")["reference_n"]
    if reference_n < 2:
        raise ParamsError(f"--reference-n: must be >= 2, got {reference_n}")
    if args.part is not None and not 0 <= args.part < len(recipes):
        raise DiffbenchError(f"--part: {args.part} is not a recipe index (0..{len(recipes) - 1})")
    return Plan(args.dataset, args.schedule, recipes, decays, images, points, args.n, args.steps, args.sampler,
                reference_n, check_device(args.device))


# --------------------------------------------------------------------------- data and reference


def profile_dir(params: Params) -> Path:
    """The folder the pipeline's relative paths (data/, features/) start from: the params file's."""
    return Path(params.path or "params.yaml").resolve().parent


def split_path(params: Params, dataset: str, split: str, cache: Path) -> Path:
    """The prepare stage's split file if it exists, else the same file prepared once into ``cache``."""
    stage_file = profile_dir(params) / layout.split_file(dataset, split)
    if stage_file.is_file():
        return stage_file
    cached = cache / layout.split_file(dataset, split)
    if not cached.is_file():
        entry = params.dataset_entry(dataset)
        local = resolve_local_dir(dataset, entry.pop("local", None))
        print(f"recipe: preparing {dataset} into {cached.parent} (no {stage_file})", flush=True)
        prepare_dataset(dataset_spec(dataset, entry), cached.parent, local)
    return cached


def reference_features(params: Params, plan: Plan, extractor: Any, cache: Path) -> tuple[np.ndarray, dict]:
    """Inception pool features of the reference split and their record: the reference stage's file when it
    holds ``plan.reference_n`` images, else the same seeded subset computed once and cached."""
    split = params.section("metrics")["reference_split"]
    stage_file = profile_dir(params) / layout.reference_file(plan.dataset)
    weights = (extractor.weights_sha256 or "none")[:12]
    cached = cache / "features" / plan.dataset / f"reference-{split}-{plan.reference_n}-{weights}.npz"
    for path in (stage_file, cached):
        found = matching_reference(path, extractor, split, plan.reference_n)
        if found is not None:
            return found
    data = split_path(params, plan.dataset, split, cache)
    images, _ = take_subset(*load_split(data)[:2], plan.reference_n, params.seed, "--reference-n", data)
    batch = params.section("metrics")["batch_size"]
    print(f"recipe: Inception features of {len(images)} {split} images -> {cached}", flush=True)
    features = extractor.extract(images, batch)
    meta = reference_meta(plan.dataset, split, len(images), sha256_file(data), extractor)
    save_reference(cached, features, meta)
    return features["pool"], meta | {"path": cached.as_posix()}


def matching_reference(path: Path, extractor: Any, split: str, n: int) -> tuple[np.ndarray, dict] | None:
    """(pool features, record) of a reference file made by ``extractor`` from ``n`` images of ``split``;
    None when the file is missing or was made otherwise."""
    if not path.is_file():
        return None
    features, meta = load_reference(path)
    try:
        check_compatible(meta, extractor)
    except DiffbenchError:
        return None
    if meta.get("n") != n or meta.get("split") != split:
        return None
    return features["pool"], meta | {"path": path.as_posix()}


class FidScorer:
    """FID (with its half-sample 95% interval) of uint8 images against fixed reference features."""

    def __init__(self, extractor: Any, reference: np.ndarray, batch_size: int, suite: SuiteConfig,
                 device: torch.device):
        self.extractor, self.batch_size, self.suite, self.device = extractor, batch_size, suite, device
        self.mu, self.sigma = reference_statistics(reference)

    def score(self, images: np.ndarray) -> dict:
        pool = self.extractor.extract(images, self.batch_size)["pool"]
        statistic = FidStatistic(pool, self.mu, self.sigma, device=self.device)
        subsets = half_samples(len(pool), self.suite.resamples, self.suite.seed)
        fid, lo, hi = batched_interval(statistic.fid(), statistic.fid_many(subsets), len(pool), self.suite.level)
        return {"fid": fid, "fid_lo": lo, "fid_hi": hi}


# --------------------------------------------------------------------------- training with several EMAs


def averages(trainer: Trainer, decays: tuple[float, ...]) -> dict[float, EMA]:
    """One EMA per decay: the trainer's own for its decay, a new copy of its model (same warm-up rule) for
    every other; made before any step, so all start from the same weights."""
    own = trainer.config.ema_decay
    return {decay: trainer.ema if decay == own else EMA(trainer.model, decay) for decay in decays}


def follow_every_step(trainer: Trainer, extra: list[EMA]) -> None:
    """Update ``extra`` after each of the trainer's steps (right after its own EMA, from the same weights).

    ``Trainer.fit`` calls ``self.train_step``; wrapping it on this instance adds the updates without
    changing the Trainer: diffbench/training.py is a code dep of every train stage, so an edit there
    would have DVC retrain every model."""
    step = trainer.train_step

    def step_and_average(*args: Any) -> torch.Tensor:
        loss = step(*args)
        for ema in extra:
            ema.update(trainer.model)
        return loss

    trainer.train_step = step_and_average  # type: ignore[method-assign]


def sampling_model(trainer: Trainer, sampling: dict) -> LoadedModel:
    """One U-Net to sample every average from (its weights are loaded in place, so a compiled graph is
    reused), prepared as the generate stage prepares its model; compiled when params ``sampling.compile``
    says so and the device is a GPU."""
    device = trainer.ctx.device
    file = {"unet": asdict(trainer.unet_config), "schedule": trainer.schedule.name,
            "timesteps": trainer.schedule.timesteps}
    return prepare_model(UNet(trainer.unet_config), trainer.schedule, device,
                         sampling["compile"] and device.type == "cuda", file)


@dataclass
class Bench:
    """What every recipe shares: params, plan, the training split on the device, the scorer."""

    params: Params
    plan: Plan
    ctx: Context
    images: torch.Tensor
    labels: torch.Tensor
    image_shape: tuple[int, int, int]
    num_classes: int
    data_sha256: str
    scorer: FidScorer
    settings: Any = field(init=False)

    def __post_init__(self) -> None:
        self.settings = self.params.sampler_settings(self.plan.sampler)

    def trainer(self, recipe: Recipe) -> Trainer:
        """The pipeline's trainer with the recipe's keys, the budget's steps and the first decay as its EMA."""
        overrides = {"lr": recipe.lr, "batch_size": recipe.batch_size, "warmup_steps": recipe.warmup_steps,
                     "steps": recipe.steps(self.plan.images), "ema_decay": self.plan.decays[0]}
        return make_trainer(self.params, self.plan.dataset, self.plan.schedule, self.image_shape, self.num_classes,
                            self.ctx, self.data_sha256, overrides=overrides)

    def sample(self, model: LoadedModel, ema: EMA, label: str) -> np.ndarray:
        """``plan.n`` images (seeds 0..n-1) from the EMA weights, as the generate stage samples them."""
        model.net.load_state_dict(ema.weights())
        sampling = self.params.section("sampling")
        settings, plan = self.settings, self.plan
        use_bf16 = sampling["bf16"] and self.ctx.device.type == "cuda"
        return generate(model, "ddim", settings, plan.steps, list(range(plan.n)), GUIDANCE,
                        min(sampling["batch_size"], plan.n), bf16=use_bf16, label=label).images


def train_and_evaluate(bench: Bench, recipe: Recipe) -> Iterator[list[dict]]:
    """Train ``recipe`` to each evaluation point; yield that point's rows (one per EMA decay)."""
    plan = bench.plan
    trainer = bench.trainer(recipe)
    emas = averages(trainer, plan.decays)
    follow_every_step(trainer, [ema for ema in emas.values() if ema is not trainer.ema])
    model = sampling_model(trainer, bench.params.section("sampling"))
    steps_total = trainer.config.steps
    seconds = 0.0

    def log(row: Any, rate: float) -> None:
        print(f"recipe {recipe.name}: step {row.step}/{steps_total} loss {row.loss:.4f} {rate:.0f} img/s", flush=True)

    for point in plan.points:
        start = time.perf_counter()
        trainer.fit(bench.images, bench.labels, None, log, stop_at=recipe.steps(point))  # ends synchronised
        seconds += time.perf_counter() - start
        rows = []
        for decay, ema in emas.items():
            start = time.perf_counter()
            images = bench.sample(model, ema, f"recipe {recipe.name} EMA {decay:g} at {point:,} images")
            sample_seconds = time.perf_counter() - start
            fid = bench.scorer.score(images)
            rows.append(result_row(recipe, decay, point, trainer, seconds, plan) | fid |
                        {"sample_seconds": sample_seconds})
            print(f"recipe {recipe.name} EMA {decay:g} at {point:,} images: FID {fid['fid']:.2f} "
                  f"[{fid['fid_lo']:.2f}, {fid['fid_hi']:.2f}] (n={plan.n})", flush=True)
        yield rows


def result_row(recipe: Recipe, decay: float, point: int, trainer: Trainer, seconds: float, plan: Plan) -> dict:
    """One result row without its FID: the recipe, the average, where training stands and what it cost."""
    seen = trainer.step * recipe.batch_size
    return {
        "recipe": recipe.name, "lr": recipe.lr, "batch_size": recipe.batch_size,
        "warmup_steps": recipe.warmup_steps, "ema": decay, "images": point, "images_seen": seen,
        "step": trainer.step, "n": plan.n, "sampler_steps": plan.steps, "train_seconds": seconds,
        "train_images_per_s": seen / seconds if seconds > 0 else None, "loss": trainer.final_loss,
        "loss_step": trainer.history[-1].step if trainer.history else None,
    }


# --------------------------------------------------------------------------- results


def run_record(params: Params, plan: Plan, reference: dict, command: str) -> dict:
    """The results file without rows: the plan, the reference and where the numbers come from."""
    suite = SuiteConfig.from_metrics(params.section("metrics"), params.seed)
    path = Path(params.path or "params.yaml")
    return {
        "dataset": plan.dataset, "schedule": plan.schedule,
        "recipes": [asdict(r) | {"name": r.name, "steps": r.steps(plan.images)} for r in plan.recipes],
        "ema_decays": list(plan.decays), "ema_warmup": WARMUP_RULE, "images": plan.images,
        "eval_points": list(plan.points), "n": plan.n,
        "sampler": {"setting": plan.sampler, "kind": "ddim", "steps": plan.steps, "guidance": GUIDANCE},
        "reference": {k: reference.get(k) for k in ("path", "split", "n", "split_sha256", "feature_extractor",
                                                     "weights_sha256")},
        "interval": METHOD.format(resamples=suite.resamples) + f", level {suite.level}",
        "seeds": {"training": params.seed, "samples": f"0-{plan.n - 1}", "reference_subset": params.seed,
                  "half_samples": suite.seed},
        "provenance": origin() | {"device": device_name(plan.device), "environment": environment(),
                                  "params": path.as_posix(), "params_sha256": sha256_file(path),
                                  "command": command},
        "rows": [],
    }


# --------------------------------------------------------------------------- running


def part_file(cache: Path, out: Path, index: int) -> Path:
    """Where the side-by-side child of recipe ``index`` writes its rows."""
    return cache / "parts" / out.stem / f"{index}.json"


def run_in_process(bench: Bench, indices: list[int], record: dict, publish: Callable[[dict], None]) -> None:
    """Train and evaluate the recipes of ``indices`` one after another, publishing after each point."""
    for index in indices:
        for rows in train_and_evaluate(bench, bench.plan.recipes[index]):
            record["rows"] = ordered(record["rows"] + rows, record)
            publish(record)


def run_side_by_side(argv: list[str], record: dict, cache: Path, outputs: Outputs) -> None:
    """One child process per recipe on the same device; their rows are merged every few seconds, and once
    more when the children end or this process is stopped (SIGTERM, e.g. ``timeout``)."""
    parts = [part_file(cache, outputs.json, i) for i in range(len(record["recipes"]))]
    for part in parts:
        part.unlink(missing_ok=True)
    script = str(Path(__file__).resolve())
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    children = [subprocess.Popen([sys.executable, script, *argv, "--part", str(i)]) for i in range(len(parts))]
    try:
        while any(child.poll() is None for child in children):
            time.sleep(POLL_S)
            merge_parts(record, parts, outputs)
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
                child.wait()
        merge_parts(record, parts, outputs)
    failed = [f"{record['recipes'][i]['name']} (exit {child.returncode})" for i, child in enumerate(children)
              if child.returncode]
    if failed:
        raise DiffbenchError(f"side-by-side recipes failed: {', '.join(failed)}; rows measured so far are in "
                             f"{outputs.json}")


def merge_parts(record: dict, parts: list[Path], outputs: Outputs) -> None:
    """The children's rows so far into ``record``, and the outputs rewritten."""
    rows = [row for part in parts if part.is_file() for row in read_json(part)["rows"]]
    record["rows"] = ordered(rows, record)
    outputs.write(record)


def build_bench(params: Params, plan: Plan, cache: Path) -> tuple[Bench, dict]:
    """Data on the device, Inception, reference statistics: everything before the first step."""
    metrics = params.section("metrics")
    if plan.device.type == "cuda":
        torch.cuda.set_device(plan.device)
    extractor = load_inception(metrics.get("inception_weights"), str(plan.device))
    reference, meta = reference_features(params, plan, extractor, cache)
    data = split_path(params, plan.dataset, "train", cache)
    images, labels, class_names = load_split(data)
    ctx = Context(rank=0, world_size=1, device=plan.device)
    x, y = load_training_data(images, labels, plan.device)
    scorer = FidScorer(extractor, reference, metrics["batch_size"], SuiteConfig.from_metrics(metrics, params.seed),
                       plan.device)
    bench = Bench(params, plan, ctx, x, y, images.shape[1:], len(class_names), sha256_file(data), scorer)
    return bench, meta


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--params", default="params.yaml", help="params file (training.<dataset>, sampling, metrics)")
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--schedule", default="cosine")
    p.add_argument("--recipes", nargs="+", default=list(DEFAULT_RECIPES),
                   help="key=value[,key=value] each; keys: lr, batch, warmup (others from params)")
    p.add_argument("--ema", nargs="+", type=float, default=list(DEFAULT_EMAS), help="EMA decays, one run each recipe")
    p.add_argument("--images", type=int, default=None,
                   help="training images per recipe (default: params steps x batch)")
    p.add_argument("--eval-every", type=int, default=None, help="images between evaluations (default: a quarter)")
    p.add_argument("--n", type=int, default=2000, help="samples per FID")
    p.add_argument("--steps", type=int, default=50, help="DDIM steps")
    p.add_argument("--sampler", default="ddim", help="the DDIM setting of params samplers")
    p.add_argument("--reference-n", type=int, default=None, help="reference images (default: metrics.reference_n)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--side-by-side", action="store_true", help="one process per recipe on the same device")
    p.add_argument("--cache", default=".cache/recipe", help="prepared data, reference features, children's rows")
    p.add_argument("--out", default=None, help="results JSON (default: reports/recipe_<dataset>.json)")
    p.add_argument("--markdown", default=None, help="table (default: --out as .md; 'none': skip)")
    p.add_argument("--plot", default=None, help="PNG (default: --out as .png; 'none': skip)")
    p.add_argument("--render", metavar="JSON", help="only rewrite the table and plot of an earlier --out file")
    p.add_argument("--part", type=int, default=None, help=argparse.SUPPRESS)  # a side-by-side child's recipe
    return p


def output_paths(args: argparse.Namespace) -> Outputs:
    """--out (default reports/recipe_<dataset>.json), the markdown and the plot beside it (not in reports/plots/,
    which the report stage owns and clears before it runs)."""
    out = Path(args.out or f"reports/recipe_{args.dataset}.json")

    def pick(value: str | None, default: Path) -> Path | None:
        return None if value == "none" else Path(value) if value else default

    return Outputs(out, pick(args.markdown, out.with_suffix(".md")),
                   pick(args.plot, out.with_suffix(".png")))


@stage_main
def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    if args.render:
        record = read_json(Path(args.render))
        output_paths(argparse.Namespace(**(vars(args) | {"out": args.render}))).write(record)
        print(chosen(record).replace("**", ""), flush=True)
        return
    params = load_params(args.params)
    plan = make_plan(args, params)
    outputs, cache = output_paths(args), Path(args.cache)
    command = shlex.join(["python", "benchmarks/recipe.py", *argv])
    if args.part is not None:  # a side-by-side child: one recipe, rows to its part file
        bench, meta = build_bench(params, plan, cache)
        record = run_record(params, plan, meta, command)
        part = part_file(cache, outputs.json, args.part)
        run_in_process(bench, [args.part], record, lambda rec: write_json(part, rec))
        return
    if args.side_by_side:
        extractor = load_inception(params.section("metrics").get("inception_weights"), str(plan.device))
        split_path(params, plan.dataset, "train", cache)  # prepared once, before the children start
        _, meta = reference_features(params, plan, extractor, cache)
        record = run_record(params, plan, meta, command)
        outputs.write(record)
        run_side_by_side(argv, record, cache, outputs)
    else:
        bench, meta = build_bench(params, plan, cache)
        record = run_record(params, plan, meta, command)
        outputs.write(record)
        run_in_process(bench, list(range(len(plan.recipes))), record, outputs.write)
    print(chosen(record).replace("**", ""), f"-> {outputs.json}", flush=True)


if __name__ == "__main__":
    main()
