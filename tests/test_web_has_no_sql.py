"""No SQL in a web module (DESIGN §1): hub/web translates HTTP to service calls; every
statement lives in a service (hub/services) or in core, under a name that says what it holds.

Read from the source with `ast`: any call of `.execute(`, `.executemany(` or
`.executescript(` in hub/web counts, whatever object it is called on. A known exception is
listed below with why it is there; one that no longer happens is reported as a warning
(remove it then, so the list stays true).
"""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "hub" / "web"
SQL_CALLS = {"execute", "executemany", "executescript"}

# path (relative to the repository) -> why it still runs SQL itself
KNOWN_EXCEPTIONS: dict[str, str] = {}


def sql_calls(path: Path) -> list[tuple[int, str]]:
    """(line, method) of every .execute/.executemany/.executescript call in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return sorted((node.lineno, node.func.attr) for node in ast.walk(tree)
                  if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr in SQL_CALLS)


def test_no_web_module_runs_sql():
    files = sorted(p for p in WEB.rglob("*.py") if "__pycache__" not in p.parts)
    assert files, f"no Python files under {WEB}"
    found, excused = [], set()
    for path in files:
        relative = path.relative_to(ROOT).as_posix()
        calls = sql_calls(path)
        if calls and relative in KNOWN_EXCEPTIONS:
            excused.add(relative)
            continue
        found += [f"{relative}:{line}: .{method}(" for line, method in calls]
    assert not found, ("SQL in a web module; move it into a service (hub/services) or core and call that:\n"
                       + "\n".join(found))
    for stale in sorted(set(KNOWN_EXCEPTIONS) - excused):
        warnings.warn(f"{stale} runs no SQL any more: remove it from KNOWN_EXCEPTIONS", stacklevel=1)
