"""Bad params, systematically: every key of params.yaml, found by walking the file (not listed by hand), with a
wrong type and missing; every leaf also with a wrong element type (lists), out of range (numbers) and an unknown
name (texts, lists of names); every mapping with an unknown key or name. Each case is one ParamsError line
naming the key, raised while params load: before any work (each stage loads params first, and the
preflight stage, which every other stage depends on, before any of them). Allow-lists below say, with
reasons, which keys may be left out, which texts are free and what each number's range is."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from fnmatch import fnmatch
from pathlib import Path

import pytest
import yaml

from diffbench.config import Params
from diffbench.errors import ParamsError

ROOT = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
Key = tuple[str, ...]
DELETE = object()
UNKNOWN = "nosuch"

# Mappings whose keys are names a profile chooses (datasets, sampler settings, shards), not a fixed schema: a new
# name must be one params know (NEW_NAMES aside); a missing entry is named by its key, except a shard, which nothing
# else names (its models are then "in no shard")
NAMED = ("datasets", "architectures", "training", "samplers", "classifier", "shards", "sampling.n_samples_per_setting",
         "metrics.clip.prompts")
NAMED_BY_SECTION_WHEN_MISSING = ("shards",)
NEW_NAMES = {"samplers": "a sampler setting no run uses yet is allowed"}
# Keys a profile may leave out (a default applies), with the default
OPTIONAL = {
    "datasets.*.local": "$DIFFBENCH_DATA_DIR/<dataset>, else download",
    "datasets.*.archive": "the local folder is the image folder itself",
    "datasets.*.sha256": "no checksum check of the archive",
    "datasets.mnist.kind": "the name, when it is a kind",
    "samplers.*.*": "every sampler option has a default (kind aside)",
    "sampling.n_samples_per_setting.*": "sampling.n_samples",
    "classifier.*.min_accuracy": "no minimum: classifier metrics always reported",
    "metrics.inception_weights": "$DIFFBENCH_INCEPTION_WEIGHTS, else download",
    "guidance.classifier_scales": "no classifier-guided runs",
    "training.*.chosen_by": "no 'recipe chosen by' row in the model card",
    "architectures.*.group_norm_moments": "false: F.group_norm's statistics (the same function)",
}
REQUIRED = ("samplers.*.kind",)  # exceptions to OPTIONAL
# Texts that are not names from a known set: any value of the right type is accepted when params load
FREE_TEXT = {
    "root": "a path; dvc.yaml's dependencies fail if it leads elsewhere",
    "datasets.*.archive": "a file name inside the local data folder; prepare names it if it is missing",
    "metrics.clip.model": "an open_clip model name, looked up only when CLIP runs",
    "metrics.clip.pretrained": "an open_clip weights tag, looked up only when CLIP runs",
    "training.*.chosen_by": "a note for the model card (where the recipe comes from)",
}
# Out-of-range values beyond -1 (every number of params.yaml is a count, size, rate or scale: none may be negative)
OUT_OF_RANGE = {
    "diffusion.timesteps": [0],
    "architectures.*.channels": [0], "architectures.*.num_res_blocks": [0], "architectures.*.norm_groups": [0, 7],
    "architectures.*.dropout": [1.0], "architectures.*.channel_mult": [[0]], "architectures.*.attn_resolutions": [[0]],
    "training.*.steps": [0], "training.*.batch_size": [0], "training.*.lr": [0],
    "training.*.ema_decay": [1.0], "training.*.p_uncond": [1.5],
    "training.*.checkpoint_every": [0], "training.*.log_every": [0],
    "samplers.*.eta": [-0.5], "samplers.*.sigma_max": [0],
    "sampling.n_samples": [0], "sampling.n_samples_per_setting.*": [0], "sampling.batch_size": [0],
    "metrics.reference_n": [0], "metrics.floor_n": [0], "metrics.batch_size": [0], "metrics.kid_subset_size": [0],
    "metrics.kid_subsets": [0], "metrics.prc_k": [0], "metrics.grid_images": [0], "metrics.interval_resamples": [1],
    "metrics.interval_level": [0, 1], "metrics.clip.check_n": [0], "metrics.clip.check_alpha": [0, 1],
    "metrics.clip.batch_size": [0],
    "classifier.*.width": [0], "classifier.*.epochs": [0], "classifier.*.batch_size": [0], "classifier.*.lr": [0],
    "classifier.*.label_smoothing": [1.0], "classifier.*.min_accuracy": [1.5],
    "elbo.n_images": [0], "elbo.timesteps_per_image": [0, PARAMS["diffusion"]["timesteps"]], "elbo.batch_size": [0],
}


def leaves(node: object, key: Key = ()) -> list[Key]:
    """Every path to a value that is not a mapping (a list is one leaf)."""
    if isinstance(node, dict):
        return [leaf for name, child in node.items() for leaf in leaves(child, (*key, name))]
    return [key]


def mappings(node: object, key: Key = ()) -> list[Key]:
    """Every path to a mapping, the file itself included."""
    if not isinstance(node, dict):
        return []
    return [key, *(inner for name, child in node.items() for inner in mappings(child, (*key, name)))]


def dotted(key: Key) -> str:
    return ".".join(key)


def matches(key: Key, patterns: Iterable[str]) -> bool:
    return any(fnmatch(dotted(key), pattern) for pattern in patterns)


def lookup(key: Key) -> object:
    node = PARAMS
    for name in key:
        node = node[name]
    return node


def edited(key: Key, value: object) -> dict:
    """params.yaml with ``key`` set to ``value`` (or deleted: DELETE)."""
    params = copy.deepcopy(PARAMS)
    node = params
    for name in key[:-1]:
        node = node[name]
    if value is DELETE:
        del node[key[-1]]
    else:
        node[key[-1]] = value
    return params


def wrong_type(value: object) -> object:
    """A value of another type than ``value``'s that no key of its kind accepts."""
    if isinstance(value, bool):
        return "yes"
    if isinstance(value, (int, float)):
        return "ten"
    if isinstance(value, str):
        return 7
    if isinstance(value, list):
        return "wrong"
    return ["wrong"]  # null: a text or number where set, never a list


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def out_of_range(key: Key, value: object) -> list:
    """-1 for a number (or as a list's first number), and the key's own bounds from OUT_OF_RANGE."""
    own = [bad for pattern, bads in OUT_OF_RANGE.items() if fnmatch(dotted(key), pattern) for bad in bads]
    if is_number(value):
        return [-1, *own]
    if isinstance(value, list) and value and all(is_number(v) for v in value):
        return [[-1, *value[1:]], *own]
    return own


def missing_names(key: Key) -> tuple[str, ...]:
    """What the error for a missing ``key`` names: the key, or its section (NAMED_BY_SECTION_WHEN_MISSING)."""
    return (dotted(key[:-1]),) if dotted(key[:-1]) in NAMED_BY_SECTION_WHEN_MISSING else (dotted(key),)


def with_new_name(key: Key) -> dict:
    """params.yaml with a copy of the first entry of the named mapping ``key`` under a name nothing knows."""
    return edited((*key, UNKNOWN), copy.deepcopy(next(iter(lookup(key).values()))))


def cases() -> list:
    """(edited params, what the error must name) for every leaf and every mapping, with a case id."""
    out: list = []

    def add(kind: str, key: Key, value: object, named: tuple[str, ...] = ()) -> None:
        shown = "" if value is DELETE or isinstance(value, dict) else f"={value!r}"
        out.append(pytest.param(edited(key, value), named or (dotted(key),), id=f"{kind}:{dotted(key)}{shown}"))

    for key in leaves(PARAMS):
        value = lookup(key)
        add("type", key, wrong_type(value))
        if isinstance(value, list) and value:
            add("element-type", key, [{"a": 1}, *value[1:]])
        if not matches(key, OPTIONAL) or matches(key, REQUIRED):
            add("missing", key, DELETE, named=missing_names(key))
        for bad in out_of_range(key, value):
            add("range", key, bad)
        if isinstance(value, str) and not matches(key, FREE_TEXT):
            add("unknown", key, UNKNOWN)
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            add("unknown", key, [UNKNOWN, *value[1:]])
    for key in mappings(PARAMS):
        if key:  # a section or an entry: the same wrong type and missing cases as a leaf
            add("type", key, "wrong")
            add("missing", key, DELETE, named=missing_names(key))
        if dotted(key) in NEW_NAMES:
            continue
        if dotted(key) in NAMED:
            out.append(pytest.param(with_new_name(key), (dotted((*key, UNKNOWN)),), id=f"unknown-name:{dotted(key)}"))
        else:
            add("unknown-key", (*key, UNKNOWN), 1, named=(dotted(key) or "params", UNKNOWN))
    return out


@pytest.mark.parametrize("params, named", cases())
def test_every_bad_value_fails_in_one_line_naming_its_key(params, named):
    with pytest.raises(ParamsError) as error:
        Params(params)
    message = str(error.value)
    assert "\n" not in message
    assert all(name in message for name in named), message


def allowed_edits() -> list:
    """What the allow-lists let through: leaving out an optional key, a new name, any text for a free text."""
    out = [pytest.param(edited(key, DELETE), id=f"missing:{dotted(key)}") for key in leaves(PARAMS)
           if matches(key, OPTIONAL) and not matches(key, REQUIRED)]
    out += [pytest.param(with_new_name(tuple(key.split("."))), id=f"new-name:{key}") for key in NEW_NAMES]
    out += [pytest.param(edited(key, UNKNOWN), id=f"text:{dotted(key)}") for key in leaves(PARAMS)
            if isinstance(lookup(key), str) and matches(key, FREE_TEXT)]
    return out


@pytest.mark.parametrize("params", allowed_edits())
def test_the_allow_lists_exempt_only_what_params_accept(params):
    Params(params)


def test_every_allow_list_entry_names_keys_of_params_yaml():
    keys = leaves(PARAMS)
    patterns = [*OPTIONAL, *REQUIRED, *FREE_TEXT, *OUT_OF_RANGE]
    assert [p for p in patterns if not any(fnmatch(dotted(key), p) for key in keys)] == []
    assert {*NAMED, *NEW_NAMES, *NAMED_BY_SECTION_WHEN_MISSING} <= {dotted(key) for key in mappings(PARAMS)}
