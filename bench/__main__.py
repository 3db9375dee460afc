"""`python -m bench` runs every benchmark; `python -m bench NAME [NAME...]` the named ones."""

from __future__ import annotations

import sys
from types import ModuleType

from bench import api, cardpdf, cashdesk, claims, gate, money, postgresql, presale, reports, rollover, seating, sync
from bench import rush as rush_
from bench.procs import BenchError

BENCHMARKS: dict[str, ModuleType] = {"api": api, "gate": gate, "sync": sync, "cardpdf": cardpdf,
                                   "cashdesk": cashdesk, "seating": seating, "presale": presale,
                                   "claims": claims, "money": money, "reports": reports, "rollover": rollover,
                                   "postgresql": postgresql, "rush": rush_}
USAGE = f"usage: python -m bench [NAME...]   names: {', '.join(BENCHMARKS)}"


def main(argv: list[str]) -> int:
    """Run the chosen benchmarks in order; an expected failure is one line on stderr, not a traceback."""
    if any(arg in ("-h", "--help") for arg in argv):
        print(USAGE)
        return 0
    names = argv or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(f"bench: error: unknown benchmark {', '.join(unknown)}; choose from: {', '.join(BENCHMARKS)}",
              file=sys.stderr)
        return 2
    failed = False
    for name in names:
        try:
            BENCHMARKS[name].run()
        except BenchError as exc:
            print(f"bench {name}: error: {exc}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
