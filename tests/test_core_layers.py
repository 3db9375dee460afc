"""The rooms inside core keep their order (DESIGN §1): base <- catalog <- cards <- printing,
sync <- sales. A room imports only rooms below it (printing and sync are side by side and
do not import each other); `core/migrations` holds the schema that `base.storage` applies.
Every import counts, those inside functions too (read with `ast`, as tests/test_layout.py)."""

from __future__ import annotations

from tests.test_layout import MODULES, imports_of, own_module

RANK = {"base": 0, "migrations": 0, "catalog": 1, "cards": 2, "printing": 3, "sync": 3, "sales": 4,
        "subscriptions": 5, "payments": 6, "reports": 5}  # payments: a subscription's Storno is a line cancellation
# (importing room, imported room) allowed beside the order
ALLOWED = {("base", "migrations")}  # storage applies the migrations and the generated feed triggers


def room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "core" and len(parts) > 2 else None


def test_core_rooms_import_only_rooms_below_them():
    broken = []
    for name, path in MODULES.items():
        mine = room(name)
        if mine is None:
            continue
        assert mine in RANK, f"{name}: core/{mine}/ is a room DESIGN does not name; give it a rank here"
        for imported, line, _ in imports_of(path):
            target = own_module(imported)
            theirs = room(target) if target else None
            if theirs is None or theirs == mine or (mine, theirs) in ALLOWED:
                continue
            if RANK[theirs] >= RANK[mine]:
                broken.append(f"{path.relative_to(path.parents[len(name.split('.')) - 1])}:{line}: "
                              f"core/{mine} imports core/{theirs} ({target})")
    assert not broken, "imports against the order of core's rooms:\n" + "\n".join(broken)
