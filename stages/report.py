"""DVC stage: results/**/metrics.json → reports/ (tables, plots, grids, index.md, summary.json)."""

from __future__ import annotations

import argparse

from diffbench import layout
from diffbench.cli import stage_main
from diffbench.reports import build_reports


@stage_main
def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=__doc__).parse_args(argv)
    written = build_reports(layout.RESULTS, layout.REPORTS)
    print(f"wrote {len(written)} report files under {layout.REPORTS}/")


if __name__ == "__main__":
    main()
