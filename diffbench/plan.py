"""plan.yaml: the generations of params.yaml, written where dvc.yaml reads them (``vars``).

DVC cannot compute with params (no string splitting, no lookups), so every generate/score stage's
inputs — its model, sampler file, params entry, steps, scale and n — come from this generated file.
``python -m diffbench plan`` writes it beside params.yaml; every stage refuses to run on a plan that
no longer matches its params (one line saying to rerun that command), so a stale plan cannot produce
results quietly. Shards (params ``shards``) name the stages one GPU lease runs.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from diffbench import atomic
from diffbench.config import Params, load_params
from diffbench.errors import ParamsError
from diffbench.runs import passes_per_evaluation

HEADER = ("# Generated from params.yaml by `python -m diffbench plan`; dvc.yaml reads it (vars). Do not edit:\n"
          "# change params.yaml and rerun that command.\n")
PLAN_COMMAND = "python -m diffbench plan"


def plan_path(params_path: str | Path) -> Path:
    """plan.yaml beside its params file."""
    return Path(params_path).parent / "plan.yaml"


def plan_document(params: Params) -> dict:
    """What plan.yaml holds: one entry per generation, keyed by its stage suffix, and one per model that
    classifier guidance needs a noisy classifier for."""
    return {
        "generations": {g.key: g.plan_entry() for g in params.plan.generations},
        "noisy_classifiers": {m.name: {"dataset": m.dataset, "schedule": m.schedule}
                              for m in params.plan.guided_models},
    }


def render(params: Params) -> str:
    return HEADER + yaml.safe_dump(plan_document(params), sort_keys=True, width=120)


def write_plan(params_path: str | Path = "params.yaml") -> Path:
    """Write plan.yaml for a params file; returns its path."""
    params = load_params(params_path)
    path = plan_path(params_path)
    atomic.write_text(path, render(params))
    return path


def check_plan(params: Params) -> None:
    """Fail in one line when plan.yaml is missing or was generated from other params."""
    assert params.path is not None
    path = plan_path(params.path)
    if not path.is_file():
        raise ParamsError(f"{path}: missing; run `{PLAN_COMMAND}` beside {params.path.name}")
    try:
        found = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        found = None
    if found != plan_document(params):
        raise ParamsError(f"{path}: out of date with {params.path.name}; run `{PLAN_COMMAND}`, then `dvc repro`")


def load_stage_params(path: str | Path = "params.yaml") -> Params:
    """Params for a stage: validated, and with a plan.yaml that matches them."""
    params = load_params(path)
    check_plan(params)
    return params


def _shard_models(params: Params, shard: str) -> list:
    if shard not in params.plan.shards:
        raise ParamsError(f"shard {shard!r}: not in params shards ({', '.join(params.plan.shards)})")
    return [params.plan.model(name) for name in params.plan.shards[shard]]


def _generation_cost(generation) -> float:
    """Network passes for the whole sample set: what orders a shard's generations, cheapest first."""
    passes = passes_per_evaluation(generation.guidance)
    passes += 2 * (generation.classifier_scale is not None)  # the classifier's forward and backward
    return generation.n_samples * generation.steps * passes


def shard_groups(params: Params, shard: str) -> list[tuple[str, list[str]]]:
    """A shard's stages (its models' whole chain) in groups, in the order one lease should run them.

    ``setup`` (preflight, prepare), ``models`` (every training, reference-classifier and noisy-classifier
    stage: independent of each other, so a runner may start them side by side), ``reference`` (the real-data
    floors), then the generate/score pairs table by table (sweep, guidance, classifier guidance, ablation;
    within a table the cheapest first), the
    ELBO before the ablation (whose DDPM-1000 rows cost most): a lease that runs out leaves the costliest
    rows missing, never the headline ones.
    """
    models = _shard_models(params, shard)
    datasets = list(dict.fromkeys(m.dataset for m in models))
    groups = [
        ("setup", ["preflight", *(f"prepare@{d}" for d in datasets)]),
        ("models", [*(f"train@{m.name}" for m in models), *(f"classifier@{d}" for d in datasets),
                    *(f"noisy_classifier@{m.name}" for m in models if m in params.plan.guided_models)]),
        ("reference", [f"reference@{d}" for d in datasets]),
    ]
    done: set[str] = set()
    for table in ("sweep", "guidance", "classifier_guidance", "elbo", "ablation"):
        if table == "elbo":
            groups.append(("elbo", [f"elbo@{m.name}" for m in models]))
            continue
        items = [g for g in params.plan.tables[table] if g.model in models and g.key not in done]
        items.sort(key=_generation_cost)
        done.update(g.key for g in items)
        if items:
            groups.append((table, [f"{stage}@{g.key}" for g in items for stage in ("generate", "score")]))
    return groups


def long_poles_first(params: Params, stages: list[str], runners: int) -> list[str]:
    """``stages`` (a shard's tables, in priority order) with the long poles moved to the front: the
    generate/score pairs whose generation alone costs more than 1/(2·runners) of all the listed
    generations, costliest first. Run last, such a pair (DDPM-1000) would leave one runner working alone
    while the others idle; run first, it overlaps the headline rows, which keep their order."""
    if runners < 1:
        raise ParamsError(f"runners must be >= 1, got {runners}")
    costs = {g.key: _generation_cost(g) for g in params.plan.generations}
    listed = {item_key(stage) for stage in stages} & costs.keys()
    bar = sum(costs[key] for key in listed) / (2 * runners)
    poles = sorted((key for key in listed if costs[key] > bar), key=lambda key: -costs[key])
    first = [stage for key in poles for stage in stages if item_key(stage) == key]
    return first + [stage for stage in stages if stage not in first]


def item_key(stage: str) -> str:
    """What follows the ``@`` of a foreach stage name (the stage itself when there is none)."""
    return stage.split("@", 1)[-1]


def shard_stages(params: Params, shard: str) -> list[str]:
    """Every stage a shard runs, in the order of ``shard_groups``."""
    return [stage for _, stages in shard_groups(params, shard) for stage in stages]


HELP = "write plan.yaml from params.yaml (or print a shard's stages, or check the plan is current)"


def add_arguments(parser) -> None:
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("--shard", help="print this shard's stages, one per line (for dvc repro), and write nothing")
    parser.add_argument("--check", action="store_true", help="only check that plan.yaml matches params")


def run(args) -> int:
    """``python -m diffbench plan``."""
    if args.shard:
        params = load_params(args.params)
        check_plan(params)
        print("\n".join(shard_stages(params, args.shard)))
    elif args.check:
        check_plan(load_params(args.params))
        print(f"{plan_path(args.params)}: current")
    else:
        path = write_plan(args.params)
        print(f"wrote {path} ({len(load_params(args.params).plan.generations)} generations)")
    return 0
