"""DVC stage: check everything a repro needs, in seconds, before any stage removes an output.

Every other stage depends on this stage's output, so DVC runs it first; it always runs
(``always_changed``) and writes the same bytes each time, so passing it reruns nothing downstream.
It validates params.yaml (every field, every planned run against its sampler's own rules), that
plan.yaml matches it, that the local data folders and metric weights it names exist, and that every
dataset without a download source (an image folder) has a local folder (under ``$DIFFBENCH_SHARD``,
only the shard's datasets). A problem is one line (exit
status 2) and no earlier result is touched.
"""

from __future__ import annotations

import os
from pathlib import Path

from diffbench import atomic
from diffbench.cli import stage_main, stage_parser
from diffbench.data import check_source, dataset_spec, resolve_local_dir
from diffbench.config import Params
from diffbench.errors import ParamsError
from diffbench.metrics.inception import resolve_weights
from diffbench.plan import load_stage_params

OUTPUT = Path("preflight.ok")
CONTENT = "params.yaml, plan.yaml, local data folders and metric weights checked\n"


def datasets_to_check(params: Params, shard: str | None) -> list[str]:
    """The datasets whose data must be at hand: all of the profile's, or only those of the models of
    ``shard`` (``$DIFFBENCH_SHARD``, set by scripts/gpu-shard.sh: an MNIST lease needs no cifar10-jpeg)."""
    if not shard:
        return list(params.section("models")["datasets"])
    if shard not in params.plan.shards:
        raise ParamsError(f"DIFFBENCH_SHARD={shard}: not in params shards ({', '.join(params.plan.shards)})")
    return list(dict.fromkeys(params.plan.model(name).dataset for name in params.plan.shards[shard]))


@stage_main
def main(argv: list[str] | None = None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    params = load_stage_params(args.params)
    for name in datasets_to_check(params, os.environ.get("DIFFBENCH_SHARD")):
        entry = params.dataset_entry(name)
        local = resolve_local_dir(name, entry.get("local"))
        if local is not None and not local.is_dir():
            raise ParamsError(f"datasets.{name}.local: {local} is not a folder")
        check_source(dataset_spec(name, entry), local)
    resolve_weights(params.section("metrics").get("inception_weights"))
    atomic.write_text(OUTPUT, CONTENT)
    print(f"preflight: {len(params.plan.generations)} planned runs of {len(params.plan.models)} models; inputs present")


if __name__ == "__main__":
    main()
