"""``python -m diffbench COMMAND``: a dispatcher of subcommands.

A command is a module with ``add_arguments(parser)`` and ``run(args) -> int``, registered in ``COMMANDS`` with a
one-line help. Only the chosen command's module is imported, so a heavy or broken one never slows or breaks
another. Bad input (DiffbenchError) prints one line on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from diffbench import __version__
from diffbench.errors import DiffbenchError

COMMANDS: dict[str, tuple[str, str]] = {  # name → (module, one-line help)
    "compare": ("diffbench.compare", "compare two revisions' params and metrics, with significance"),
    "summary": ("diffbench.summary_table", "print one short line per run of a profile's reports/summary.json"),
    "plan": ("diffbench.plan",
             "write plan.yaml from params.yaml (or print a shard's stages, or check the plan is current)"),
}


def parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """Every command listed; the arguments of ``chosen`` only (its module is imported)."""
    top = argparse.ArgumentParser(prog="python -m diffbench", description="diffbench commands")
    top.add_argument("--version", action="version", version=f"diffbench {__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_line) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_line, description=help_line)
        if name == chosen:
            module = importlib.import_module(module_name)
            module.add_arguments(sub)
            sub.set_defaults(run=module.run)
    return top


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    chosen = next((arg for arg in argv if not arg.startswith("-")), None)  # top-level options take no value
    args = parser(chosen).parse_args(argv)
    try:
        return args.run(args)
    except DiffbenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
