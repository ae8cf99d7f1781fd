"""params.yaml: load it once, validate every field up front, hand stages typed views.

Every problem is a ``ParamsError`` with one line naming the field and what is allowed, raised
before any stage starts work.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from diffbench.errors import ParamsError
from diffbench.guidance import check_scale
from diffbench.samplers import REGISTRY, check_steps, get_sampler, make_settings
from diffbench.schedules import SCHEDULES

TOP_LEVEL = (
    "root", "seed", "datasets", "diffusion", "architectures", "training", "models",
    "samplers", "sampling", "sweep", "ablation", "guidance", "metrics", "classifier", "elbo",
)
TRAINING_KEYS = {
    "steps": int, "batch_size": int, "lr": float, "warmup_steps": int, "weight_decay": float,
    "grad_clip": float, "ema_decay": float, "p_uncond": float, "hflip": bool, "checkpoint_every": int,
    "log_every": int, "compile": bool, "bf16": bool, "channels_last": bool,
}
SAMPLING_KEYS = {"n_samples": int, "batch_size": int, "bf16": bool, "compile": bool, "determinism_images": int}
METRICS_KEYS = {
    "reference_split": str, "reference_n": int, "floor_n": int, "batch_size": int,
    "kid_subset_size": int, "kid_subsets": int, "prc_k": int, "grid_images": int,
    "interval_resamples": int, "interval_level": float,
}
CLIP_KEYS = {"model": str, "download": bool, "prompts": dict, "check_n": int, "check_alpha": float, "batch_size": int}


@dataclass(frozen=True)
class ModelSpec:
    """One reference model: a dataset trained under a noise schedule."""

    name: str
    dataset: str
    schedule: str


@dataclass(frozen=True)
class RunSpec:
    """One sampling configuration: sampler setting, step count and guidance scale."""

    name: str
    setting: str
    kind: str
    options: dict
    steps: int
    guidance: float | None

    @property
    def settings(self) -> Any:
        """The sampler's validated ``Settings`` object."""
        return make_settings(self.kind, self.options, f"samplers.{self.setting}")


def parse_scale(value: Any, where: str) -> float | None:
    """A guidance scale from params or the command line: 'none'/null → None (unguided), else a number ≥ 0."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ParamsError(f"{where}: a guidance scale must be a number >= 0 or 'none', got {value!r}") from None
    check_scale(value, where)
    return float(value)


def _typed(section: dict, keys: dict[str, type], where: str, untyped: tuple[str, ...] = ()) -> None:
    """Every key of ``keys`` present with its type (numbers >= 0); nothing else but ``untyped``."""
    for key, kind in keys.items():
        if key not in section:
            raise ParamsError(f"{where}.{key}: missing")
        value = section[key]
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok:
            raise ParamsError(f"{where}.{key}: must be {kind.__name__}, got {value!r}")
        if kind in (int, float) and value < 0:
            raise ParamsError(f"{where}.{key}: must be >= 0, got {value!r}")
    unknown = set(section) - set(keys) - set(untyped)
    if unknown:
        raise ParamsError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(set(keys) | set(untyped))}")


class Params:
    """The validated contents of one params.yaml."""

    def __init__(self, raw: dict, path: Path | None = None):
        self.raw = raw
        self.path = path
        self._validate()

    # ---- typed views -------------------------------------------------------------------
    @property
    def timesteps(self) -> int:
        return self.raw["diffusion"]["timesteps"]

    @property
    def seed(self) -> int:
        return self.raw["seed"]

    def section(self, name: str) -> dict:
        return self.raw[name]

    def dataset_entry(self, name: str) -> dict:
        """A copy of ``datasets.<name>``; unknown names list the allowed ones."""
        datasets = self.raw["datasets"]
        if name not in datasets:
            raise ParamsError(f"datasets: unknown dataset {name!r}; allowed: {', '.join(datasets)}")
        return dict(datasets[name])

    @property
    def models(self) -> list[ModelSpec]:
        """Every dataset × every schedule, in params order."""
        section = self.raw["models"]
        return [
            ModelSpec(f"{dataset}-{schedule}", dataset, schedule)
            for dataset in section["datasets"] for schedule in section["schedules"]
        ]

    def model(self, dataset: str, schedule: str) -> ModelSpec:
        """The model trained on ``dataset`` under ``schedule``; names outside params fail listing them."""
        section = self.raw["models"]
        if dataset not in section["datasets"]:
            raise ParamsError(f"models.datasets: no dataset {dataset!r}; allowed: {', '.join(section['datasets'])}")
        if schedule not in section["schedules"]:
            raise ParamsError(f"models.schedules: no schedule {schedule!r}; allowed: {', '.join(section['schedules'])}")
        return ModelSpec(f"{dataset}-{schedule}", dataset, schedule)

    def run(self, name: str, guidance: Any = "default") -> RunSpec:
        """Parse a run name '<sampler setting>-<steps>' with a guidance scale (default: sampling.guidance)."""
        setting, _, steps_text = str(name).rpartition("-")
        samplers = self.raw["samplers"]
        if setting not in samplers:
            raise ParamsError(
                f"run {name!r}: must be '<sampler setting>-<steps>' with a setting from samplers "
                f"({', '.join(samplers)})"
            )
        if not steps_text.isdigit():
            raise ParamsError(f"run {name!r}: steps {steps_text!r} must be a positive integer")
        steps = int(steps_text)
        options = dict(samplers[setting])
        kind = options.pop("kind")
        check_steps(steps, self.timesteps, f"run {name!r} steps")
        if kind == "ddpm" and steps != self.timesteps:
            raise ParamsError(f"run {name!r}: ddpm is ancestral over all T={self.timesteps} steps")
        raw_scale = self.raw["sampling"]["guidance"] if guidance == "default" else guidance
        scale = parse_scale(raw_scale, f"run {name!r} guidance")
        return RunSpec(name, setting, kind, options, steps, scale)

    # ---- validation ---------------------------------------------------------------------
    def _validate(self) -> None:
        raw = self.raw
        if not isinstance(raw, dict):
            raise ParamsError("params: the file must hold a mapping of sections")
        for key in TOP_LEVEL:
            if key not in raw:
                raise ParamsError(f"{key}: missing section; sections: {', '.join(TOP_LEVEL)}")
        if not isinstance(raw["seed"], int) or raw["seed"] < 0:
            raise ParamsError(f"seed: must be an integer >= 0, got {raw['seed']!r}")
        timesteps = raw["diffusion"].get("timesteps")
        if isinstance(timesteps, bool) or not isinstance(timesteps, int) or timesteps < 1:
            raise ParamsError(f"diffusion.timesteps: must be an integer >= 1, got {timesteps!r}")
        self._validate_datasets()
        self._validate_models()
        self._validate_samplers()
        _typed(raw["sampling"], SAMPLING_KEYS, "sampling", untyped=("guidance",))
        parse_scale(raw["sampling"]["guidance"], "sampling.guidance")
        for key in ("n_samples", "batch_size"):
            if raw["sampling"][key] < 1:
                raise ParamsError(f"sampling.{key}: must be >= 1, got {raw['sampling'][key]}")
        self._validate_sweeps()
        _typed(raw["metrics"], METRICS_KEYS, "metrics", untyped=("inception_weights", "clip"))
        self._validate_intervals()
        self._validate_clip()
        from diffbench.elbo import ElboSettings

        ElboSettings.from_params(raw["elbo"], raw["diffusion"]["timesteps"])
        if raw["metrics"]["reference_split"] not in ("train", "test"):
            raise ParamsError("metrics.reference_split: must be 'train' or 'test'")
        for key in ("reference_n", "kid_subset_size", "kid_subsets", "prc_k", "batch_size"):
            if raw["metrics"][key] < 1:
                raise ParamsError(f"metrics.{key}: must be >= 1, got {raw['metrics'][key]}")

    def _validate_intervals(self) -> None:
        metrics = self.raw["metrics"]
        if metrics["interval_resamples"] < 2:
            raise ParamsError(f"metrics.interval_resamples: must be >= 2, got {metrics['interval_resamples']}")
        if not 0 < metrics["interval_level"] < 1:
            raise ParamsError(f"metrics.interval_level: must be in (0, 1), got {metrics['interval_level']}")

    def _validate_clip(self) -> None:
        clip = self.raw["metrics"].get("clip")
        if not isinstance(clip, dict):
            raise ParamsError(f"metrics.clip: missing; a mapping with {', '.join(CLIP_KEYS)}, pretrained, weights")
        _typed(clip, CLIP_KEYS, "metrics.clip", untyped=("pretrained", "weights"))
        for key in ("pretrained", "weights"):
            if key not in clip or not (clip[key] is None or isinstance(clip[key], str)):
                raise ParamsError(f"metrics.clip.{key}: must be a string or null, got {clip.get(key)!r}")
        for dataset in self.raw["models"]["datasets"]:
            template = clip["prompts"].get(dataset)
            if not isinstance(template, str) or "{class}" not in template:
                raise ParamsError(f"metrics.clip.prompts.{dataset}: must be a text containing {{class}}, got {template!r}")
        if clip["check_n"] < 1 or clip["batch_size"] < 1:
            raise ParamsError("metrics.clip.check_n and metrics.clip.batch_size: must be >= 1")
        if not 0 < clip["check_alpha"] < 1:
            raise ParamsError(f"metrics.clip.check_alpha: must be in (0, 1), got {clip['check_alpha']}")

    def _validate_datasets(self) -> None:
        from diffbench.classifier import config_for
        from diffbench.data import dataset_spec

        datasets = self.raw["datasets"]
        if not isinstance(datasets, dict) or not datasets:
            raise ParamsError("datasets: must map at least one dataset name to its source")
        for name, entry in datasets.items():
            if not isinstance(entry, dict):
                raise ParamsError(f"datasets.{name}: must be a mapping with kind (and local, archive, sha256)")
            dataset_spec(name, entry)
            for section in ("architectures", "training"):
                if name not in self.raw[section]:
                    raise ParamsError(f"{section}.{name}: missing (every dataset needs one)")
            _typed(self.raw["training"][name], TRAINING_KEYS, f"training.{name}")
            training = self.raw["training"][name]
            if not 0 <= training["p_uncond"] <= 1:
                raise ParamsError(f"training.{name}.p_uncond: must be in [0, 1], got {training['p_uncond']}")
            if not 0 <= training["ema_decay"] < 1:
                raise ParamsError(f"training.{name}.ema_decay: must be in [0, 1), got {training['ema_decay']}")
            for key in ("steps", "batch_size", "checkpoint_every", "log_every"):
                if training[key] < 1:
                    raise ParamsError(f"training.{name}.{key}: must be >= 1, got {training[key]}")
            config_for(self.raw["classifier"], name)

    def _validate_models(self) -> None:
        section = self.raw["models"]
        if not isinstance(section, dict) or set(section) != {"datasets", "schedules"}:
            raise ParamsError("models: must be {datasets: [...], schedules: [...]}")
        for name in _nonempty_list(section, "datasets", "models"):
            if name not in self.raw["datasets"]:
                raise ParamsError(f"models.datasets: unknown dataset {name!r}; allowed: {', '.join(self.raw['datasets'])}")
        for name in _nonempty_list(section, "schedules", "models"):
            if name not in SCHEDULES:
                raise ParamsError(f"models.schedules: unknown schedule {name!r}; allowed: {', '.join(sorted(SCHEDULES))}")

    def _validate_samplers(self) -> None:
        for name, entry in self.raw["samplers"].items():
            if "-" in name:
                raise ParamsError(f"samplers.{name}: a setting name may not contain '-' (runs are <setting>-<steps>)")
            if not isinstance(entry, dict) or "kind" not in entry:
                raise ParamsError(f"samplers.{name}: needs kind: one of {', '.join(sorted(REGISTRY))}")
            get_sampler(entry["kind"])
            make_settings(entry["kind"], {k: v for k, v in entry.items() if k != "kind"}, f"samplers.{name}")

    def _validate_sweeps(self) -> None:
        for section in ("sweep", "ablation"):
            for run in _nonempty_list(self.raw[section], "runs", section):
                self.run(run)
        for section in ("ablation", "guidance"):
            schedule = self.raw[section].get("schedule")
            if schedule not in self.raw["models"]["schedules"]:
                raise ParamsError(
                    f"{section}.schedule: {schedule!r} is not among models.schedules "
                    f"({', '.join(self.raw['models']['schedules'])})"
                )
        self.run(self.raw["guidance"].get("run"))
        for scale in _nonempty_list(self.raw["guidance"], "scales", "guidance"):
            parse_scale(scale, "guidance.scales")


def _nonempty_list(section: dict, key: str, where: str) -> list:
    values = section.get(key) if isinstance(section, dict) else None
    if not isinstance(values, list) or not values:
        raise ParamsError(f"{where}.{key}: must be a non-empty list")
    return values


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate a params file; a missing or unparsable file fails naming it."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ParamsError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    return Params(raw, path)
