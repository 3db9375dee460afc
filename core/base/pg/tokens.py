"""A small SQL scanner: enough to tell string literals, quoted names and comments from the
rest, so that rewriting SQL (placeholders, SQLite DDL) never touches text inside a literal.

Not a parser: it splits SQL into tokens and keeps every character, so joining the tokens
gives the input back unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import NamedTuple

_TOKEN = re.compile(r"""
    (?P<str>'(?:[^']|'')*')
  | (?P<qid>"(?:[^"]|"")*")
  | (?P<comment>--[^\n]*|/\*.*?\*/)
  | (?P<ws>\s+)
  | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<num>\d+(?:\.\d*)?)
  | (?P<param>\?|:[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>::|->>|->|<>|!=|<=|>=|\|\||.)
""", re.VERBOSE | re.DOTALL)


class Token(NamedTuple):
    kind: str  # str, qid, comment, ws, word, num, param, op
    text: str

    @property
    def upper(self) -> str:
        return self.text.upper()


def tokens(sql: str) -> Iterator[Token]:
    """Every token of *sql*, in order; an unterminated literal or comment is a ValueError."""
    pos = 0
    while pos < len(sql):
        match = _TOKEN.match(sql, pos)
        if match is None or (match.lastgroup == "op" and (match.group() in "'\"" or sql.startswith("/*", pos))):
            raise ValueError(f"unterminated literal or comment at {pos} in {sql[:80]!r}")
        yield Token(match.lastgroup or "op", match.group())
        pos = match.end()


def significant(sql: str) -> list[Token]:
    """The tokens without white space and comments (for reading DDL)."""
    return [t for t in tokens(sql) if t.kind not in ("ws", "comment")]


def unquoted(token: Token) -> str:
    """A name as written: `"orders"` and `orders` are both `orders`."""
    return token.text[1:-1].replace('""', '"') if token.kind == "qid" else token.text
