"""DVC stage: check everything a repro needs, in seconds, before any stage removes an output.

Every other stage depends on this stage's output, so DVC runs it first; it always runs
(``always_changed``) and writes the same bytes each time, so passing it reruns nothing downstream.
It validates params.yaml (every field, every planned run against its sampler's own rules), that
plan.yaml matches it, that the local data folders and metric weights it names exist, and that every
dataset without a download source (an image folder) has a local folder. A problem is one line (exit
status 2) and no earlier result is touched.
"""

from __future__ import annotations

from pathlib import Path

from diffbench import atomic
from diffbench.cli import stage_main, stage_parser
from diffbench.data import check_source, dataset_spec, resolve_local_dir
from diffbench.errors import ParamsError
from diffbench.metrics.inception import resolve_weights
from diffbench.plan import load_stage_params

OUTPUT = Path("preflight.ok")
CONTENT = "params.yaml, plan.yaml, local data folders and metric weights checked\n"


@stage_main
def main(argv: list[str] | None = None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    params = load_stage_params(args.params)
    for name in params.section("models")["datasets"]:
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
