"""Runs as records: every generation params.yaml asks for, built once, with one owner of its name.

A *generation* is one sample set: a model (dataset × schedule), a sampler setting, a step count, a
guidance scale and n images (seeds 0..n−1). Its folder name is ``<setting>-<steps>-cfg<scale>``
(``cfgnone`` = unguided), so the same generation asked for by two tables (the sweep's ``ddim-50`` at
the default scale 1 and the guidance sweep's s=1 row) is sampled and scored once. Classifier guidance
(a noisy classifier's gradient on the unguided model) appends ``-cg<scale>``; its scale 0 is the unguided
generation itself (``cfgnone``), sampled once for both guidance tables.

Tables are lists of generations: ``sweep`` (every model × ``sweep.runs`` at ``sampling.guidance``),
``ablation`` (``ablation.schedule``'s models × ``ablation.runs``), ``guidance`` (``guidance.schedule``'s
models × ``guidance.scales`` at ``guidance.run``) and ``classifier_guidance`` (the same models and run ×
``guidance.classifier_scales``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from diffbench import layout
from diffbench.errors import ParamsError

TABLES = ("sweep", "ablation", "guidance", "classifier_guidance")


@dataclass(frozen=True)
class Model:
    """One reference model: a dataset trained under a noise schedule."""

    dataset: str
    schedule: str

    @property
    def name(self) -> str:
        return f"{self.dataset}-{self.schedule}"


def scale_text(scale: float | None) -> str:
    """A guidance scale as it appears in names: 'none' (unguided) or the shortest decimal ('1', '1.5')."""
    if scale is None:
        return "none"
    return f"{scale:g}"


def passes_per_evaluation(scale: float | None) -> int:
    """U-Net passes per image in one evaluation of a conditional model: 2 for a guided pair (conditional and
    unconditional in one batched call), 1 unguided (None) or plain conditional (1)."""
    return 1 if scale is None or scale == 1 else 2


def parse_scale(value: Any, where: str) -> float | None:
    """A scale from params or the command line: 'none'/null → None (unguided), else a finite number ≥ 0."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ParamsError(f"{where}: a guidance scale must be a number >= 0 or 'none', got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 <= value and math.isfinite(value)):
        raise ParamsError(f"{where}: a guidance scale must be a number >= 0 or 'none', got {value!r}")
    return float(value)


def parse_run(text: Any, where: str) -> tuple[str, int]:
    """'<sampler setting>-<steps>' → (setting, steps); the only place a run string is split."""
    setting, _, steps_text = str(text).rpartition("-")
    if not setting or not steps_text.isdigit() or int(steps_text) < 1:
        raise ParamsError(f"{where}: {text!r} must be '<sampler setting>-<steps>' with steps a positive integer")
    return setting, int(steps_text)


@dataclass(frozen=True)
class Generation:
    """One sample set of one model; ``kind`` is the sampler file, ``setting`` its params entry."""

    model: Model
    setting: str
    kind: str
    steps: int
    guidance: float | None
    n_samples: int
    classifier_scale: float | None = None  # classifier guidance (> 0, on the unguided model); None: none

    @property
    def run(self) -> str:
        """The folder name under results/<model>/ (and the row name in summary.json)."""
        run = f"{self.setting}-{self.steps}-cfg{scale_text(self.guidance)}"
        return run if self.classifier_scale is None else f"{run}-cg{scale_text(self.classifier_scale)}"

    @property
    def guide_file(self) -> str:
        """The network file that steers the samples, a dependency of the generate stage: the model itself
        (conditioning, classifier-free guidance) or the noisy classifier of classifier guidance."""
        if self.classifier_scale is None:
            return str(layout.model_dir(self.model.name) / "model.pt")
        return str(layout.noisy_classifier_dir(self.model.name) / "noisy_classifier.pt")

    @property
    def key(self) -> str:
        """The DVC stage suffix: generate@<key>, score@<key>."""
        return f"{self.model.name}.{self.run}"

    def plan_entry(self) -> dict:
        """What dvc.yaml's generate/score stages interpolate (plan.yaml)."""
        return {
            "model": self.model.name, "dataset": self.model.dataset, "schedule": self.model.schedule,
            "run": self.run, "setting": self.setting, "kind": self.kind, "steps": self.steps,
            "guidance": scale_text(self.guidance), "n": self.n_samples, "guide": self.guide_file,
        }


@dataclass(frozen=True)
class Plan:
    """Every model and generation of a params file, and which table shows which generation."""

    models: tuple[Model, ...]
    generations: tuple[Generation, ...]
    tables: dict[str, tuple[Generation, ...]]
    shards: dict[str, tuple[str, ...]]

    def generation(self, model: str, run: str) -> Generation:
        """The planned generation ``run`` of ``model``; anything else fails listing what is planned."""
        for item in self.generations:
            if item.model.name == model and item.run == run:
                return item
        planned = ", ".join(g.run for g in self.generations if g.model.name == model) or "none"
        raise ParamsError(f"run {model}/{run}: not planned by params.yaml; planned runs of {model}: {planned}")

    def model(self, name: str) -> Model:
        for model in self.models:
            if model.name == name:
                return model
        raise ParamsError(f"model {name!r}: not among models ({', '.join(m.name for m in self.models)})")

    @property
    def guided_models(self) -> tuple[Model, ...]:
        """The models a noisy classifier is trained for: those with classifier-guided generations."""
        return tuple(dict.fromkeys(g.model for g in self.generations if g.classifier_scale is not None))

    def tables_of(self, generation: Generation) -> list[str]:
        """The tables that show ``generation``."""
        return [name for name, items in self.tables.items() if generation in items]


def build_plan(raw: dict) -> Plan:
    """The plan of an already type-checked params mapping (config.Params validates, then calls this)."""
    section = raw["models"]
    models = tuple(Model(d, s) for d in section["datasets"] for s in section["schedules"])
    samplers, sampling = raw["samplers"], raw["sampling"]
    per_setting = sampling.get("n_samples_per_setting") or {}
    default_scale = parse_scale(sampling["guidance"], "sampling.guidance")

    def make(model: Model, run: Any, scale: float | None, where: str, classifier_scale: float | None = None
             ) -> Generation:
        setting, steps = parse_run(run, where)
        if setting not in samplers:
            raise ParamsError(f"{where}: {run!r}: no sampler setting {setting!r} (samplers.{setting}); "
                              f"settings: {', '.join(samplers)}")
        n = per_setting.get(setting, sampling["n_samples"])
        return Generation(model, setting, samplers[setting]["kind"], steps, scale, n, classifier_scale)

    def classifier_guided(model: Model, value: Any) -> Generation:
        """Classifier guidance at scale ``value`` on the unguided model; 0 is the unguided generation itself."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value >= 0 and math.isfinite(value)):
            raise ParamsError(f"guidance.classifier_scales: a classifier guidance scale must be a number >= 0 "
                              f"(0 = unguided), got {value!r}")
        scale = float(value)
        return make(model, raw["guidance"]["run"], None, "guidance.run", scale or None)

    def of_schedule(name: str, where: str) -> list[Model]:
        chosen = [m for m in models if m.schedule == name]
        if not chosen:
            raise ParamsError(f"{where}: {name!r} is not among models.schedules ({', '.join(section['schedules'])})")
        return chosen

    tables = {
        "sweep": tuple(make(m, run, default_scale, "sweep.runs") for m in models for run in raw["sweep"]["runs"]),
        "ablation": tuple(make(m, run, default_scale, "ablation.runs")
                          for m in of_schedule(raw["ablation"]["schedule"], "ablation.schedule")
                          for run in raw["ablation"]["runs"]),
        "guidance": tuple(make(m, raw["guidance"]["run"], parse_scale(s, "guidance.scales"), "guidance.run")
                          for m in of_schedule(raw["guidance"]["schedule"], "guidance.schedule")
                          for s in raw["guidance"]["scales"]),
        "classifier_guidance": tuple(classifier_guided(m, s)
                                     for m in of_schedule(raw["guidance"]["schedule"], "guidance.schedule")
                                     for s in raw["guidance"].get("classifier_scales") or []),
    }
    unique: dict[str, Generation] = {}
    for items in tables.values():
        for item in items:
            unique.setdefault(item.key, item)
    shards = {name: tuple(names) for name, names in (raw.get("shards") or {}).items()}
    return Plan(models, tuple(unique.values()), tables, shards)
