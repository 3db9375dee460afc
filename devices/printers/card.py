"""Card printers (DESIGN 6): print data is a PDF (one card per page); a printer is a profile file.

Two drivers:
- `folder`: the printer software (Evolis Print Center, a Zebra hot folder, ...) watches a folder. The PDF
  is written under a hidden temporary name, flushed to disk and renamed, so the watcher never sees half
  a file; each job gets a unique name.
- `cups`: `lp -d QUEUE -o media=CR80 FILE` (plus the profile's extra options). CUPS copies the file into
  its spool at submission, so the temporary file is removed right after `lp` returns.

Profiles are TOML files with `kind = "card_printer"`, found in the profile folder (`devices.profiles.
profiles_dir()`) and, as a fallback, in its `card-printers/` subfolder. They are checked like scanner and
relay profiles: an unknown key or a wrong type is one `ProfileError` naming the file and the field.

A failing printer (folder missing or not writable, `lp` missing, exit code != 0, timeout) raises one
`PrintError` with the reason; nothing is lost: the caller still holds the PDF and retries the job later.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Annotated, Literal, Protocol

from msgspec import Meta, Struct

from core.base import tomlfiles
from devices.profiles import ProfileError, load_profile, profiles_dir

__all__ = [
    "CardPrinter",
    "CardPrinterProfile",
    "CupsPrinter",
    "CupsSettings",
    "FolderPrinter",
    "FolderSettings",
    "PrintError",
    "load_card_printer",
    "open_card_printer",
]

SUBFOLDER = "card-printers"
_JOB_RE = re.compile(r"[^A-Za-z0-9._-]+")
_REQUEST_RE = re.compile(r"request id is (\S+)")


class PrintError(RuntimeError):
    """The printer did not take the job. The job is not lost: the caller keeps it and may retry."""


class FolderSettings(Struct, forbid_unknown_fields=True, frozen=True):
    path: str  # the watched folder; must exist (we never create it: a missing share is an error)
    prefix: str = "card-"


class CupsSettings(Struct, forbid_unknown_fields=True, frozen=True):
    queue: str
    media: str = "CR80"
    options: list[str] = []  # further `-o` options, e.g. ["sides=one-sided"]
    lp: str = "lp"  # the command, looked up on PATH
    timeout_s: Annotated[float, Meta(gt=0, le=300)] = 30


class CardPrinterProfile(Struct, forbid_unknown_fields=True, frozen=True):
    kind: Literal["card_printer"]
    model: str
    driver: Literal["folder", "cups"]
    vendor: str = ""
    notes: str = ""
    folder: FolderSettings | None = None
    cups: CupsSettings | None = None
    name: str = ""
    path: str = ""


def _resolve(name_or_path: str | os.PathLike[str]) -> Path:
    """A bare name is looked up in the profile folder, then in its card-printers/ subfolder."""
    top = tomlfiles.resolve(name_or_path, profiles_dir(), "profile", ProfileError)
    if tomlfiles.is_path(name_or_path):
        return top
    sub = profiles_dir() / SUBFOLDER / top.name
    return sub if not top.exists() and sub.exists() else top


def load_card_printer(name_or_path: str | os.PathLike[str]) -> CardPrinterProfile:
    """Load and validate a card printer profile by name or by path to a .toml file."""
    return load_profile(name_or_path, "card_printer", CardPrinterProfile, _check_card_printer,
                        path=_resolve(name_or_path))


def _check_card_printer(profile: CardPrinterProfile) -> tuple[str, str] | None:
    for table in ("folder", "cups"):
        if getattr(profile, table) is not None and profile.driver != table:
            return table, f'only allowed with driver = "{table}" (this profile has driver = "{profile.driver}")'
    if getattr(profile, profile.driver) is None:
        return profile.driver, f'missing table [{profile.driver}] (required with driver = "{profile.driver}")'
    return None


class CardPrinter(Protocol):
    def print_pdf(self, pdf: bytes, job: str = "cards") -> str:
        """Hand one PDF to the printer; returns where it went (file path or CUPS request id)."""
        ...


def _job_name(job: str) -> str:
    return _JOB_RE.sub("-", job).strip("-.")[:60] or "cards"


class FolderPrinter:
    """Atomic drop into a watched folder: hidden temp file in the same folder, fsync, rename."""

    def __init__(self, folder: str | os.PathLike[str], prefix: str = "card-") -> None:
        self.folder = Path(folder)
        self.prefix = prefix

    def print_pdf(self, pdf: bytes, job: str = "cards") -> str:
        if not self.folder.is_dir():
            raise PrintError(f"card printer folder {self.folder} does not exist (share not mounted?)")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        final = self.folder / f"{self.prefix}{stamp}-{_job_name(job)}-{uuid.uuid4().hex[:12]}.pdf"
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(prefix=".", suffix=".part", dir=self.folder)
            with os.fdopen(fd, "wb") as out:
                out.write(pdf)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, final)
            tmp = None
            dir_fd = os.open(self.folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise PrintError(f"card printer folder {self.folder}: cannot write: {exc.strerror or exc}") from None
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
        return str(final)


class CupsPrinter:
    """`lp -d QUEUE -o media=MEDIA [-o OPTION ...] -t JOB FILE`."""

    def __init__(self, settings: CupsSettings) -> None:
        self.settings = settings

    def command(self, file: str, job: str = "cards") -> list[str]:
        s = self.settings
        extra = [arg for option in s.options for arg in ("-o", option)]
        return [s.lp, "-d", s.queue, "-o", f"media={s.media}", *extra, "-t", _job_name(job), file]

    def print_pdf(self, pdf: bytes, job: str = "cards") -> str:
        s = self.settings
        with tempfile.TemporaryDirectory(prefix="tessera-lp-") as folder:
            file = os.path.join(folder, f"{_job_name(job)}.pdf")
            with open(file, "wb") as out:
                out.write(pdf)
            try:
                proc = subprocess.run(self.command(file, job), capture_output=True, text=True, timeout=s.timeout_s,
                                      stdin=subprocess.DEVNULL)
            except FileNotFoundError:
                raise PrintError(f"CUPS queue {s.queue}: command {s.lp!r} not found (is cups-client installed?)") \
                    from None
            except subprocess.TimeoutExpired:
                raise PrintError(f"CUPS queue {s.queue}: {s.lp} did not finish within {s.timeout_s:g} s") from None
            except OSError as exc:
                raise PrintError(f"CUPS queue {s.queue}: cannot run {s.lp}: {exc.strerror or exc}") from None
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            reason = detail[-1] if detail else "no message"
            raise PrintError(f"CUPS queue {s.queue}: {s.lp} exited with {proc.returncode}: {reason}")
        m = _REQUEST_RE.search(proc.stdout)
        return m.group(1) if m else s.queue


def open_card_printer(profile: CardPrinterProfile | str | os.PathLike[str], *,
                      folder: str | os.PathLike[str] | None = None) -> CardPrinter:
    """A printer for a profile (or profile name). `folder` overrides the folder driver's path (demo, tests)."""
    if not isinstance(profile, CardPrinterProfile):
        profile = load_card_printer(profile)
    if profile.driver == "folder":
        assert profile.folder is not None
        return FolderPrinter(folder or profile.folder.path, profile.folder.prefix)
    assert profile.cups is not None
    return CupsPrinter(profile.cups)
