"""sqlite3's parameter style in PostgreSQL's: `?` becomes `$1`, `$2`, ..., `:name` the number
of that name. Placeholders inside string literals, quoted names and comments are left alone,
so `'a?b'` and `LIKE 'node:%'` mean what they meant on SQLite. `IS ?` and `IS NOT ?` (a
NULL-safe comparison with a value on SQLite) become `IS [NOT] DISTINCT FROM`, and `LIKE`
becomes `ILIKE`: SQLite's LIKE ignores the case of ASCII letters, PostgreSQL's does not (the
hub database has LC_CTYPE C, where ILIKE, too, folds ASCII only)."""

from __future__ import annotations

import functools

from core.base.pg.tokens import Token, tokens


@functools.lru_cache(maxsize=4096)
def numbered(sql: str) -> tuple[bytes, tuple[str, ...] | None]:
    """*sql* written for sqlite3 as PostgreSQL's own text (`$1`, `$2`, ...), for libpq's
    prepared statements (`core.base.pg.wire`), with the rewrites above; and for
    `:name` placeholders the name of each number in order (a name used twice is one number),
    None for `?`. Mixing the two styles is an error, as on sqlite3."""
    out: list[str] = []
    names: list[str] = []
    marks = 0
    for token in tokens(sql):
        if token.kind == "param":
            _null_safe_comparison(out)
            if token.text == "?":
                marks += 1
                out.append(f"${marks}")
            else:
                if token.text[1:] not in names:
                    names.append(token.text[1:])
                out.append(f"${names.index(token.text[1:]) + 1}")
        else:
            out.append(_word(token))
    if marks and names:
        raise ValueError(f"both ? and :name placeholders in {sql[:80]!r}")
    return "".join(out).encode(), (tuple(names) if names else None)


def _word(token: Token) -> str:
    """SQLite's LIKE ignores the case of ASCII letters: ILIKE (in a C-ctype database)."""
    return "ILIKE" if token.kind == "word" and token.upper == "LIKE" else token.text


def _null_safe_comparison(out: list[str]) -> None:
    """SQLite's `x IS ?` / `x IS NOT ?` compare values NULL-safely; PostgreSQL says `IS NOT
    DISTINCT FROM` / `IS DISTINCT FROM` (its IS takes only NULL, TRUE, FALSE)."""
    words = [i for i, text in enumerate(out) if not text.isspace()][-2:]
    if words and out[words[-1]].upper() == "IS":
        out[words[-1]] = "IS NOT DISTINCT FROM"
    elif len(words) == 2 and out[words[0]].upper() == "IS" and out[words[1]].upper() == "NOT":
        out[words[0]], out[words[1]] = "IS", "DISTINCT FROM"
