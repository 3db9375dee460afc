"""Raw UTF-8 in a request's URL (`curl '.../customers?q=Müller'`), accepted by every server
this process runs: the hub, the desks and counters, the gates' status pages, the demo.

curl and many scripts send a query's letters as raw UTF-8 bytes instead of percent-encoding
them. aiohttp's compiled request parser (llhttp, strict) refuses every byte above 0x7f in
the request line: the client got a 400 with a parser dump and the log a traceback, before
any of our code ran. Its pure-Python parser, the same module's fallback, reads the line as
UTF-8 and hands the query to yarl like an encoded one, so `request.query["q"]` is "Müller"
either way. It costs about 8 µs more per request (measured: 2.5 vs 10.5 µs for a customer
search with four headers), nothing next to a request's own work.

`accept_utf8_urls()` makes aiohttp's web servers in this process use that parser; the
`tessera` command calls it once at start (cli/main.py), before any server is made.
"""

from __future__ import annotations

from aiohttp import http_parser, web_protocol


def accept_utf8_urls() -> None:
    """Serve with aiohttp's Python request parser (idempotent). Client connections are not
    touched: they parse responses, whose status line is ASCII."""
    web_protocol.HttpRequestParser = http_parser.HttpRequestParserPy
