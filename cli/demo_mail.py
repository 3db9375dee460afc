"""The demo's mail sink: an SMTP server on loopback that keeps every mail as a file.

Customers of the demo shop get their personalization links by mail. A demo machine has no
mail server on port 25, so the hub's mail worker would retry forever and nobody could click
a link. The demo runs this sink on the hub's event loop (aiosmtpd, one more server next to
the hub, desk, counter and gate) and points the hub's mail worker at it; each accepted mail
is written as `<data>/mail/<time>-<n>.eml`, which any mail program or text editor opens.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import os
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session

from hub.services import mail


class FolderHandler:
    """aiosmtpd handler: each message becomes one .eml file (written whole, then renamed)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._numbers = itertools.count(1)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = self.folder / f"{stamp}-{next(self._numbers):04d}.eml"
        temporary = path.with_suffix(".part")
        temporary.write_bytes(envelope.original_content or envelope.content or b"")
        os.replace(temporary, path)
        return "250 Message accepted for delivery"


class MailSink:
    """`await start(host, port)` (0: any free port), then `settings(sender)` for the hub's
    mail worker; `close()` at the end."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.host, self.port = "127.0.0.1", 0
        self._server: asyncio.base_events.Server | None = None

    async def start(self, host: str, port: int) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        handler = FolderHandler(self.folder)
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(lambda: SMTP(handler, hostname="tessera-demo"), host, port)
        except OSError as exc:
            raise RuntimeError(f"mail sink cannot listen on {host}:{port}: {exc.strerror}") from None
        self.host, self.port = host, self._server.sockets[0].getsockname()[1]

    def settings(self, sender: str) -> mail.MailSettings:
        """Mail settings that send to this sink (as if hub.toml had a [mail] section for it)."""
        return mail.MailSettings(host=self.host, port=self.port, sender=sender, timeout=5.0,
                                 source=f"the demo's mail sink ({self.folder})")

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
