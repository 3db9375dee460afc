"""Configuration files as data (DESIGN: device profiles, card layouts): one way to find,
read and check a TOML file, so every mistake is one line naming the file and the field.

Used by `core.printing.card_layout` (layouts) and `devices.profiles` (device profiles); each passes
its own error class, folder and word for the file ("layout", "profile").
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

import msgspec

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_AT_RE = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_FIELD_MSG_RE = re.compile(r"^Object (?P<what>contains unknown|missing required) field `(?P<field>[^`]+)`$")


def is_path(name_or_path: str | os.PathLike[str]) -> bool:
    text = os.fspath(name_or_path)
    return "/" in text or os.sep in text or text.endswith(".toml")


def resolve(name_or_path: str | os.PathLike[str], folder: Path, what: str, error: type[Exception]) -> Path:
    """A path as given, or `<folder>/<name>.toml` for a bare name (letters, digits, . _ -)."""
    text = os.fspath(name_or_path)
    if is_path(text):
        return Path(text)
    if not _NAME_RE.fullmatch(text):
        raise error(f"{text!r}: not a {what} name (letters, digits, '.', '_', '-') or a .toml path")
    return folder / f"{text}.toml"


def shown(path: Path) -> str:
    """The path as an operator would type it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def read(path: Path, what: str, error: type[Exception]) -> dict[str, Any]:
    """The TOML table in *path*; a missing, unreadable, non-UTF-8 or invalid file is *error*."""
    where = shown(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{where}: no such {what} file") from None
    except OSError as exc:
        raise error(f"{where}: cannot read: {exc.strerror or exc}") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise error(f"{where}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{where}: invalid TOML: {exc}") from None


def convert(data: dict[str, Any], cls: type[Any], path: Path, error: type[Exception]) -> Any:
    """*data* as *cls*, strictly; a wrong field is *error* naming the file and the field."""
    try:
        return msgspec.convert(data, cls, strict=True)
    except msgspec.ValidationError as exc:
        field, msg = field_error(exc)
        raise error(f"{shown(path)}: {field}: {msg}") from None


def field_error(exc: msgspec.ValidationError) -> tuple[str, str]:
    """Turn msgspec's `Expected int, got str - at $.relay.pulse_ms` into (`relay.pulse_ms`, message)."""
    m = _AT_RE.match(str(exc))
    assert m is not None  # the pattern matches any string
    msg, path = m["msg"], (m["path"] or "").lstrip(".")
    fm = _FIELD_MSG_RE.match(msg)
    if fm:
        field = f"{path}.{fm['field']}" if path else fm["field"]
        return field, "unknown field" if fm["what"].startswith("contains") else "missing required field"
    return path or "(top level)", msg.replace("`", "")
