"""`tessera`: one command for the hub, edges, gates and the demo.

Every command has `--help`. Errors are one line on stderr (`tessera: error: ...`) and a
non-zero exit: 2 for a wrong command line, 1 for everything else.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# The module that registers each area, in the order `tessera --help` lists them. A command line
# that names its area imports only that module: `tessera card verify` does not load the hub's web
# app, `tessera report` not the demo (each area module imports its own heavy parts).
AREAS = {"demo": "cli.demo", "hub": "cli.hub_commands", "gate": "cli.gate_commands",
         "card": "cli.gate_commands", "edge": "cli.edge_commands", "report": "cli.report_command"}


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, not a usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def area_modules(argv: list[str] | None) -> list[str]:
    """The modules to register for *argv*: the named area's, or all (top-level help, errors)."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in AREAS:
        return [AREAS[args[0]]]
    return list(dict.fromkeys(AREAS.values()))


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser for *argv*, with only the areas it needs registered (all when *argv* names none)."""
    parser = Parser(prog="tessera", description=__doc__.split("\n\n")[0] + " Offline-first box office.",
                    formatter_class=argparse.RawDescriptionHelpFormatter,
                    epilog="Start with `tessera demo`, or `tessera hub init --data DIR`.")
    areas = parser.add_subparsers(dest="area", metavar="COMMAND", parser_class=Parser, required=True)
    for name in area_modules(argv):
        importlib.import_module(name).register(areas)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    from cli.request_lines import accept_utf8_urls  # aiohttp: not loaded for --help and usage errors

    accept_utf8_urls()  # `curl '...?q=Müller'` (raw UTF-8 in the URL) works on every server we run
    try:
        return args.run(args) or 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one clear line, never a traceback, for anything we expect
        known = getattr(exc, "detail", None) or str(exc) or exc.__class__.__name__
        print(f"tessera: error: {known}", file=sys.stderr)
        if getattr(args, "debug", False):
            raise
        return 1


if __name__ == "__main__":
    sys.exit(main())
