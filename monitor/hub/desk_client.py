"""What a desk uses to push alerts to the hub.

    client = DeskClient("ws://127.0.0.1:8765/ws", token, "desk-07", Path("desk-07.spool"))
    await client.start()
    await client.send(alert)          # returns once the alert is in the local spool
    await client.flush(timeout=5)     # True when the hub has acked everything
    await client.close()              # unacked alerts stay spooled for the next start

The spool is the outbox: it is bounded by `max_pending`; when full, `send()` waits for the
hub to ack (backpressure instead of silently dropping a compliance alert). In flight at
most `window` alerts; on every (re)connect everything still spooled is resent in order
and the hub drops the duplicates it already stored.
"""
from __future__ import annotations

import asyncio
import json
import logging
import random
import ssl
import uuid
from pathlib import Path
from typing import Any, Mapping

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from monitor.events import Alert

from .protocol import (
    CLOSE_BAD_HELLO,
    CLOSE_FORBIDDEN,
    CLOSE_UNAUTHORIZED,
    NAME_RE,
    ProtocolError,
    alert_body,
    dumps,
    parse_alert_body,
)
from .spool import Spool

log = logging.getLogger("monitor.hub.desk")

REFUSED = (CLOSE_UNAUTHORIZED, CLOSE_FORBIDDEN, CLOSE_BAD_HELLO)


class DeskClient:
    """Asyncio client that spools alerts and delivers them to the hub at least once."""

    def __init__(self, url: str, token: str, desk: str, spool_path: Path | str, *,
                 ssl_context: ssl.SSLContext | None = None, window: int = 100,
                 max_pending: int = 100_000, backoff_min: float = 0.2,
                 backoff_max: float = 10.0, ping_interval: float = 20.0,
                 open_timeout: float = 10.0) -> None:
        if not NAME_RE.fullmatch(desk):
            raise ValueError(f"invalid desk name {desk!r}: use letters, digits, ._:@- "
                             "(at most 64)")
        self.url, self.token, self.desk = url, token, desk
        self.ssl_context = ssl_context
        self.window, self.max_pending = window, max_pending
        self.backoff_min, self.backoff_max = backoff_min, backoff_max
        self.ping_interval, self.open_timeout = ping_interval, open_timeout
        self._spool = Spool(spool_path)
        self._new = asyncio.Event()  # something was spooled
        self._room = asyncio.Event()  # the spool has room again
        self._empty = asyncio.Event()  # everything is acked
        self._closing = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.connected = False
        self.connects = 0
        self.duplicates = 0  # acks saying the hub already had it (a resend after a lost ack)
        self.last_error: str | None = None
        self._update_events()

    # -- public API ------------------------------------------------------------------

    async def start(self) -> "DeskClient":
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"desk-{self.desk}")
        return self

    async def __aenter__(self) -> "DeskClient":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def pending(self) -> int:
        """Alerts spooled and not yet acked by the hub."""
        return self._spool.count

    async def send(self, alert: Alert | Mapping[str, Any]) -> str:
        """Spool one alert for delivery; returns its id. Raises ValueError if invalid."""
        body = alert_body(alert)
        alert_id = f"{self.desk}:{uuid.uuid4().hex}"
        try:
            parse_alert_body(alert_id, body)  # same checks as the hub: fail here, not later
        except ProtocolError as exc:
            raise ValueError(exc.message) from None
        while self._spool.count >= self.max_pending:
            await self._room.wait()
        self._spool.add(alert_id, dumps({"type": "alert", "id": alert_id, "alert": body}))
        self._update_events()
        self._new.set()
        return alert_id

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until the hub has acked every spooled alert; False on timeout."""
        try:
            await asyncio.wait_for(self._empty.wait(), timeout)
            return True
        except TimeoutError:
            return False

    async def close(self) -> None:
        """Stop sending; alerts not yet acked stay in the spool for the next start."""
        self._closing.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._spool.close()

    def rejected(self) -> list[tuple[str, str]]:
        """(id, reason) of alerts the hub refused as invalid (kept in the spool file)."""
        return self._spool.rejected()

    # -- internals -------------------------------------------------------------------

    def _update_events(self) -> None:
        for ev, on in ((self._room, self._spool.count < self.max_pending),
                       (self._empty, self._spool.count == 0)):
            ev.set() if on else ev.clear()

    async def _run(self) -> None:
        delay = self.backoff_min
        while not self._closing.is_set():
            try:
                async with connect(self.url, ssl=self.ssl_context, open_timeout=self.open_timeout,
                                   ping_interval=self.ping_interval,
                                   ping_timeout=self.ping_interval, close_timeout=2,
                                   compression=None, max_size=2**20) as ws:
                    await ws.send(dumps({"type": "hello", "role": "desk", "token": self.token,
                                         "desk": self.desk}))
                    welcome = json.loads(await asyncio.wait_for(ws.recv(), self.open_timeout))
                    if welcome.get("type") != "welcome":
                        raise ConnectionError(f"unexpected reply to hello: {welcome!r:.100}")
                    self.connected, self.connects, self.last_error = True, self.connects + 1, None
                    delay = self.backoff_min
                    await self._pump(ws)
            except ConnectionClosed as exc:
                self._note_closed(exc)
                if exc.rcvd is not None and exc.rcvd.code in REFUSED:
                    delay = self.backoff_max  # a config error: retry, but slowly
            except (OSError, TimeoutError, InvalidHandshake, InvalidURI, ValueError,
                    ConnectionError) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # never let delivery stop for good: log, back off, retry
                log.exception("desk %s: unexpected error in the sender", self.desk)
                self.last_error = f"{type(exc).__name__}: {exc}"
            finally:
                self.connected = False
            if self._closing.is_set():
                break
            log.debug("desk %s: reconnecting in ~%.1fs (%s)", self.desk, delay, self.last_error)
            try:
                await asyncio.wait_for(self._closing.wait(), delay * random.uniform(0.5, 1.0))
            except TimeoutError:
                pass
            delay = min(delay * 2, self.backoff_max)

    def _note_closed(self, exc: ConnectionClosed) -> None:
        if exc.rcvd is not None and exc.rcvd.code in REFUSED:
            self.last_error = f"hub refused desk {self.desk}: {exc.rcvd.reason}"
            log.error("%s", self.last_error)
        else:
            self.last_error = f"connection closed: {exc}"

    async def _pump(self, ws: ClientConnection) -> None:
        inflight: dict[str, int] = {}
        window_open = asyncio.Event()
        window_open.set()

        async def read_acks() -> None:
            async for raw in ws:
                msg = json.loads(raw)
                if not isinstance(msg, dict):
                    continue
                kind, ref = msg.get("type"), msg.get("id", msg.get("ref"))
                if kind in ("ack", "reject") and not isinstance(ref, str):
                    continue
                if kind == "ack":
                    self._spool.remove(ref)
                    self.duplicates += bool(msg.get("duplicate"))
                elif kind == "reject":
                    log.error("hub rejected alert %s: %s", ref, msg.get("reason"))
                    self._spool.reject(ref, str(msg.get("reason", ""))[:500])
                elif kind == "error":
                    # e.g. the hub could not store it: reconnect so it is sent again.
                    raise ConnectionError(f"hub error: {msg.get('message')}")
                else:
                    continue
                inflight.pop(ref, None)
                window_open.set()
                self._update_events()

        async def send_spooled() -> None:
            last_n = 0  # a new connection resends everything still in the spool
            while True:
                if len(inflight) >= self.window:
                    window_open.clear()
                    await window_open.wait()
                    continue
                rows = self._spool.after(last_n, self.window - len(inflight))
                if not rows:
                    self._new.clear()
                    rows = self._spool.after(last_n, self.window - len(inflight))
                    if not rows:
                        await self._new.wait()
                        continue
                for n, alert_id, frame in rows:
                    inflight[alert_id] = n
                    last_n = n
                    await ws.send(frame)

        tasks = [asyncio.create_task(read_acks()), asyncio.create_task(send_spooled())]
        try:
            # Either side ending ends the session (a clean close from the hub ends read_acks
            # without an exception); the outer loop reconnects and resends.
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                t.result()  # re-raise what ended the session
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
