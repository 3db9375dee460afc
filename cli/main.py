"""`tessera`: one command for the hub, edges, gates and the demo.

Every command has `--help`. Errors are one line on stderr (`tessera: error: ...`) and a
non-zero exit: 2 for a wrong command line, 1 for everything else.
"""

from __future__ import annotations

import argparse
import sys

from cli import demo, edge_commands, gate_commands, hub_commands, report_command
from cli.request_lines import accept_utf8_urls


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, not a usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="tessera", description=__doc__.split("\n\n")[0] + " Offline-first box office.",
                    formatter_class=argparse.RawDescriptionHelpFormatter,
                    epilog="Start with `tessera demo`, or `tessera hub init --data DIR`.")
    areas = parser.add_subparsers(dest="area", metavar="COMMAND", parser_class=Parser, required=True)
    demo.register(areas)
    hub_commands.register(areas)
    gate_commands.register(areas)
    edge_commands.register(areas)
    report_command.register(areas)  # tessera report (S14)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
