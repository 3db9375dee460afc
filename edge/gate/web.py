"""The gate's small HTTP side: a status page for staff, and the peer endpoints.

- `GET /` a status page (refreshes itself): last scans, peers, clock, queue.
- `GET /api/status` the same as JSON.
- `POST /api/scan` a simulated scan, only when the gate runs a simulated scanner (demo).
- `POST /peer/v1/entries`, `GET /peer/v1/entries?since=`, `GET /peer/v1/trust[?key=]` for
  peers: only requests signed by a certified node of this organizer get past the peer door
  (edge/peers/door.py: size, rate, signature, replay, before any record is looked at), and
  every record received is still verified before it is stored (see edge/gate/peers.py).
"""

from __future__ import annotations

import datetime as dt
import html
import json
from typing import TYPE_CHECKING

from aiohttp import web

from core.base.clock import LOCAL_TZ, parse_iso
from core.catalog.organizers import venue_name
from edge import browser_door
from edge.browser_door import own_hosts
from edge.gate.peers import accept_entries, learn_trust
from edge.peers.certs import trust_answer
from edge.peers.door import PEER, PEER_BODY, PeerDoor
from edge.problems import problem

if TYPE_CHECKING:
    from edge.gate.loop import Gate

GATE = web.AppKey("gate", object)
DOOR = web.AppKey("peer_door", PeerDoor)
MAX_BODY = 1024 * 1024


def make_app(gate: Gate) -> web.Application:
    # the simulated scan is a browser's to send only from the gate's own page; peers sign their records
    door = PeerDoor(trust=lambda: _trust(gate), now=gate.clock.now,
                    learn=lambda cert: learn_trust(gate.access, {"certs": [cert]}, quiet=True))
    app = web.Application(client_max_size=MAX_BODY, middlewares=[door.middleware(),
                                                                 browser_door.middleware(own_hosts(), ("/peer/",))])
    app[GATE], app[DOOR] = gate, door
    app.router.add_get("/", status_page)
    app.router.add_get("/api/status", status_json)
    app.router.add_post("/api/scan", simulated_scan)
    app.router.add_post("/peer/v1/entries", receive_entries)
    app.router.add_get("/peer/v1/entries", send_entries)
    app.router.add_get("/peer/v1/trust", send_trust)
    return app


def _trust(gate: Gate):
    gate.access.refresh()  # at most every Access.REFRESH_S: a revocation pulled by sync counts here too
    return gate.access.trust


def _peer_json(request: web.Request) -> dict | web.Response:
    """The body the peer door read and whose signature it checked."""
    try:
        body = json.loads(request[PEER_BODY] or b"{}")
    except (ValueError, UnicodeDecodeError):
        return problem(400, "bad-request", "body is not JSON")
    if not isinstance(body, dict):
        return problem(400, "bad-request", "body must be a JSON object")
    return body


async def _json_body(request: web.Request) -> dict | web.Response:
    try:
        body = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        return problem(400, "bad-request", "body is not JSON")
    if not isinstance(body, dict):
        return problem(400, "bad-request", "body must be a JSON object")
    return body


async def status_json(request: web.Request) -> web.Response:
    return web.json_response(request.app[GATE].status())


async def simulated_scan(request: web.Request) -> web.Response:
    gate = request.app[GATE]
    if not gate.simulated:
        return problem(403, "forbidden", "this gate has a real scanner; scans come from the scanner only")
    body = await _json_body(request)
    if isinstance(body, web.Response):
        return body
    code = body.get("code")
    if not isinstance(code, str) or len(code) > 4096:
        return problem(422, "validation-failed", "code must be a string of at most 4096 characters")
    result = await gate.handle(code)
    return web.json_response(result.as_dict())


async def receive_entries(request: web.Request) -> web.Response:
    gate = request.app[GATE]
    if request[PEER].role != "gate":
        return problem(403, "forbidden", "only gates send entry records")
    body = _peer_json(request)
    if isinstance(body, web.Response):
        return body
    certs = body.get("certs")
    if isinstance(certs, list):
        learn_trust(gate.access, {"certs": certs})
    records = body.get("records")
    if not isinstance(records, list):
        return problem(422, "validation-failed", "records must be a list of signed entry records")
    new, refused = accept_entries(gate.access, records, gate.peers_stats)
    return web.json_response({"new": new, "refused": refused})


async def send_entries(request: web.Request) -> web.Response:
    gate = request.app[GATE]
    try:
        since = parse_iso(request.query.get("since", ""))
        if since.tzinfo is None:
            raise ValueError
    except ValueError:
        return problem(422, "validation-failed", "since must be an ISO time with zone, e.g. 2026-11-22T10:00:00Z")
    since = max(since, gate.access.clock.now() - dt.timedelta(days=2))
    return web.json_response({"records": gate.access.recent_entry_records(since)})


async def send_trust(request: web.Request) -> web.Response:
    return trust_answer(request, request.app[GATE].access.db)


def local_time(text: str | None) -> str:
    """An ISO instant ("2026-12-02T06:42:10Z") as the venue's local time for staff
    ("02.12.2026 07:42:10 CET"); the venues' zone is core.base.clock.LOCAL_TZ."""
    if not text:
        return ""
    try:
        moment = parse_iso(text)
    except ValueError:
        return text
    if moment.tzinfo is None:
        return text
    return moment.astimezone(LOCAL_TZ).strftime("%d.%m.%Y %H:%M:%S %Z")


async def status_page(request: web.Request) -> web.Response:
    gate = request.app[GATE]
    s = gate.status()
    venue = venue_name(gate.db, s["venue"]) or s["venue"] or ""  # the id only until the catalog has the venue
    rows = "".join(
        f"<tr class={'ok' if v['admitted'] else 'stop'}><td>{html.escape(local_time(v.get('checked_at')))}</td>"
        f"<td>{html.escape(v['reason'])}</td><td>{html.escape(v['message_de'])} / {html.escape(v['message_en'])}</td>"
        f"<td>{html.escape(v.get('product', ''))}</td></tr>"
        for v in reversed(s["recent"]))
    peers = "".join(f"<li>{html.escape(p['name'])} – {html.escape(p['url'])}</li>" for p in s["peers"]) or "<li>–</li>"
    clock = s["clock"]
    warning = _clock_warning(clock)
    page = f"""<!doctype html><html lang=de><head><meta charset=utf-8>
<meta name=viewport content="width=device-width,initial-scale=1"><meta http-equiv=refresh content=2>
<title>{html.escape(s['name'])} · {html.escape(venue)}</title>
<style>body{{font:18px system-ui,sans-serif;margin:1em}} table{{border-collapse:collapse;width:100%}}
td{{padding:.4em;border-bottom:1px solid #ddd}} .ok td:nth-child(2){{color:#060;font-weight:bold}}
.stop td:nth-child(2){{color:#b00;font-weight:bold}} .warn{{background:#fec;padding:.5em}}</style></head>
<body><h1>{html.escape(s['name'])} · {html.escape(venue)}</h1>{warning}
<p>Richtung / direction: {html.escape(s['direction'])} · Sperrzeit / lockout: {s['lockout_minutes']} min ·
Relais / relay: {'Störung / fault' if s['relay_faulty'] else 'OK'} · Warteschlange / queued for hub: {s['outbox']}</p>
<h2>Letzte Scans / last scans</h2><table>{rows or '<tr><td>–</td></tr>'}</table>
<h2>Andere Eingänge / peer gates</h2><ul>{peers}</ul>
<p>Zeit / time: {html.escape(local_time(clock['trusted']))}</p></body></html>"""
    return web.Response(text=page, content_type="text/html")


def _clock_warning(clock: dict) -> str:
    """The system clock's error either way (trusted time, core/cards/trusted_time.py), or nothing."""
    if clock["using"] == "system":
        return ""
    ahead = clock["clock_offset_seconds"] > 0
    off = abs(clock["clock_offset_seconds"])
    de, en = ("vor", "ahead") if ahead else ("nach", "behind")
    basis = ("Zeit des Hubs / hub time" if clock["using"] == "hub+monotonic" else "gesicherte Zeit / trusted time")
    return (f"<p class=warn>Systemuhr geht {off:.0f} s {de} – es gilt die {basis} / "
            f"system clock is {off:.0f} s {en}</p>")
