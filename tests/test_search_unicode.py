"""Searches with umlauts and ß (issue 12): the demo's own `curl '...customers?q=Müller'` sent
the letters as raw UTF-8 and got a 400 text/plain from aiohttp's strict request parser, with
a traceback in the log. A real `tessera hub serve` on loopback, asked both ways: raw UTF-8
bytes in the request line (what curl sends) and percent-encoded (what browsers send)."""

from __future__ import annotations

import json
import socket
import urllib.parse

import pytest

from tests.helpers import ADDRESS
from tests.test_cli import Server, run

pytestmark = pytest.mark.slow  # a real hub process

PEOPLE = [("Jürgen", "Müller"), ("Hanna", "Weiß"), ("Änne", "Öztürk-Übel"), ("Max", "Mustermann")]


def raw_get(base: str, target: bytes, token: str, *, cookie: str = "") -> tuple[int, str, dict | str]:
    """GET with *target* sent byte for byte, as curl does (http.client would refuse it)."""
    host, port = base.removeprefix("http://").split(":")
    headers = f"Host: {host}:{port}\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n"
    headers += f"Cookie: {cookie}\r\n" if cookie else ""
    request = b"GET " + target + b" HTTP/1.1\r\n" + headers.encode() + b"\r\n"
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    kind = next((v for k, _, v in (x.partition(": ") for x in lines[1:]) if k.lower() == "content-type"), "")
    return status, kind, json.loads(body) if kind.startswith("application/json") else body.decode("utf-8", "replace")


def post(base: str, path: str, body: dict, token: str) -> dict:
    import urllib.request

    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    data = tmp_path_factory.mktemp("unicode") / "hub"
    token = run("hub", "init", "--data", str(data)).stdout.split()[-1]
    server = Server("hub", "serve", "--data", str(data), "--no-advertise")
    for first, last in PEOPLE:
        post(server.url, "/api/v1/customers", {"first_name": first, "last_name": last, "address": ADDRESS}, token)
    post(server.url, "/api/v1/organizers", {"name": "Förderverein Straßenbahnmuseum", "address": ADDRESS}, token)
    yield server, token
    assert server.stop() == 0
    assert "Traceback" not in server.proc.stderr.read()


@pytest.mark.parametrize("query,names", [
    ("Müller", {"Müller"}),
    ("Weiß", {"Weiß"}),
    ("weiß", {"Weiß"}),  # case folded beyond ASCII (the trigram index)
    ("ÄÖÜ äöü ß", set()),  # every word must occur: nobody has all three
    ("Öztürk Ü", {"Öztürk-Übel"}),  # a short word (LIKE) next to a long one (index)
    ("ß", {"Weiß"}),
    ("Jürgen Müller", {"Müller"}),
])
@pytest.mark.parametrize("encoding", ["raw", "percent"])
def test_customer_search_with_umlauts_and_sharp_s(hub, query, names, encoding):
    server, token = hub
    q = query.encode() if encoding == "raw" else urllib.parse.quote(query).encode()
    if encoding == "raw":
        q = q.replace(b" ", b"+")  # a space cannot be raw in a request line; + is a space in a query
    status, kind, data = raw_get(server.url, b"/api/v1/customers?q=" + q + b"&limit=50", token)
    assert status == 200 and kind.startswith("application/json"), data
    assert {c["last_name"] for c in data["items"]} == names


@pytest.mark.parametrize("target", ["/api/v1/organizers?q=Straßenbahn".encode(),
                                    b"/api/v1/organizers?q=" + urllib.parse.quote("Förderverein").encode()])
def test_other_searches_take_umlauts_too(hub, target):
    server, token = hub
    status, _, data = raw_get(server.url, target, token)
    assert status == 200 and [o["name"] for o in data["items"]] == ["Förderverein Straßenbahnmuseum"]


@pytest.mark.parametrize("q", ["%00%C3%AB%00O", "M%C3%BCller%00", "%00"])
def test_a_nul_in_a_search_is_a_clear_422_not_a_500(hub, q):
    """Found by the API fuzzer: a NUL ends an FTS5 phrase early and SQLite raised
    "unterminated string". No stored name holds a NUL, so it is refused as bad input."""
    server, token = hub
    status, kind, data = raw_get(server.url, b"/api/v1/customers?q=" + q.encode(), token)
    problem = json.loads(data) if kind.startswith("application/problem+json") else {}
    assert (status, problem.get("field")) == (422, "q"), (status, kind, data)
    assert "NUL" in problem["detail"]
