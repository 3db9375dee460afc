"""Hub backups and restores (issue 11, "the hub's disk dies"; docs/sync.md "Backups and restore").

`backup()` takes a consistent snapshot of the live database with SQLite's backup API (one
read transaction: the hub goes on serving and committing meanwhile), adds the key material of
the data folder (root key, the hub's node key, other key and certificate files, hub.toml) and
writes them as one file encrypted under a passphrase: Argon2id (libsodium, PyNaCl) turns the
passphrase into a key, and the archive is a chain of SecretBox frames (XSalsa20-Poly1305) whose
nonces count up from a random prefix, the last frame marked as last. So a frame cannot be
changed, dropped, moved or appended without the restore noticing, and a cut-off file is refused.

Only after the archive is complete on disk does the live hub record what it holds: per node,
the highest `node_seq` of that node's ops in the snapshot (`backup_checkpoints`). Sync answers
carry it to the node as `durable_through`; a node forgets acknowledged ops only up to there.

`restore()` decrypts into a hidden folder beside the new data folder, checks every frame and the
database's integrity, gives the hub a new random epoch and only then renames the folder into
place: a wrong passphrase, a damaged file or a non-empty target leave nothing behind. Edges
that see the new epoch push again every op they still keep and pull from the start.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import secrets
import shutil
import sqlite3
import struct
import tempfile
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.utils

from core.base.clock import iso, utcnow
from core.base.errors import TesseraError
from core.base.files import fsync_dir
from core.base.storage import connect, transaction
from core.cards import keys
from hub import settings
from hub.services import nodes

MAGIC = b"TSRHUBBK"
FORMAT = 1
# magic, format, Argon2id opslimit and memlimit, salt, nonce prefix, plaintext bytes per frame
_HEADER = struct.Struct(">8sHIQ16s16sI")
_LENGTH = struct.Struct(">I")
_MORE, _LAST = b"\x00", b"\x01"
CHUNK = 1 << 20
MAX_CHUNK = 16 << 20  # a header asking for more is not ours
MIN_PASSPHRASE = 12
SETTINGS_FILE = "hub.toml"
# files of the data folder that go into a backup besides the database: the keys (required) and
# whatever else holds key material or settings (TLS keys and certificates, hub.toml)
REQUIRED_FILES = (keys.ROOT_KEY_FILE, keys.NODE_KEY_FILE)
EXTRA_SUFFIXES = (".key", ".pem", ".crt")
# a hub key rotation cut short after its commit leaves the new key here; the restored hub's
# start finishes the rotation with it (hub/services/nodes.py finish_hub_rotation)
PENDING_KEY_FILE = keys.NODE_KEY_FILE + ".new"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,100}$")

Progress = Callable[[str, int, int], None]  # (stage, bytes done, bytes in all)


@dataclass(frozen=True)
class Kdf:
    """Argon2id cost. The default is libsodium's "moderate" (about a second and 256 MiB): a
    backup travels off site, so its passphrase must hold against an offline search."""

    opslimit: int = nacl.pwhash.argon2id.OPSLIMIT_MODERATE
    memlimit: int = nacl.pwhash.argon2id.MEMLIMIT_MODERATE


# what a restore accepts from a header before it spends memory on it
_MAX_OPS, _MAX_MEM = 20, 2 << 30


class BackupError(TesseraError):
    slug = "backup-refused"
    status = 409
    title = "Backup or restore refused"


class WrongPassphrase(BackupError):
    slug = "wrong-passphrase"


class DamagedBackup(BackupError):
    slug = "damaged-backup"


class _Undecryptable(DamagedBackup):
    """A frame that does not decrypt: a changed file, or (the first frame) a wrong passphrase."""


@dataclass
class Manifest:
    """What a backup holds (the first frame of the archive)."""

    created_at: str
    hub_node_id: str
    epoch: str
    checkpoints: dict[str, int]  # node id -> highest node_seq of its ops in the snapshot
    files: list[dict] = field(default_factory=list)  # {"name", "size"}, in archive order
    db_name: str = "hub.sqlite"
    format: int = FORMAT

    def to_json(self) -> bytes:
        return json.dumps(self.__dict__, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        try:
            raw = json.loads(data)
            manifest = cls(**{k: raw[k] for k in ("created_at", "hub_node_id", "epoch", "checkpoints", "files",
                                                  "db_name", "format")})
        except (ValueError, KeyError, TypeError):
            raise DamagedBackup("the backup's table of contents is unreadable") from None
        names = [f.get("name") for f in manifest.files if isinstance(f, dict)]
        if (len(names) != len(manifest.files) or len(set(names)) != len(names)
                or not all(isinstance(n, str) and _NAME.match(n) for n in names)
                or not all(isinstance(f.get("size"), int) and f["size"] >= 0 for f in manifest.files)
                or manifest.db_name not in names or not set(REQUIRED_FILES) <= set(names)):
            raise DamagedBackup("the backup's table of contents names files it may not hold")
        return manifest


# -- the hub's epoch and checkpoints, for sync answers -------------------------------------------------

def epoch(db: sqlite3.Connection) -> str:
    """This hub's epoch: random, new at every restore (migration 0014 gives every SQLite
    database one). A PostgreSQL schema is made from the migrations' tables, not their rows, so
    there `hub init` makes it (hub.app), or for a database made before that, the first caller
    (`ON CONFLICT`: one epoch however many hub processes ask)."""
    row = db.execute("SELECT epoch FROM hub_epoch WHERE id = 1").fetchone()
    if row is None:
        with transaction(db):
            db.execute("INSERT INTO hub_epoch (id, epoch, started_at) VALUES (1, ?, ?) ON CONFLICT (id) DO NOTHING",
                       (secrets.token_hex(16), iso(utcnow())))
        row = db.execute("SELECT epoch FROM hub_epoch WHERE id = 1").fetchone()
    return row["epoch"]


def durable_through(db: sqlite3.Connection, node_id: str) -> int:
    """The highest node_seq of *node_id*'s ops held by the latest completed backup (0: none)."""
    row = db.execute("SELECT node_seq FROM backup_checkpoints WHERE node_id = ?", (node_id,)).fetchone()
    return row["node_seq"] if row else 0


def _op_marks(db: sqlite3.Connection) -> dict[str, int]:
    """Per node, the highest node_seq the hub has logged: ops are applied in node_seq order, one
    transaction per push, so a node's logged ops are every op up to this one."""
    return {r["node_id"]: r["s"] for r in db.execute("SELECT node_id, max(node_seq) AS s FROM sync_ops "
                                                     "GROUP BY node_id")}


# -- backup ---------------------------------------------------------------------------------------------

def backup(data_dir: Path, db_file: Path, out: Path, passphrase: str, *, kdf: Kdf = Kdf(),
           progress: Progress | None = None) -> Manifest:
    """Write an encrypted backup of the hub in *data_dir* (database *db_file*) to *out*, replacing
    it atomically; then record its checkpoints in the live database. The hub may be serving."""
    data_dir, out = Path(data_dir), Path(out)
    refuse_postgresql(data_dir, Path(db_file))
    _data_files(data_dir)  # a clear error before the passphrase is even looked at
    secret = _secret(passphrase, new=True)
    with tempfile.TemporaryDirectory(prefix=".backup-", dir=data_dir) as scratch:
        snapshot = Path(scratch) / db_file.name
        # the database and the key files are taken together while no key rotation runs, so a
        # backup never holds a database naming one hub key beside the file of another
        with nodes.rotation_lock(data_dir):
            _snapshot(db_file, snapshot, progress)
            key_material = _copy_files(_data_files(data_dir), Path(scratch))
        manifest = _describe(snapshot, db_file.name)
        files = [(db_file.name, snapshot), *key_material]
        manifest.files = [{"name": name, "size": path.stat().st_size} for name, path in files]
        _write_archive(out, secret, kdf, manifest, files, progress)
    _record_checkpoints(db_file, manifest)
    return manifest


def refuse_postgresql(data_dir: Path, db_file: Path) -> None:
    """A hub whose data is in PostgreSQL (hub.toml `[storage] database`, no SQLite file) is not
    backed up here: this copies a SQLite file. Said clearly instead of "no such file"."""
    if db_file.exists() or not (data_dir / SETTINGS_FILE).is_file():
        return
    if settings.read(data_dir, (settings.STORAGE,)).get(settings.STORAGE).database:
        raise BackupError(f"this hub's data is in PostgreSQL (hub.toml [storage] database): back it up with "
                          f"pg_dump or the server's own backups; the keys folder is {data_dir} (copy its key files "
                          "and hub.toml with it)")


def _data_files(data_dir: Path) -> list[tuple[str, Path]]:
    missing = [name for name in REQUIRED_FILES if not (data_dir / name).is_file()]
    if missing:
        raise BackupError(f"{data_dir} holds no {' or '.join(missing)}: is it a hub data folder?")
    extra = sorted(p.name for p in data_dir.iterdir() if p.is_file() and _NAME.match(p.name)
                   and (p.suffix in EXTRA_SUFFIXES or p.name in (SETTINGS_FILE, PENDING_KEY_FILE))
                   and p.name not in REQUIRED_FILES)
    return [(name, data_dir / name) for name in (*REQUIRED_FILES, *extra)]


def _copy_files(files: list[tuple[str, Path]], scratch: Path) -> list[tuple[str, Path]]:
    """Copies of *files* in *scratch* (read while the rotation lock is held)."""
    copies = []
    for name, path in files:
        copy = scratch / f"key-{name}"
        shutil.copyfile(path, copy)
        os.chmod(copy, 0o600)
        copies.append((name, copy))
    return copies


def _secret(passphrase: str, *, new: bool) -> bytes:
    """The passphrase as Argon2id input (NFC, so the same words typed on another keyboard match)."""
    text = unicodedata.normalize("NFC", passphrase)
    if new and len(text) < MIN_PASSPHRASE:
        raise BackupError(f"the passphrase must have at least {MIN_PASSPHRASE} characters")
    return text.encode("utf-8")


def _snapshot(db_file: Path, target: Path, progress: Progress | None) -> None:
    """A consistent copy of the live database: the backup API in one step, so the copy is one
    read transaction's view (a step-wise copy restarts whenever the hub commits, and under a
    steady stream of pushes might never finish). The hub's commits go on meanwhile (WAL)."""
    if not db_file.is_file():
        raise BackupError(f"{db_file} does not exist: is this a hub data folder?")
    source, copy = sqlite3.connect(db_file), sqlite3.connect(target)
    try:
        source.execute("PRAGMA busy_timeout = 10000")
        source.backup(copy)  # pages=-1: all pages in one step
        ok = copy.execute("PRAGMA quick_check").fetchone()[0]
    finally:
        copy.close()
        source.close()
    os.chmod(target, 0o600)
    if ok != "ok":
        raise BackupError(f"the hub's database fails SQLite's check ({ok}); no backup written")
    if progress:
        size = target.stat().st_size
        progress("snapshot", size, size)


def _describe(snapshot: Path, db_name: str) -> Manifest:
    db = sqlite3.connect(snapshot)
    db.row_factory = sqlite3.Row
    try:
        node = db.execute("SELECT id, role FROM node").fetchone()
        if node is None or node["role"] != "hub":
            raise BackupError("this database is not a hub's")
        hub_epoch = db.execute("SELECT epoch FROM hub_epoch WHERE id = 1").fetchone()["epoch"]
        marks = {r["node_id"]: r["s"] for r in db.execute("SELECT node_id, max(node_seq) AS s FROM sync_ops "
                                                          "GROUP BY node_id")}
    finally:
        db.close()
    return Manifest(created_at=iso(utcnow()), hub_node_id=node["id"], epoch=hub_epoch, checkpoints=marks,
                    db_name=db_name)


def _write_archive(out: Path, secret: bytes, kdf: Kdf, manifest: Manifest, files: list[tuple[str, Path]],
                   progress: Progress | None) -> None:
    """Write the archive to a temporary file beside *out*, sync it, and rename it into place."""
    salt, prefix = nacl.utils.random(16), nacl.utils.random(16)
    header = _HEADER.pack(MAGIC, FORMAT, kdf.opslimit, kdf.memlimit, salt, prefix, CHUNK)
    box = nacl.secret.SecretBox(_derive(secret, salt, kdf.opslimit, kdf.memlimit))
    total = sum(f["size"] for f in manifest.files)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as raw:
            raw.write(header)
            sealed = _SealedWriter(raw, box, prefix)
            sealed.frame(hashlib.blake2b(header, digest_size=32).digest() + manifest.to_json(), last=False)
            done = 0
            for _name, path in files:
                with open(path, "rb") as source:
                    while block := source.read(CHUNK):
                        sealed.write(block)
                        done += len(block)
                        if progress:
                            progress("encrypt", done, total)
            sealed.close()
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, out)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    fsync_dir(out.parent)


def _record_checkpoints(db_file: Path, manifest: Manifest) -> None:
    """The live hub learns what the finished backup holds: from now on sync answers tell each
    node that its ops up to the checkpoint are safe elsewhere."""
    db = connect(db_file, migrate=False)
    try:
        with transaction(db):
            db.execute("DELETE FROM backup_checkpoints")
            db.executemany("INSERT INTO backup_checkpoints (node_id, node_seq, backed_up_at) VALUES (?, ?, ?)",
                           [(node, seq, manifest.created_at) for node, seq in manifest.checkpoints.items()])
    finally:
        db.close()


# -- restore --------------------------------------------------------------------------------------------

def restore(archive: Path, data_dir: Path, passphrase: str, *, progress: Progress | None = None) -> Manifest:
    """Bring a hub back from *archive* into *data_dir* (new or empty). Nothing is written unless
    the whole archive decrypts and checks out."""
    archive, target = Path(archive), Path(data_dir)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise BackupError(f"{target} is not empty; restore into a new folder")
    if not target.parent.is_dir():
        raise BackupError(f"{target.parent} does not exist; create it first")
    try:
        source = open(archive, "rb")  # noqa: SIM115 - closed below, after the reader is done with it
    except OSError as exc:
        raise BackupError(f"cannot read {archive}: {exc.strerror or exc}") from None
    with source:
        reader = _open_archive(source, _secret(passphrase, new=False))
        manifest = Manifest.from_json(reader.first)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.restoring-", dir=target.parent))
        try:
            _unpack(reader, manifest, staging, progress)
            _new_life(staging / manifest.db_name, manifest)
            fsync_dir(staging)
            staging.rename(target)  # onto a missing or empty folder: atomic
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    fsync_dir(target.parent)
    return manifest


def _open_archive(source: BinaryIO, secret: bytes) -> _SealedReader:
    header = source.read(_HEADER.size)
    if len(header) < len(MAGIC) or header[:len(MAGIC)] != MAGIC:
        raise DamagedBackup("not a Tessera hub backup")
    if len(header) < _HEADER.size:
        raise DamagedBackup("the backup is cut off in its header")
    _magic, version, opslimit, memlimit, salt, prefix, chunk = _HEADER.unpack(header)
    if version != FORMAT:
        raise DamagedBackup(f"backup format {version}: this Tessera reads format {FORMAT}")
    if not (nacl.pwhash.argon2id.OPSLIMIT_MIN <= opslimit <= _MAX_OPS
            and nacl.pwhash.argon2id.MEMLIMIT_MIN <= memlimit <= _MAX_MEM and 0 < chunk <= MAX_CHUNK):
        raise DamagedBackup("the backup's header is damaged (impossible parameters)")
    box = nacl.secret.SecretBox(_derive(secret, salt, opslimit, memlimit))
    reader = _SealedReader(source, box, prefix, chunk)
    try:
        first = reader.frame()
    except _Undecryptable:
        raise WrongPassphrase("wrong passphrase (or the backup's first block is damaged); nothing restored") \
            from None
    digest = hashlib.blake2b(header, digest_size=32).digest()
    if first[:32] != digest:
        raise DamagedBackup("the backup's header was changed")
    reader.first = first[32:]
    return reader


def _unpack(reader: _SealedReader, manifest: Manifest, staging: Path, progress: Progress | None) -> None:
    total, done = sum(f["size"] for f in manifest.files), 0
    for entry in manifest.files:
        fd = os.open(staging / entry["name"], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            for block in reader.read_exactly(entry["size"]):
                out.write(block)
                done += len(block)
                if progress:
                    progress("decrypt", done, total)
            out.flush()
            os.fsync(out.fileno())
    reader.finish()


def _new_life(db_file: Path, manifest: Manifest) -> None:
    """The restored database as a hub that knows it was restored: a new epoch (edges push again
    what they keep and pull from the start), the snapshot itself as its backup checkpoint, and
    every node's pull bookkeeping back to 0 (each node pulls everything again)."""
    db = connect(db_file)  # migrations of a newer Tessera apply here
    try:
        result = db.execute("PRAGMA integrity_check").fetchone()["integrity_check"]
        if result != "ok":
            raise DamagedBackup(f"the restored database fails SQLite's integrity check: {result}")
        now = iso(utcnow())
        with transaction(db):
            db.execute("UPDATE hub_epoch SET epoch = ?, started_at = ?, restored_from = ? WHERE id = 1",
                       (nacl.utils.random(16).hex(), now, manifest.created_at))
            db.execute("DELETE FROM backup_checkpoints")
            db.executemany("INSERT INTO backup_checkpoints (node_id, node_seq, backed_up_at) VALUES (?, ?, ?)",
                           [(node, seq, manifest.created_at) for node, seq in _op_marks(db).items()])
            db.execute("UPDATE node_scopes SET pulled_seq = 0")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()


# -- the encrypted frames -------------------------------------------------------------------------------

def _derive(secret: bytes, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    return nacl.pwhash.argon2id.kdf(nacl.secret.SecretBox.KEY_SIZE, secret, salt, opslimit=opslimit,
                                    memlimit=memlimit)


def _nonce(prefix: bytes, index: int) -> bytes:
    return prefix + index.to_bytes(8, "big")


class _SealedWriter:
    """Plaintext in, frames out: each frame `length | SecretBox(flag | data)` with the frame's
    index in its nonce; the flag marks the last frame, so a cut after any frame is seen."""

    def __init__(self, raw: BinaryIO, box: nacl.secret.SecretBox, prefix: bytes) -> None:
        self.raw, self.box, self.prefix = raw, box, prefix
        self.index = 0
        self.buffer = io.BytesIO()

    def frame(self, data: bytes, *, last: bool) -> None:
        sealed = self.box.encrypt((_LAST if last else _MORE) + data, _nonce(self.prefix, self.index)).ciphertext
        self.raw.write(_LENGTH.pack(len(sealed)) + sealed)
        self.index += 1

    def write(self, data: bytes) -> None:
        self.buffer.write(data)
        if self.buffer.tell() >= CHUNK:
            pending = self.buffer.getvalue()
            cut = len(pending) - len(pending) % CHUNK
            for start in range(0, cut, CHUNK):
                self.frame(pending[start:start + CHUNK], last=False)
            self.buffer = io.BytesIO()
            self.buffer.write(pending[cut:])

    def close(self) -> None:
        self.frame(self.buffer.getvalue(), last=True)


class _SealedReader:
    """Frames in, checked plaintext out. Any frame that does not decrypt under its own index, a
    file that ends before the last frame, or bytes after it: DamagedBackup."""

    def __init__(self, raw: BinaryIO, box: nacl.secret.SecretBox, prefix: bytes, chunk: int) -> None:
        self.raw, self.box, self.prefix = raw, box, prefix
        self.max_frame = chunk + len(_LAST) + nacl.secret.SecretBox.MACBYTES + (1 << 20)  # room for the manifest
        self.index = 0
        self.ended = False
        self.first = b""
        self.pending = b""

    def frame(self) -> bytes:
        if self.ended:
            raise DamagedBackup("the backup holds less than its table of contents says")
        length = self.raw.read(_LENGTH.size)
        if len(length) < _LENGTH.size:
            raise DamagedBackup("the backup is cut off (truncated file)")
        (size,) = _LENGTH.unpack(length)
        if size > self.max_frame:
            raise DamagedBackup("the backup is damaged (a block of impossible size)")
        sealed = self.raw.read(size)
        if len(sealed) < size:
            raise DamagedBackup("the backup is cut off (truncated file)")
        try:
            plain = self.box.decrypt(sealed, _nonce(self.prefix, self.index))
        except nacl.exceptions.CryptoError:
            raise _Undecryptable(f"block {self.index} does not decrypt: the backup was changed or damaged") \
                from None
        self.index += 1
        self.ended = plain[:1] == _LAST
        return plain[1:]

    def read_exactly(self, size: int) -> Iterator[bytes]:
        left = size
        while left:
            if not self.pending:
                self.pending = self.frame()
                continue
            block, self.pending = self.pending[:left], self.pending[left:]
            left -= len(block)
            yield block

    def finish(self) -> None:
        """Everything has been read: the last frame came, nothing is left in it or after it."""
        while not self.ended and not self.pending:
            self.pending = self.frame()
        if self.pending or not self.ended:
            raise DamagedBackup("the backup holds more than its table of contents says")
        if self.raw.read(1):
            raise DamagedBackup("the backup has bytes after its last block (appended or damaged)")

