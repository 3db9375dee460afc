"""The import contract of the layout (one room per concern), read from the source with `ast`.

Every import counts, also those inside functions; imports under `if TYPE_CHECKING:` count for
the rules between rooms but not for cycles (they never run, so they cannot make an import
cycle at run time). Rules:

- core imports no aiohttp, hub, edge or devices;
- devices import nothing of ours but devices and core.base;
- hub imports no edge, edge imports no hub;
- no import cycles between the modules of core, hub, edge, devices, cli and bench;
- every folder of Python modules in core, hub, edge and devices is a package (`__init__.py`).

A known exception is listed below with why it is there; one that no longer happens is reported
as a warning (remove it then, so the list stays true).
"""

from __future__ import annotations

import ast
import warnings
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROOMS = ("core", "hub", "edge", "devices")
GRAPH_PACKAGES = (*ROOMS, "cli", "bench")

# (importing module, imported module): allowed although it breaks a rule between rooms.
KNOWN_RULE_EXCEPTIONS: set[tuple[str, str]] = set()

# Import cycles that exist on purpose, as the set of modules in them, e.g.
# frozenset({"core.printing.print_queue", "core.sales.orders"}) (the cycle there was, through an
# import inside print_queue.mark_printed, until card fulfilment got its own module).
KNOWN_CYCLES: set[frozenset[str]] = set()


def python_files(packages) -> list[Path]:
    return sorted(p for pkg in packages for p in (ROOT / pkg).rglob("*.py") if "__pycache__" not in p.parts)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in python_files(GRAPH_PACKAGES)}


def imports_of(path: Path) -> list[tuple[str, int, bool]]:
    """(imported module, line, only for type checking) for every import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    type_only = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only.update(id(sub) for stmt in node.body for sub in ast.walk(stmt))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno, id(node) in type_only) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.append((full if full in MODULES else base, node.lineno, id(node) in type_only))
    return found


def own_module(imported: str) -> str | None:
    """The module of ours an import loads (the longest known prefix), or None."""
    while imported and imported not in MODULES:
        imported = imported.rpartition(".")[0]
    return imported or None


def in_room(module: str, room: str) -> bool:
    return module == room or module.startswith(room + ".")


def forbidden(importer: str, imported: str) -> str | None:
    if in_room(importer, "core"):
        for other in ("aiohttp", "hub", "edge", "devices"):
            if in_room(imported, other):
                return f"core imports {other}"
    if in_room(importer, "devices"):
        top = imported.split(".")[0]
        if top in GRAPH_PACKAGES and not (in_room(imported, "devices") or in_room(imported, "core.base")):
            return "devices import only devices and core.base"
    if in_room(importer, "hub") and in_room(imported, "edge"):
        return "hub imports edge"
    if in_room(importer, "edge") and in_room(imported, "hub"):
        return "edge imports hub"
    return None


def test_imports_between_rooms():
    broken, seen = [], set()
    for path in python_files(ROOMS):
        importer = module_name(path)
        for imported, line, _ in imports_of(path):
            rule = forbidden(importer, imported)
            if rule is None:
                continue
            key = (importer, own_module(imported) or imported)
            seen.add(key)
            if key not in KNOWN_RULE_EXCEPTIONS:
                broken.append(f"{path.relative_to(ROOT)}:{line}: {importer} imports {imported} ({rule})")
    assert not broken, "imports that break the layout:\n" + "\n".join(broken)
    stale = KNOWN_RULE_EXCEPTIONS - seen
    if stale:
        warnings.warn(f"known exceptions that no longer happen, remove them from KNOWN_RULE_EXCEPTIONS: {stale}",
                      stacklevel=1)


def import_graph() -> tuple[dict[str, set[str]], dict[tuple[str, str], str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    where: dict[tuple[str, str], str] = {}
    for name, path in MODULES.items():
        for imported, line, type_only in imports_of(path):
            target = own_module(imported)
            if type_only or target is None or target == name:
                continue
            graph[name].add(target)
            where.setdefault((name, target), f"{path.relative_to(ROOT)}:{line}")
    return graph, where


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, without recursion."""
    index, low, on_stack, stack, result = {}, {}, set(), [], []
    counter = 0
    for start in sorted(MODULES):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        result.append(component)
    return result


def cycle_path(graph: dict[str, set[str]], component: set[str], where) -> str:
    """One cycle through the component, as `a -> b -> a` with the import line of each step."""
    start = min(component)
    previous = {start: None}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for child in sorted(graph.get(node, ())):
            if child == start:
                path = [node]
                while previous[path[-1]] is not None:
                    path.append(previous[path[-1]])
                path.reverse()
                path.append(start)
                return " -> ".join(path) + "  (" + ", ".join(
                    where[(a, b)] for a, b in zip(path, path[1:], strict=False)) + ")"
            if child in component and child not in previous:
                previous[child] = node
                queue.append(child)
    return " <-> ".join(sorted(component))


def test_no_import_cycles():
    graph, where = import_graph()
    components = strongly_connected(graph)
    unknown = [cycle_path(graph, c, where) for c in components if frozenset(c) not in KNOWN_CYCLES]
    assert not unknown, "import cycles:\n" + "\n".join(unknown)
    stale = KNOWN_CYCLES - {frozenset(c) for c in components}
    if stale:
        warnings.warn(f"known cycles that are gone, remove them from KNOWN_CYCLES: {stale}", stacklevel=1)


def test_every_folder_of_modules_is_a_package():
    missing = []
    for room in ROOMS:
        for folder in [ROOT / room, *(p for p in (ROOT / room).rglob("*") if p.is_dir())]:
            if "__pycache__" in folder.parts:
                continue
            holds_code = any(folder.glob("*.py")) or any(
                child.is_dir() and any(child.rglob("*.py")) for child in folder.iterdir())
            if holds_code and not (folder / "__init__.py").exists():
                missing.append(str(folder.relative_to(ROOT)))
    assert not missing, f"folders of modules without __init__.py: {missing}"


def test_the_checks_see_the_code():
    """Guards the guards: the graph covers every room, and a known cycle shows as one."""
    assert all(any(in_room(m, room) for m in MODULES) for room in ROOMS)
    assert forbidden("core.x", "aiohttp.web") and forbidden("devices.x", "core.cards.keys")
    assert not forbidden("devices.x", "core.base.tomlfiles") and not forbidden("hub.x", "core.sales.orders")
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}}
    where = {("a", "b"): "a.py:1", ("b", "c"): "b.py:2", ("c", "a"): "c.py:3"}
    assert cycle_path(graph, {"a", "b", "c"}, where) == "a -> b -> c -> a  (a.py:1, b.py:2, c.py:3)"
