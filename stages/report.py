"""DVC stage: the runs params.yaml plans → reports/ (tables, plots, grids, index.md, summary.json).

Planned runs without a record are listed as missing, records whose stage's code, params or command changed
since they ran (dvc.lock) as stale; result folders no plan names are left out with a warning.
"""

from __future__ import annotations

from diffbench import layout
from diffbench.cli import stage_main, stage_parser
from diffbench.plan import load_stage_params
from diffbench.reports import build_reports


@stage_main
def main(argv: list[str] | None = None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    params = load_stage_params(args.params)
    written, warnings = build_reports(params, layout.REPORTS, params.raw.get("report_banner"))
    for warning in warnings:
        print(f"warning: {warning}")
    print(f"wrote {len(written)} report files under {layout.REPORTS}/")


if __name__ == "__main__":
    main()
