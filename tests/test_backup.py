"""The hub's disk dies (issue 11): synchronous=FULL, encrypted online backups, restores, and
edges that push again what a restored hub lost.

Real parts throughout: the hub is the real aiohttp app on a loopback test server over its
own data folder, desks are real enrolled folders driven by the real sync client, backups
are real files encrypted with Argon2id and SecretBox (a cheap Argon2id cost here, so the
tests stay quick; the CLI test uses the default cost)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import nacl.pwhash
import pytest

from cli.main import main as cli_main
from core.base.clock import utcnow
from core.base.node import NODE_DB
from core.base.storage import connect
from core.cards import cards, keys
from core.sales import contingents
from core.sales.tickets import SaleIn, sell
from edge.sync import enroll as enrolling
from edge.sync.client import SyncClient, status
from hub.app import DB_NAME, make_app, read_settings
from hub.services import backup
from hub.settings import DEFAULT_CONNECTIONS, STORAGE, SettingsError
from hub.sync import enrollment

pytestmark = pytest.mark.sqlite_only("a SQLite hub's file, its synchronous setting and backup (a PostgreSQL hub's "
                                     "backup is refused: test_postgresql_hub)")
FAST = backup.Kdf(opslimit=nacl.pwhash.argon2id.OPSLIMIT_MIN, memlimit=nacl.pwhash.argon2id.MEMLIMIT_MIN)
PASS = "correct horse battery staple"


# -- synchronous=FULL -------------------------------------------------------------------------------

def test_the_hub_commits_with_synchronous_full_unless_hub_toml_chooses_normal(empty_hub):
    make_app(empty_hub.db)
    assert empty_hub.db.execute("PRAGMA synchronous").fetchone()["synchronous"] == 2  # FULL
    (empty_hub.dir / "hub.toml").write_text('[storage]\nsynchronous = "normal"\n')
    make_app(empty_hub.db)
    assert empty_hub.db.execute("PRAGMA synchronous").fetchone()["synchronous"] == 1  # NORMAL
    (empty_hub.dir / "hub.toml").write_text('[storage]\nsynchronous = "off"\n')
    with pytest.raises(SettingsError, match="storage.synchronous"):
        make_app(empty_hub.db)
    (empty_hub.dir / "hub.toml").write_text('[storage]\nfsync = true\n')
    with pytest.raises(SettingsError, match="storage.fsync"):
        make_app(empty_hub.db)


def test_storage_connections_must_be_a_sane_whole_number(empty_hub):
    """[storage] connections (a PostgreSQL hub process's pooled sessions and executor threads):
    a bad value stops the hub at start with a message naming the key."""
    for bad in ("0", "1", "65", '"8"', "true", "4.5"):
        (empty_hub.dir / "hub.toml").write_text(f"[storage]\nconnections = {bad}\n")
        with pytest.raises(SettingsError, match="storage.connections must be a whole number from 2 to 64"):
            make_app(empty_hub.db)
    (empty_hub.dir / "hub.toml").write_text("[storage]\nconnections = 12\n")
    assert read_settings(empty_hub.dir).get(STORAGE).connections == 12
    (empty_hub.dir / "hub.toml").unlink()
    assert read_settings(empty_hub.dir).get(STORAGE).connections == DEFAULT_CONNECTIONS


# -- backup files ----------------------------------------------------------------------------------

def make_backup(hub, tmp_path: Path, name: str = "hub.tbk") -> tuple[Path, backup.Manifest]:
    out = tmp_path / "backups" / name
    return out, backup.backup(hub.dir, hub.dir / DB_NAME, out, PASS, kdf=FAST)


def test_a_backup_restores_the_database_and_the_keys_as_a_new_life_of_the_hub(sample_hub, tmp_path):
    (sample_hub.dir / "hub.toml").write_text('[storage]\nsynchronous = "full"\n')
    out, manifest = make_backup(sample_hub, tmp_path)
    assert out.read_bytes()[:8] == backup.MAGIC
    assert b"SQLite format 3" not in out.read_bytes() and b"PRIVATE KEY" not in out.read_bytes()
    assert {f["name"] for f in manifest.files} == {DB_NAME, "root.key", "node.key", "hub.toml"}

    restored = tmp_path / "restored"
    again = backup.restore(out, restored, PASS)
    assert again.created_at == manifest.created_at
    for name in ("root.key", "node.key", "hub.toml"):
        assert (restored / name).read_bytes() == (sample_hub.dir / name).read_bytes()
        assert (restored / name).stat().st_mode & 0o777 == 0o600
    assert keys.read_private(restored / "root.key")
    db = connect(restored / DB_NAME)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()["integrity_check"] == "ok"
        for table in ("customers", "performances", "seats", "node_certs", "changes"):
            assert count(db, table) == count(sample_hub.db, table), table
        assert backup.epoch(db) != backup.epoch(sample_hub.db)  # a new life: edges will notice
        assert db.execute("SELECT restored_from FROM hub_epoch").fetchone()["restored_from"] == manifest.created_at
    finally:
        db.close()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".restored")]  # no staging left


def test_a_wrong_passphrase_is_refused_and_nothing_is_written(sample_hub, tmp_path):
    out, _ = make_backup(sample_hub, tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(backup.WrongPassphrase, match="wrong passphrase"):
        backup.restore(out, tmp_path / "restored", "correct horse battery stable")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("damage", ["flip a byte in the database", "truncate", "drop the last block",
                                    "append bytes", "change the header", "swap two blocks", "not a backup"])
def test_a_truncated_or_tampered_backup_is_refused_and_nothing_is_written(sample_hub, tmp_path, damage):
    out, _ = make_backup(sample_hub, tmp_path)
    data = bytearray(out.read_bytes())
    frames = frame_offsets(bytes(data))
    assert len(frames) >= 3  # header check + manifest, the database in 1 MiB blocks, the last block
    if damage == "flip a byte in the database":
        data[frames[1] + 5000] ^= 0x01
    elif damage == "truncate":
        data = data[:len(data) // 2]
    elif damage == "drop the last block":
        data = data[:frames[-1]]
    elif damage == "append bytes":
        data += b"\x00\x00\x00\x10" + os.urandom(16)
    elif damage == "change the header":
        data[backup._HEADER.size - 1] ^= 0x01  # the chunk size: not part of the key, but of the first block
    elif damage == "swap two blocks":
        first, second = frames[1], frames[2]
        size = second - first
        data[first:second + size] = data[second:second + size] + data[first:second]
    elif damage == "not a backup":
        data = bytearray(b"SQLite format 3\x00" + bytes(200))
    out.write_bytes(bytes(data))
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(backup.DamagedBackup):
        backup.restore(out, tmp_path / "restored", PASS)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_restore_refuses_a_folder_that_is_not_empty(sample_hub, tmp_path):
    out, _ = make_backup(sample_hub, tmp_path)
    with pytest.raises(backup.BackupError, match="not empty"):
        backup.restore(out, sample_hub.dir, PASS)  # e.g. the live hub's own folder
    assert count(sample_hub.db, "customers") > 0
    target = tmp_path / "new"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(backup.BackupError, match="not empty"):
        backup.restore(out, target, PASS)
    assert [p.name for p in target.iterdir()] == ["notes.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    backup.restore(out, empty, PASS)  # an empty folder is fine
    assert (empty / DB_NAME).exists()


def test_a_short_passphrase_is_refused_for_a_new_backup(sample_hub, tmp_path):
    with pytest.raises(backup.BackupError, match="at least 12"):
        backup.backup(sample_hub.dir, sample_hub.dir / DB_NAME, tmp_path / "x.tbk", "hunter2", kdf=FAST)
    assert not (tmp_path / "x.tbk").exists()


# -- with edges --------------------------------------------------------------------------------------

class HubServer:
    """The hub app over a data folder on a loopback test server; stoppable, like a dying machine."""

    def __init__(self, folder: Path, db: sqlite3.Connection, server) -> None:
        self.dir, self.db, self.server = folder, db, server
        self.url = str(server.make_url("")).rstrip("/")

    @classmethod
    async def start(cls, folder: Path, aiohttp_server, db: sqlite3.Connection | None = None) -> HubServer:
        db = db or connect(folder / DB_NAME)
        return cls(folder, db, await aiohttp_server(make_app(db)))

    async def stop(self) -> None:
        await self.server.close()
        self.db.close()


class Desk:
    def __init__(self, folder: Path, hub_url: str) -> None:
        self.folder = folder
        self.db = connect(folder / NODE_DB, edge=True)
        self.node = self.db.execute("SELECT * FROM node").fetchone()
        self.client = SyncClient(self.db, folder, hub_url=hub_url)
        self.sales: list[str] = []

    @classmethod
    async def enroll(cls, hub: HubServer, tmp_path: Path, name: str) -> Desk:
        code = enrollment.create_code(hub.db, name=name, role="cashdesk", venue_ids=[], now=utcnow())
        folder = tmp_path / name.replace(" ", "-")
        await enrolling.enroll(folder, code, [hub.url])
        return cls(folder, hub.url)

    def sell(self, performance: str, seats: list[str]) -> None:
        sale = sell(self.db, self.node, SaleIn(performance_id=performance, seat_ids=seats, payment_method="cash"),
                    pool=contingents.node_pool(self.node["id"]), channel="cashdesk", now=utcnow())
        self.sales.append(sale["id"])

    async def reconnect(self, hub: HubServer) -> None:
        await self.client.close()
        self.client = SyncClient(self.db, self.folder, hub_url=hub.url)

    async def close(self) -> None:
        await self.client.close()
        self.db.close()


async def test_after_a_restore_from_an_older_backup_every_sale_is_at_the_hub_exactly_once(
        sample_hub, tmp_path, aiohttp_server):
    """The issue's test: back up, sell at two desks, restore the old snapshot, sync, and count."""
    hub = await HubServer.start(sample_hub.dir, aiohttp_server, sample_hub.db)
    desks = [await Desk.enroll(hub, tmp_path, name) for name in ("Kasse 1", "Kasse 2")]
    one, two = desks
    performance = sample_hub.ids["performances"][0]
    seats = list(contingents.seats_of(hub.db, performance))[:60]
    mine = {one: seats[:20], two: seats[20:40]}
    for desk in desks:
        move(hub, performance, mine[desk], desk)
    cards_before = count(hub.db, "cards")
    try:
        for desk in desks:
            await desk.client.round()
            for seat in mine[desk][:3]:  # sold and synced before the backup
                desk.sell(performance, [seat])
            await desk.client.round()
        out, manifest = make_backup(sample_hub, tmp_path)
        assert manifest.checkpoints == {d.node["id"]: max_seq(d.db) for d in desks}
        move(hub, performance, seats[40:46], one)  # office work after the backup: lost with the disk
        for desk in desks:
            for seat in mine[desk][3:8]:  # sold and synced after the backup: the restored hub lacks them
                desk.sell(performance, [seat])
            await desk.client.round()
            # the answer told the desk what the backup holds: the ops in it are forgotten, later ones kept
            durable = desk.db.execute("SELECT durable_seq FROM sync_state").fetchone()["durable_seq"]
            assert durable == manifest.checkpoints[desk.node["id"]] > 0
            assert min_seq(desk.db) == durable + 1 and status(desk.db)["ops_kept"] == max_seq(desk.db) - durable
        signer = cards.load_signer(one.db, one.folder)  # a card sold after the backup...
        card = cards.issue_card(one.db, signer, product_id=sample_hub.ids["annual_products"][0], kind="annual",
                                now=utcnow(), holder_name="Nach dem Backup")
        await one.client.round()
        assert tickets_at(hub, performance) == 16 and count(hub.db, "cards") == cards_before + 1
        cursor_before = two.db.execute("SELECT cursor FROM sync_state").fetchone()["cursor"]
        await hub.stop()  # the disk dies
        one.sell(performance, [mine[one][8]])  # sold while the hub is down: not pushed yet
        cards.revoke_card(one.db, signer, card["id"], "lost", utcnow())  # ...revoked while it is down: this
        # op must not reach the restored hub before the card's issue is pushed again (a conflict otherwise)

        backup.restore(out, tmp_path / "hub-restored", PASS)
        hub = await HubServer.start(tmp_path / "hub-restored", aiohttp_server)
        assert tickets_at(hub, performance) == 6 and count(hub.db, "cards") == cards_before  # what the backup held
        # the office works on the restored hub before the desks are back: its changes are numbered
        # anew, below the cursor desk 2 had, and must reach desk 2 all the same
        move(hub, performance, seats[46:52], two)
        assert hub.db.execute("SELECT max(seq) AS s FROM changes").fetchone()["s"] <= cursor_before

        for desk in desks:
            await desk.reconnect(hub)
            await desk.client.round()
        two.sell(performance, [seats[46]])  # a seat desk 2 has only from the restored hub's feed
        await two.client.round()

        # every sale exactly once at the hub, nothing lost, nothing doubled
        sold = [s for d in desks for s in d.sales]
        assert len(sold) == 18
        at_hub = [r["id"] for r in hub.db.execute(
            f"SELECT id FROM orders WHERE id IN ({','.join('?' * len(sold))})", sold)]
        assert sorted(at_hub) == sorted(sold)
        per_seat = hub.db.execute("SELECT seat_id, count(*) AS n FROM tickets WHERE performance_id = ? "
                                  "GROUP BY seat_id", (performance,)).fetchall()
        assert len(per_seat) == 18 and {t["n"] for t in per_seat} == {1}
        assert count(hub.db, "conflicts") == 0
        revoked = hub.db.execute("SELECT holder_name, revoked_at FROM cards WHERE id = ?", (card["id"],)).fetchone()
        assert revoked["holder_name"] == "Nach dem Backup" and revoked["revoked_at"] is not None
        assert count(hub.db, "cards") == cards_before + 1
        for desk in desks:
            # the op log converged: each desk's ops 1..its last, once each, all applied
            logged = hub.db.execute("SELECT node_seq, status FROM sync_ops WHERE node_id = ? ORDER BY node_seq",
                                    (desk.node["id"],)).fetchall()
            assert [r["node_seq"] for r in logged] == list(range(1, max_seq(desk.db) + 1))
            assert {r["status"] for r in logged} == {"applied"}
            st = status(desk.db)
            assert st["ops_waiting"] == 0 and st["conflicts"] == 0
            assert st["cursor"] == hub.db.execute("SELECT max(seq) AS s FROM changes").fetchone()["s"]
    finally:
        for desk in desks:
            await desk.close()
        await hub.stop()


async def test_restoring_an_older_backup_than_the_newest_is_reported_by_the_edge(
        sample_hub, tmp_path, aiohttp_server, caplog):
    """Edges forget what the newest backup holds; restoring an older one loses those ops, and
    the edge says so instead of going on silently."""
    hub = await HubServer.start(sample_hub.dir, aiohttp_server, sample_hub.db)
    desk = await Desk.enroll(hub, tmp_path, "Kasse 1")
    performance = sample_hub.ids["performances"][0]
    seats = list(contingents.seats_of(hub.db, performance))[:10]
    move(hub, performance, seats, desk)
    try:
        await desk.client.round()
        desk.sell(performance, [seats[0]])
        await desk.client.round()
        older, _ = make_backup(sample_hub, tmp_path, "older.tbk")
        for seat in seats[1:4]:
            desk.sell(performance, [seat])
        await desk.client.round()
        make_backup(sample_hub, tmp_path, "newer.tbk")
        desk.sell(performance, [seats[4]])
        await desk.client.round()  # the answer says the newer backup holds the three: forgotten here
        assert min_seq(desk.db) == max_seq(desk.db)
        await hub.stop()
        backup.restore(older, tmp_path / "hub-restored", PASS)
        hub = await HubServer.start(tmp_path / "hub-restored", aiohttp_server)
        await desk.reconnect(hub)
        with caplog.at_level("ERROR", logger="tessera.sync"):
            await desk.client.round()
        assert "3 ops of this node" in caplog.text and "restore the newest backup" in caplog.text
        assert tickets_at(hub, performance) == 2  # the first sale and the kept last one
    finally:
        await desk.close()
        await hub.stop()


async def test_a_backup_taken_while_pushes_arrive_is_consistent(sample_hub, tmp_path, aiohttp_server):
    hub = await HubServer.start(sample_hub.dir, aiohttp_server, sample_hub.db)
    desk = await Desk.enroll(hub, tmp_path, "Kasse 1")
    performance = sample_hub.ids["performances"][0]
    seats = list(contingents.seats_of(hub.db, performance))[:120]
    contingents.move_seats(hub.db, performance, seats, contingents.node_pool(desk.node["id"]), utcnow())
    try:
        await desk.client.round()

        async def keep_selling() -> None:
            for seat in seats:
                desk.sell(performance, [seat])
                await desk.client.push()

        seller = asyncio.create_task(keep_selling())
        outs = []
        while not seller.done():  # backups in a thread while the desk's pushes commit on the hub
            out = tmp_path / f"during-{len(outs)}.tbk"
            await asyncio.to_thread(backup.backup, sample_hub.dir, sample_hub.dir / DB_NAME, out, PASS, kdf=FAST)
            outs.append(out)
        await seller
        assert len(outs) >= 2
        marks = []
        for i, out in enumerate(outs):
            folder = tmp_path / f"restored-{i}"
            manifest = backup.restore(out, folder, PASS)
            db = connect(folder / DB_NAME)
            try:
                assert db.execute("PRAGMA integrity_check").fetchone()["integrity_check"] == "ok"
                mark = manifest.checkpoints.get(desk.node["id"], 0)
                logged = [r["node_seq"] for r in db.execute("SELECT node_seq FROM sync_ops WHERE node_id = ? "
                                                            "ORDER BY node_seq", (desk.node["id"],))]
                assert logged == list(range(1, mark + 1))  # whole pushes only
                # every sale the op log says was applied is there with its ticket, and nothing more
                sold = db.execute("SELECT count(*) AS n FROM tickets WHERE performance_id = ?",
                                  (performance,)).fetchone()["n"]
                assert sold == mark
                marks.append(mark)
            finally:
                db.close()
        assert marks == sorted(marks) and marks[-1] <= len(seats)
        # the live hub knows the last backup's checkpoint, and tells the desk
        await desk.client.round()
        assert desk.db.execute("SELECT durable_seq FROM sync_state").fetchone()["durable_seq"] == marks[-1]
    finally:
        await desk.close()
        await hub.stop()


@pytest.mark.slow  # two Argon2id derivations at the default cost (256 MiB, about a second each)
def test_the_cli_backs_up_and_restores_with_a_passphrase_from_the_environment(sample_hub, tmp_path, capsys,
                                                                            monkeypatch):
    monkeypatch.setenv("HUB_BACKUP_PASS", PASS)
    out = tmp_path / "cron" / "hub.tbk"
    assert cli_main(["hub", "backup", "--data", str(sample_hub.dir), "--out", str(out),
                     "--passphrase-env", "HUB_BACKUP_PASS"]) == 0
    assert "backup written" in capsys.readouterr().out
    secret = tmp_path / "pass.txt"
    secret.write_text(PASS + "\n")
    secret.chmod(0o644)
    assert cli_main(["hub", "restore", "--data", str(tmp_path / "new"), "--from", str(out),
                     "--passphrase-file", str(secret)]) == 1
    assert "chmod 600" in capsys.readouterr().err and not (tmp_path / "new").exists()
    secret.chmod(0o600)
    assert cli_main(["hub", "restore", "--data", str(tmp_path / "new"), "--from", str(out),
                     "--passphrase-file", str(secret)]) == 0
    assert (tmp_path / "new" / DB_NAME).exists()
    monkeypatch.setenv("HUB_BACKUP_PASS", "not the passphrase at all")
    assert cli_main(["hub", "restore", "--data", str(tmp_path / "other"), "--from", str(out),
                     "--passphrase-env", "HUB_BACKUP_PASS"]) == 1
    assert "wrong passphrase" in capsys.readouterr().err and not (tmp_path / "other").exists()


def test_the_cli_help_explains_backup_and_restore(capsys):
    for command, words in (("backup", ("consistent snapshot", "--passphrase-env", "NEWEST")),
                           ("restore", ("new epoch", "truncated", "NEWDIR"))):
        with pytest.raises(SystemExit):
            cli_main(["hub", command, "--help"])
        text = capsys.readouterr().out
        for word in words:
            assert word in text, (command, word)


# -- helpers -----------------------------------------------------------------------------------------

def count(db: sqlite3.Connection, table: str) -> int:
    return db.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"]


def max_seq(db: sqlite3.Connection) -> int:
    return db.execute("SELECT max(node_seq) AS s FROM outbox").fetchone()["s"]


def min_seq(db: sqlite3.Connection) -> int:
    return db.execute("SELECT min(node_seq) AS s FROM outbox").fetchone()["s"]


def move(hub, performance: str, seats: list[str], desk: Desk) -> None:
    contingents.move_seats(hub.db, performance, seats, contingents.node_pool(desk.node["id"]), utcnow())


def tickets_at(hub, performance: str) -> int:
    return hub.db.execute("SELECT count(*) AS n FROM tickets WHERE performance_id = ?",
                          (performance,)).fetchone()["n"]


def frame_offsets(data: bytes) -> list[int]:
    """Where each encrypted block of a backup file starts (after the header)."""
    offsets, at = [], backup._HEADER.size
    while at < len(data):
        offsets.append(at)
        at += 4 + int.from_bytes(data[at:at + 4], "big")
    return offsets
