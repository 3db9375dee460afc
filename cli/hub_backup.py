"""`tessera hub backup` and `tessera hub restore`: the hub's disk dies, its data does not.

The work is hub/services/backup.py; here are the arguments, the passphrase (a prompt, a file or
an environment variable, for cron) and a progress line on stderr.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

# hub.app and hub.services.backup are imported by the commands: `tessera hub --help` stays fast

BACKUP_HELP = """\
Write an encrypted backup of a hub to FILE while the hub may be serving: a consistent snapshot
of its database (SQLite's backup API, one read transaction) and the key material of the data
folder (root.key, node.key, other *.key/*.pem/*.crt files, hub.toml). FILE is encrypted with a
passphrase (Argon2id, XSalsa20-Poly1305): from a prompt (asked twice), --passphrase-file or
--passphrase-env. Without the passphrase the backup is useless: keep it apart from the file.
FILE is replaced atomically; write it to another disk or machine than the hub's.
When the file is complete the hub notes what it holds, and edges then forget the ops it holds
(until then they keep every op they pushed, so a hub restored from an older backup gets them
again). Restore the NEWEST backup: ops that edges forgot after it are only in it.
Example for cron:  TESSERA_BACKUP_PASS=... tessera hub backup --data /var/lib/tessera/hub \\
  --out /mnt/backup/hub-$(date +%%F).tbk --passphrase-env TESSERA_BACKUP_PASS"""

RESTORE_HELP = """\
Bring a hub back from a backup into NEWDIR (a new or empty folder; its parent must exist).
Nothing is written unless the passphrase is right and every block of the file checks out
(a truncated or changed file is refused). The restored hub gets a new epoch: when it serves
again (tessera hub serve --data NEWDIR), every edge notices, pushes again each op it still
keeps (ops the hub has already are answered as duplicates, nothing is applied twice) and pulls
its replica from the start. Nodes enrolled after the backup must be enrolled again."""


def register(cmds: argparse._SubParsersAction) -> None:
    make = cmds.add_parser("backup", help="write an encrypted, consistent backup of a hub (also while it serves)",
                           description=BACKUP_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    make.add_argument("--data", required=True, type=Path, metavar="DIR", help="hub data folder")
    make.add_argument("--out", required=True, type=Path, metavar="FILE", help="backup file to write")
    _passphrase_options(make)
    make.set_defaults(run=cmd_backup)

    back = cmds.add_parser("restore", help="bring a hub back from a backup into a new folder",
                           description=RESTORE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    back.add_argument("--data", required=True, type=Path, metavar="NEWDIR", help="new (or empty) hub data folder")
    back.add_argument("--from", required=True, type=Path, metavar="FILE", dest="source", help="backup file")
    _passphrase_options(back)
    back.set_defaults(run=cmd_restore)


def _passphrase_options(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--passphrase-file", type=Path, metavar="FILE",
                       help="read the passphrase from FILE (its first line; mode 600: not readable by others)")
    where.add_argument("--passphrase-env", metavar="NAME",
                       help="read the passphrase from environment variable NAME (for cron)")


def passphrase(args: argparse.Namespace, *, confirm: bool) -> str:
    """The passphrase from --passphrase-file, --passphrase-env or a prompt (twice for a new backup)."""
    from hub.services import backup

    if args.passphrase_file is not None:
        path: Path = args.passphrase_file
        try:
            mode = path.stat().st_mode & 0o777
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise backup.BackupError(f"cannot read passphrase file {path}: {getattr(exc, 'strerror', exc)}") \
                from None
        if mode & 0o077:
            raise backup.BackupError(f"passphrase file {path} is readable by others (mode {mode:o}); chmod 600 it")
        return text.splitlines()[0] if text.strip() else ""
    if args.passphrase_env is not None:
        value = os.environ.get(args.passphrase_env)
        if value is None:
            raise backup.BackupError(f"environment variable {args.passphrase_env} is not set")
        return value
    if not sys.stdin.isatty():
        raise backup.BackupError("no terminal to ask for the passphrase: use --passphrase-file or --passphrase-env")
    first = getpass.getpass("backup passphrase: ")
    if confirm and getpass.getpass("the same passphrase again: ") != first:
        raise backup.BackupError("the two passphrases differ; nothing written")
    return first


class ProgressLine:
    """Percent done on stderr: one updating line on a terminal, a line per 10% otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.shown: tuple[str, int] | None = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        percent = 100 if total <= 0 else done * 100 // total
        step = percent if self.tty else percent - percent % 10
        if self.shown == (stage, step):
            return
        self.shown = (stage, step)
        text = f"{stage}: {percent:3d}% ({done / 1e6:.1f} of {total / 1e6:.1f} MB)"
        if self.tty:
            print(f"\r{text}", end="\n" if percent >= 100 else "", file=sys.stderr, flush=True)
        else:
            print(text, file=sys.stderr, flush=True)


def cmd_backup(args: argparse.Namespace) -> int:
    from hub.app import db_path
    from hub.services import backup

    backup.refuse_postgresql(args.data, db_path(args.data))  # before asking for a passphrase
    secret = passphrase(args, confirm=True)
    manifest = backup.backup(args.data, db_path(args.data), args.out, secret, progress=ProgressLine())
    size = args.out.stat().st_size
    print(f"backup written to {args.out} ({size / 1e6:.1f} MB, {len(manifest.files)} files, ops of "
          f"{len(manifest.checkpoints)} nodes, made {manifest.created_at})")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from hub.services import backup

    secret = passphrase(args, confirm=False)
    manifest = backup.restore(args.source, args.data, secret, progress=ProgressLine())
    print(f"hub restored into {args.data} from the backup made {manifest.created_at}; start it with "
          f"`tessera hub serve --data {args.data}`: edges push again what the backup lacks")
    return 0
