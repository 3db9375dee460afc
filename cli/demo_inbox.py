"""The demo's mail inbox: the mails the sink caught, readable in a browser with working links.

Why a page and not just the .eml files: the first thing a new user of the demo does with a
shop order is open its personalization link, and the hub's own outbox (office app) cannot
show that link any more once the mail is sent (`mail.redact_links`: the queue is a record of
what was sent, not a key to cards). A real customer clicks the link in their mail program;
the demo's user clicks it here. The page only reads `<data>/mail/*.eml` (file names from the
folder listing, never from the URL beyond a strict pattern), escapes every header and line,
and turns only http(s) URLs into links.
"""

from __future__ import annotations

import html
import re
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from aiohttp import web

NAME = re.compile(r"^\d{8}-\d{6}-\d{4}\.eml$")  # the sink's own file names (`demo_mail.FolderHandler`)
URL = re.compile(r"https?://[^\s<>\"']+")
SHOWN = 200  # newest mails listed
STYLE = ("body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:1.5rem auto;padding:0 1rem;color:#1d2430}"
         "table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.35rem .5rem;"
         "border-bottom:1px solid #d9dde3}pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f4f5f7;"
         "padding:1rem;border-radius:6px}.muted{color:#5b6473}")
HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"}
FOLDER = web.AppKey("inbox_folder", Path)


def _read(path: Path) -> EmailMessage:
    return BytesParser(policy=policy.default).parsebytes(path.read_bytes())


def _text(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    return part.get_content() if part is not None else ""


def linked(text: str) -> str:
    """*text* escaped, with each http(s) URL as a link (the URL itself escaped too)."""
    out, last = [], 0
    for match in URL.finditer(text):
        out.append(html.escape(text[last:match.start()]))
        url = html.escape(match.group(0))
        out.append(f'<a href="{url}">{url}</a>')
        last = match.end()
    out.append(html.escape(text[last:]))
    return "".join(out)


def _page(title: str, body: str) -> web.Response:
    text = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head><body>{body}</body></html>")
    return web.Response(text=text, content_type="text/html", charset="utf-8", headers=HEADERS)


async def inbox(request: web.Request) -> web.Response:
    folder = request.app[FOLDER]
    files = sorted((p for p in folder.glob("*.eml") if NAME.match(p.name)), reverse=True)[:SHOWN]
    rows = []
    for path in files:
        message = _read(path)
        rows.append(f'<tr><td>{html.escape(str(message["Date"] or ""))}</td>'
                    f'<td>{html.escape(str(message["To"] or ""))}</td>'
                    f'<td><a href="/mail/{path.name}">{html.escape(str(message["Subject"] or "(no subject)"))}</a>'
                    "</td></tr>")
    table = ("<table id='mails'><thead><tr><th>Date</th><th>To</th><th>Subject</th></tr></thead><tbody>"
             + "".join(rows) + "</tbody></table>") if rows else "<p id='empty'>No mail yet.</p>"
    return _page("Demo inbox", f"<h1>Demo inbox</h1><p class='muted'>Mails the demo hub sent, caught in "
                               f"{html.escape(str(folder))}. Newest first.</p>{table}")


async def one(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    path = request.app[FOLDER] / name
    if not NAME.match(name) or not path.is_file():
        raise web.HTTPNotFound(text="no such mail")
    message = _read(path)
    head = "".join(f"<tr><th>{key}</th><td>{html.escape(str(message[key] or ''))}</td></tr>"
                   for key in ("From", "To", "Date", "Subject"))
    return _page(str(message["Subject"] or "mail"),
                 f"<p><a href='/'>‹ Demo inbox</a></p><table>{head}</table>"
                 f"<pre id='text'>{linked(_text(message))}</pre>")


def app(folder: Path) -> web.Application:
    """The inbox web app over *folder* (the sink's folder)."""
    application = web.Application()
    application[FOLDER] = folder
    application.router.add_get("/", inbox)
    application.router.add_get("/mail/{name}", one)
    return application
