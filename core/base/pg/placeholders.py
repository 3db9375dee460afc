"""sqlite3's parameter style in psycopg's: `?` becomes `%s`, `:name` becomes `%(name)s`,
and every `%` (also inside a literal, where psycopg would read it as a placeholder) is
doubled. Placeholders inside string literals, quoted names and comments are left alone,
so `'a?b'` and `LIKE 'node:%'` mean what they meant on SQLite."""

from __future__ import annotations

import functools

from core.base.pg.tokens import tokens


@functools.lru_cache(maxsize=4096)
def translate(sql: str) -> str:
    """*sql* written for sqlite3, for psycopg's `execute` with a parameter sequence or dict."""
    out = []
    for token in tokens(sql):
        if token.kind == "param":
            out.append("%s" if token.text == "?" else f"%({token.text[1:]})s")
        elif token.kind in ("str", "qid", "comment", "op"):
            out.append(token.text.replace("%", "%%"))
        else:
            out.append(token.text)
    return "".join(out)
