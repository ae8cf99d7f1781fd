"""params.yaml: load it once, validate every field up front, hand stages typed views.

Every problem is a ``ParamsError`` with one line naming the field and what is allowed, raised
before any stage starts work.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import yaml

from diffbench.classifier_config import config_for
from diffbench.data import dataset_spec
from diffbench.elbo_settings import ElboSettings
from diffbench.noisy_classifier_config import config_for as noisy_classifier_config
from diffbench.errors import ParamsError
from diffbench.validation import check_widths, nonempty_list, positive_ints, typed_section
from diffbench.runs import Model, Plan, build_plan, parse_scale
from diffbench.samplers import REGISTRY, check_steps, get_sampler, make_settings, planned_timesteps
from diffbench.schedules import SCHEDULES

TOP_LEVEL = (
    "root", "seed", "datasets", "diffusion", "architectures", "training", "models",
    "samplers", "sampling", "sweep", "ablation", "guidance", "metrics", "classifier", "elbo", "shards",
)
OPTIONAL_TOP_LEVEL = {
    "report_banner": "a line every report of the profile starts with",
    "noisy_classifier": "per dataset, the noise-aware classifier of classifier guidance (guidance.classifier_scales)",
}
ARCHITECTURE_KEYS = {"channels": int, "channel_mult": list, "num_res_blocks": int, "attn_resolutions": list,
                     "dropout": float, "norm_groups": int}
ARCHITECTURE_OPTIONAL = ("group_norm_moments",)  # bool, default false: how GroupNorm computes (diffbench.group_norm)
TRAINING_KEYS = {
    "steps": int, "batch_size": int, "lr": float, "warmup_steps": int, "weight_decay": float,
    "grad_clip": float, "ema_decay": float, "p_uncond": float, "hflip": bool, "checkpoint_every": int,
    "log_every": int, "compile": bool, "cudagraphs": bool, "force_layout": bool, "bf16": bool, "channels_last": bool,
}
TRAINING_OPTIONAL = ("chosen_by",)  # text for the model card: where lr, batch and EMA length come from
SAMPLING_KEYS = {"n_samples": int, "batch_size": int, "bf16": bool, "compile": bool, "determinism_images": int,
                 "n_samples_per_setting": dict}
METRICS_KEYS = {
    "reference_split": str, "reference_n": int, "floor_n": int, "batch_size": int,
    "kid_subset_size": int, "kid_subsets": int, "prc_k": int, "grid_images": int,
    "interval_resamples": int, "interval_level": float,
}
PLAN_KEYS = {  # the sections the plan is built from (diffbench.runs), typed before it is
    "sweep": {"runs": list}, "ablation": {"schedule": str, "runs": list},
    "guidance": {"schedule": str, "run": str, "scales": list},
}
PLAN_OPTIONAL = {"guidance": ("classifier_scales",)}  # checked when the plan is built
PER_DATASET = ("architectures", "training", "classifier")  # sections with one entry per dataset
CLIP_KEYS = {"model": str, "download": bool, "prompts": dict, "check_n": int, "check_alpha": float, "batch_size": int}


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
    def models(self) -> list[Model]:
        """Every dataset × every schedule, in params order."""
        return list(self.plan.models)

    def model(self, dataset: str, schedule: str) -> Model:
        """The model trained on ``dataset`` under ``schedule``; names outside params fail listing them."""
        section = self.raw["models"]
        if dataset not in section["datasets"]:
            raise ParamsError(f"models.datasets: no dataset {dataset!r}; allowed: {', '.join(section['datasets'])}")
        if schedule not in section["schedules"]:
            raise ParamsError(f"models.schedules: no schedule {schedule!r}; allowed: {', '.join(section['schedules'])}")
        return Model(dataset, schedule)

    @cached_property
    def plan(self) -> Plan:
        """Every generation the tables ask for (see ``diffbench.runs``)."""
        return build_plan(self.raw)

    def sampler_settings(self, setting: str) -> object:
        """The validated ``Settings`` of ``samplers.<setting>`` (defaults included)."""
        options = {k: v for k, v in self.raw["samplers"][setting].items() if k != "kind"}
        return make_settings(self.raw["samplers"][setting]["kind"], options, f"samplers.{setting}")

    # ---- validation ---------------------------------------------------------------------
    def _validate(self) -> None:
        raw = self.raw
        if not isinstance(raw, dict):
            raise ParamsError("params: the file must hold a mapping of sections")
        for key in TOP_LEVEL:
            if key not in raw:
                raise ParamsError(f"{key}: missing section; sections: {', '.join(TOP_LEVEL)}")
        unknown = set(raw) - set(TOP_LEVEL) - set(OPTIONAL_TOP_LEVEL)
        if unknown:
            raise ParamsError(f"params: unknown section(s) {sorted(unknown)}; sections: "
                              f"{', '.join(TOP_LEVEL + tuple(OPTIONAL_TOP_LEVEL))}")
        banner = raw.get("report_banner")
        if banner is not None and not isinstance(banner, str):
            raise ParamsError(f"report_banner: must be a text or absent, got {banner!r}")
        if not isinstance(raw["root"], str) or not raw["root"]:
            raise ParamsError(f"root: must be a path (text) from the params file to the repository, got {raw['root']!r}")
        if isinstance(raw["seed"], bool) or not isinstance(raw["seed"], int) or raw["seed"] < 0:
            raise ParamsError(f"seed: must be an integer >= 0, got {raw['seed']!r}")
        typed_section(raw["diffusion"], {"timesteps": int}, "diffusion")
        timesteps = raw["diffusion"]["timesteps"]  # an int >= 0 (typed_section)
        if timesteps < 1:
            raise ParamsError(f"diffusion.timesteps: must be an integer >= 1, got {timesteps!r}")
        self._validate_datasets()
        self._validate_models()
        self._validate_samplers()
        typed_section(raw["sampling"], SAMPLING_KEYS, "sampling", untyped=("guidance",))
        if "guidance" not in raw["sampling"]:
            raise ParamsError("sampling.guidance: missing; the sweep's guidance scale, a number >= 0 or none")
        parse_scale(raw["sampling"]["guidance"], "sampling.guidance")
        for key in ("n_samples", "batch_size"):
            if raw["sampling"][key] < 1:
                raise ParamsError(f"sampling.{key}: must be >= 1, got {raw['sampling'][key]}")
        for setting, n in raw["sampling"]["n_samples_per_setting"].items():
            if setting not in raw["samplers"]:
                raise ParamsError(f"sampling.n_samples_per_setting.{setting}: no such sampler setting (samplers.{setting}); "
                                  f"settings: {', '.join(raw['samplers'])}")
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ParamsError(f"sampling.n_samples_per_setting.{setting}: must be an integer >= 1, got {n!r}")
        typed_section(raw["metrics"], METRICS_KEYS, "metrics", untyped=("inception_weights", "clip"))
        weights = raw["metrics"].get("inception_weights")
        if weights is not None and not (isinstance(weights, str) and weights):
            raise ParamsError(f"metrics.inception_weights: must be a file path or null, got {weights!r}")
        for section, keys in PLAN_KEYS.items():
            typed_section(raw[section], keys, section, untyped=PLAN_OPTIONAL.get(section, ()))
        if not isinstance(raw["shards"], dict) or not raw["shards"]:  # the plan reads them too
            raise ParamsError("shards: must map shard names to lists of model names (<dataset>-<schedule>)")
        self._validate_sweeps()
        self._validate_shards()
        self._validate_intervals()
        self._validate_clip()
        ElboSettings.from_params(raw["elbo"], raw["diffusion"]["timesteps"])
        if raw["metrics"]["reference_split"] not in ("train", "test"):
            raise ParamsError("metrics.reference_split: must be 'train' or 'test'")
        for key in ("reference_n", "floor_n", "kid_subset_size", "kid_subsets", "prc_k", "batch_size", "grid_images"):
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
        typed_section(clip, CLIP_KEYS, "metrics.clip", untyped=("pretrained", "weights"))
        for key in ("pretrained", "weights"):
            if key not in clip or not (clip[key] is None or isinstance(clip[key], str)):
                raise ParamsError(f"metrics.clip.{key}: must be a string or null, got {clip.get(key)!r}")
        for dataset in clip["prompts"]:
            if dataset not in self.raw["datasets"]:
                raise ParamsError(f"metrics.clip.prompts.{dataset}: no dataset {dataset!r} (datasets.{dataset})")
        for dataset in self.raw["models"]["datasets"]:
            template = clip["prompts"].get(dataset)
            if not isinstance(template, str) or "{class}" not in template:
                raise ParamsError(f"metrics.clip.prompts.{dataset}: must be a text containing {{class}}, got {template!r}")
        if clip["check_n"] < 1 or clip["batch_size"] < 1:
            raise ParamsError("metrics.clip.check_n and metrics.clip.batch_size: must be >= 1")
        if not 0 < clip["check_alpha"] < 1:
            raise ParamsError(f"metrics.clip.check_alpha: must be in (0, 1), got {clip['check_alpha']}")

    def _validate_datasets(self) -> None:
        datasets = self.raw["datasets"]
        if not isinstance(datasets, dict) or not datasets:
            raise ParamsError("datasets: must map at least one dataset name to its source")
        for section in PER_DATASET:
            if not isinstance(self.raw[section], dict):
                raise ParamsError(f"{section}: must map each dataset to its settings, got {self.raw[section]!r}")
        for name, entry in datasets.items():
            if not isinstance(entry, dict):
                raise ParamsError(f"datasets.{name}: must be a mapping with kind (and local, archive, sha256)")
            dataset_spec(name, entry)
            for section in ("architectures", "training"):
                if name not in self.raw[section]:
                    raise ParamsError(f"datasets.{name}: no {section}.{name} (every dataset needs one)")
            self._validate_architecture(name)
            typed_section(self.raw["training"][name], TRAINING_KEYS, f"training.{name}", untyped=TRAINING_OPTIONAL)
            training = self.raw["training"][name]
            if not isinstance(training.get("chosen_by", ""), str):
                raise ParamsError(f"training.{name}.chosen_by: must be a text, got {training['chosen_by']!r}")
            if not 0 <= training["p_uncond"] <= 1:
                raise ParamsError(f"training.{name}.p_uncond: must be in [0, 1], got {training['p_uncond']}")
            if not 0 <= training["ema_decay"] < 1:
                raise ParamsError(f"training.{name}.ema_decay: must be in [0, 1), got {training['ema_decay']}")
            if not training["lr"] > 0:
                raise ParamsError(f"training.{name}.lr: must be > 0, got {training['lr']}")
            for key in ("steps", "batch_size", "checkpoint_every", "log_every"):
                if training[key] < 1:
                    raise ParamsError(f"training.{name}.{key}: must be >= 1, got {training[key]}")
            config_for(self.raw["classifier"], name)
        noisy = self.raw.get("noisy_classifier", {})
        if not isinstance(noisy, dict):
            raise ParamsError(f"noisy_classifier: must map datasets to their noisy classifier, got {noisy!r}")
        for section, entries in [*((name, self.raw[name]) for name in PER_DATASET), ("noisy_classifier", noisy)]:
            for name in entries:
                if name not in datasets:
                    raise ParamsError(f"{section}.{name}: no dataset {name!r} (datasets.{name}); "
                                      f"datasets: {', '.join(datasets)}")
        for name in noisy:
            noisy_classifier_config(noisy, name, self.raw["diffusion"]["timesteps"])

    def _validate_architecture(self, name: str) -> None:
        """``architectures.<name>``: typed, sizes >= 1, widths that fit the group norm (the image size is
        checked when the split is known: ``UNetConfig.validate``)."""
        entry, where = self.raw["architectures"][name], f"architectures.{name}"
        typed_section(entry, ARCHITECTURE_KEYS, where, untyped=ARCHITECTURE_OPTIONAL)
        if not isinstance(entry.get("group_norm_moments", False), bool):
            raise ParamsError(f"{where}.group_norm_moments: must be true or false, got {entry['group_norm_moments']!r}")
        for key in ("channels", "num_res_blocks", "norm_groups"):
            if entry[key] < 1:
                raise ParamsError(f"{where}.{key}: must be >= 1, got {entry[key]}")
        mult = positive_ints(entry, "channel_mult", where)
        positive_ints(entry, "attn_resolutions", where, empty=True)
        check_widths(entry["channels"], mult, entry["norm_groups"], entry["dropout"], where)

    def _validate_models(self) -> None:
        section = self.raw["models"]
        typed_section(section, {"datasets": list, "schedules": list}, "models")
        for name in nonempty_list(section, "datasets", "models"):
            if not isinstance(name, str) or name not in self.raw["datasets"]:
                raise ParamsError(f"models.datasets: unknown dataset {name!r} (no datasets.{name}); "
                                  f"allowed: {', '.join(self.raw['datasets'])}")
        for name in nonempty_list(section, "schedules", "models"):
            if not isinstance(name, str) or name not in SCHEDULES:
                raise ParamsError(f"models.schedules: unknown schedule {name!r}; allowed: {', '.join(sorted(SCHEDULES))}")

    def _validate_samplers(self) -> None:
        if not isinstance(self.raw["samplers"], dict) or not self.raw["samplers"]:
            raise ParamsError("samplers: must map setting names to {kind: <sampler>, <option>: <value>, ...}")
        for name, entry in self.raw["samplers"].items():
            if "-" in name:
                raise ParamsError(f"samplers.{name}: a setting name may not contain '-' (runs are <setting>-<steps>)")
            if not isinstance(entry, dict):
                raise ParamsError(f"samplers.{name}: must be a mapping with kind and the sampler's options")
            if "kind" not in entry:
                raise ParamsError(f"samplers.{name}.kind: missing; one of {', '.join(sorted(REGISTRY))}")
            get_sampler(entry["kind"], f"samplers.{name}.kind")
            make_settings(entry["kind"], {k: v for k, v in entry.items() if k != "kind"}, f"samplers.{name}")

    def _validate_sweeps(self) -> None:
        for section in ("sweep", "ablation"):
            nonempty_list(self.raw[section], "runs", section)
        nonempty_list(self.raw["guidance"], "scales", "guidance")
        if not isinstance(self.raw["guidance"].get("classifier_scales", []), list):
            raise ParamsError("guidance.classifier_scales: must be a list of numbers >= 0 (0 = unguided), or absent")
        for model in self.plan.guided_models:  # classifier guidance needs its noisy classifier's recipe
            noisy_classifier_config(self.raw.get("noisy_classifier"), model.dataset, self.timesteps)
        for generation in self.plan.generations:  # every sampler's own rules, before any stage runs
            where = f"run {generation.model.name}/{generation.run}"
            check_steps(generation.steps, self.timesteps, f"{where} steps")
            schedule = generation.model.schedule
            planned_timesteps(generation.kind, self.sampler_settings(generation.setting), schedule,
                              self.timesteps, generation.steps, where)
        smallest = min((g for g in self.plan.generations), key=lambda g: g.n_samples, default=None)
        k = self.raw["metrics"]["prc_k"]
        if smallest is not None and smallest.n_samples // 2 <= k:  # intervals score half-samples
            raise ParamsError(f"run {smallest.model.name}/{smallest.run}: n={smallest.n_samples} is too few; "
                              f"precision/recall with metrics.prc_k={k} on half-samples needs n >= {2 * k + 2}")

    def _validate_shards(self) -> None:
        shards = self.raw["shards"]
        names = [m.name for m in self.plan.models]
        seen: dict[str, str] = {}
        for shard, models in shards.items():
            if not isinstance(models, list) or not models:
                raise ParamsError(f"shards.{shard}: must be a non-empty list of model names")
            for model in models:
                if model not in names:
                    raise ParamsError(f"shards.{shard}: unknown model {model!r}; models: {', '.join(names)}")
                if model in seen:
                    raise ParamsError(f"shards.{shard}: model {model!r} is already in shard {seen[model]!r}")
                seen[model] = shard
        missing = [n for n in names if n not in seen]
        if missing:
            raise ParamsError(f"shards: models in no shard: {', '.join(missing)} (every model needs one)")


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
