"""DVC stage: raw dataset (local copy or download) → data/<dataset>/{train,test}.npz + provenance.json."""

from __future__ import annotations


from diffbench.cli import stage_parser, stage_main, write_json
from diffbench.config import load_params
from diffbench.data import dataset_spec, prepare_dataset, resolve_local_dir
from diffbench.layout import data_dir


@stage_main
def main(argv: list[str] | None = None) -> None:
    args = stage_parser(__doc__, "dataset").parse_args(argv)
    params = load_params(args.params)
    entry = params.dataset_entry(args.dataset)
    local = resolve_local_dir(args.dataset, entry.pop("local", None))
    out = data_dir(args.dataset)
    provenance = prepare_dataset(dataset_spec(args.dataset, entry), out, local)
    write_json(out / "provenance.json", provenance)
    print(f"{args.dataset}: wrote {out} ({provenance['source']})")


if __name__ == "__main__":
    main()
