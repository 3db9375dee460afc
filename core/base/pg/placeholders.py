"""sqlite3's parameter style in psycopg's: `?` becomes `%s`, `:name` becomes `%(name)s`,
and every `%` (also inside a literal, where psycopg would read it as a placeholder) is
doubled. Placeholders inside string literals, quoted names and comments are left alone,
so `'a?b'` and `LIKE 'node:%'` mean what they meant on SQLite. `IS ?` and `IS NOT ?` (a
NULL-safe comparison with a value on SQLite) become `IS [NOT] DISTINCT FROM`, and `LIKE`
becomes `ILIKE`: SQLite's LIKE ignores the case of ASCII letters, PostgreSQL's does not (the
hub database has LC_CTYPE C, where ILIKE, too, folds ASCII only)."""

from __future__ import annotations

import functools

from core.base.pg.tokens import tokens


@functools.lru_cache(maxsize=4096)
def translate(sql: str) -> str:
    """*sql* written for sqlite3, for psycopg's `execute` with a parameter sequence or dict."""
    out: list[str] = []
    for token in tokens(sql):
        if token.kind == "param":
            _null_safe_comparison(out)
            out.append("%s" if token.text == "?" else f"%({token.text[1:]})s")
        elif token.kind == "word" and token.upper == "LIKE":
            out.append("ILIKE")  # SQLite's LIKE ignores the case of ASCII letters (ILIKE in a C-ctype database)
        elif token.kind in ("str", "qid", "comment", "op"):
            out.append(token.text.replace("%", "%%"))
        else:
            out.append(token.text)
    return "".join(out)


def _null_safe_comparison(out: list[str]) -> None:
    """SQLite's `x IS ?` / `x IS NOT ?` compare values NULL-safely; PostgreSQL says `IS NOT
    DISTINCT FROM` / `IS DISTINCT FROM` (its IS takes only NULL, TRUE, FALSE)."""
    words = [i for i, text in enumerate(out) if not text.isspace()][-2:]
    if words and out[words[-1]].upper() == "IS":
        out[words[-1]] = "IS NOT DISTINCT FROM"
    elif len(words) == 2 and out[words[0]].upper() == "IS" and out[words[1]].upper() == "NOT":
        out[words[0]], out[words[1]] = "IS", "DISTINCT FROM"
