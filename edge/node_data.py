"""An edge node's data folder: `node.sqlite` (its replica), `node.key` (its signing key,
mode 0600) and, for a gate, `gate.toml` (its rules). See `hub/services/provisioning.py` for how a
folder is set up.
"""

from __future__ import annotations

import sqlite3
import tomllib
from pathlib import Path

import msgspec

from core.base.node import NODE_DB
from core.base.storage import connect
from core.cards.access import GateRules

GATE_CONFIG = "gate.toml"
HUB_DB = "hub.sqlite"
HUB_SETTINGS = "hub.toml"  # hub.settings.SETTINGS_FILE (edges do not import the hub)


class NotANode(Exception):
    pass


def open_data(data_dir: Path) -> sqlite3.Connection:
    """The database of a hub, cash desk, counter or gate folder (whichever it is; a hub's may be
    the PostgreSQL database its hub.toml names)."""
    data_dir = Path(data_dir)
    for name in (NODE_DB, HUB_DB):
        if (data_dir / name).exists():
            return connect(data_dir / name, edge=name == NODE_DB)
    url = _hub_database_url(data_dir)
    if url:
        from core.base import pg  # psycopg: only for a hub folder whose data is in PostgreSQL

        return pg.connect(url, data_dir=data_dir, migrate=False)
    raise NotANode(f"{data_dir} is not a Tessera data folder (no {NODE_DB} or {HUB_DB})")


def _hub_database_url(data_dir: Path) -> str | None:
    """The PostgreSQL database a hub folder's hub.toml names (`[storage] database`), if any."""
    path = data_dir / HUB_SETTINGS
    if not path.is_file():
        return None
    url = tomllib.loads(path.read_text(encoding="utf-8")).get("storage", {}).get("database")
    return url if isinstance(url, str) and url.startswith(("postgresql://", "postgres://")) else None


def gate_rules(data_dir: Path) -> GateRules:
    path = Path(data_dir) / GATE_CONFIG
    if not path.exists():
        return GateRules()
    try:
        return msgspec.convert(tomllib.loads(path.read_text()), GateRules)
    except (tomllib.TOMLDecodeError, msgspec.ValidationError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None


def write_gate_rules(data_dir: Path, rules: GateRules) -> None:
    lines = ["# Gate rules, read when the gate starts. venue_id: where this gate stands;",
             "# lockout_minutes: no second entry at this venue within that time (any gate);",
             "# exit_scans: an exit scan ends the lockout; direction: in (entry) or out (exit).",
             "# entry_before_minutes / entry_after_minutes: season passes and single tickets enter once",
             "# per performance, from this long before its start to this long after it.",
             f'venue_id = "{rules.venue_id}"', f"lockout_minutes = {rules.lockout_minutes}",
             f"exit_scans = {'true' if rules.exit_scans else 'false'}", f'direction = "{rules.direction}"',
             f"entry_before_minutes = {rules.entry_before_minutes}",
             f"entry_after_minutes = {rules.entry_after_minutes}"]
    (Path(data_dir) / GATE_CONFIG).write_text("\n".join(lines) + "\n")
