"""Two ways to drive the hub API from a script: over HTTP, or in-process.

Both send the same JSON through the same operations (decoding, roles, core rules), so the
sample-data loader proves the API can set up the full catalog either way; in-process is
just faster for large benchmark data sets.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import msgspec

from core.base.errors import TesseraError
from hub.web.api import API, DB, PREFIX, Ctx


class ApiFailure(Exception):
    def __init__(self, status: int, problem: dict) -> None:
        super().__init__(f"{status} {problem.get('detail', problem)}")
        self.status, self.problem = status, problem


class HttpClient:
    def __init__(self, base_url: str, token: str) -> None:
        self.base, self.token = base_url.rstrip("/"), token

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        return self._send(method, path, data, "application/json")

    def post_csv(self, path: str, query: dict, text: str) -> Any:
        return self._send("POST", f"{path}?{urllib.parse.urlencode(query)}", text.encode(), "text/csv")

    def _send(self, method: str, path: str, data: bytes | None, media: str) -> Any:
        req = urllib.request.Request(self.base + PREFIX + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", media)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise ApiFailure(exc.code, json.loads(exc.read() or b"{}")) from None


class LocalClient:
    """Runs operations directly against an app's database with an admin identity."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.api = app[API]

    def call(self, method: str, path: str, body: Any = None) -> Any:
        op, params = self.api.find(method, path)
        decoded = None
        if op.body is not None:
            decoded = msgspec.json.decode(json.dumps(body).encode(), type=op.body)
        return self._run(op, params, {}, decoded)

    def post_csv(self, path: str, query: dict, text: str) -> Any:
        op, params = self.api.find("POST", path)
        parsed = {p.name: p.parse(str(query[p.name])) for p in op.query if p.name in query}
        return self._run(op, params, parsed, text)

    def _run(self, op: Any, params: dict, query: dict, body: Any) -> Any:
        ctx = Ctx(self.app, self.app[DB], {"id": "local", "name": "local", "role": "admin"}, params, query, body)
        try:
            result = op.handler(ctx)
        except TesseraError as exc:
            raise ApiFailure(exc.status, {"detail": exc.detail, "field": exc.field}) from None
        return result[1] if isinstance(result, tuple) else result
