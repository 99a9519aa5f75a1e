"""A resuming console subscription (used by the terminal view, the benchmark and tests).

    client = ConsoleClient(url, token, since=0)
    async for frame in client.frames():   # dicts: "alert", "acked", "caught_up", "desk"
        ...

Reconnects with backoff and resumes after the last seq it saw. A refused token is not
retried: it raises ConsoleRefused.
"""
from __future__ import annotations

import asyncio
import json
import random
import ssl
from collections.abc import AsyncIterator

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from .protocol import CLOSE_BAD_HELLO, CLOSE_FORBIDDEN, CLOSE_UNAUTHORIZED, dumps


class ConsoleRefused(RuntimeError):
    """The hub refused this console (bad token or hello); retrying will not help."""


class ConsoleClient:
    def __init__(self, url: str, token: str, since: int = 0, *, name: str = "console",
                 ssl_context: ssl.SSLContext | None = None, track_acks: bool = False,
                 dedupe: bool = True, backoff_min: float = 0.2, backoff_max: float = 5.0,
                 ping_interval: float = 20.0, open_timeout: float = 10.0,
                 max_size: int = 2**22) -> None:
        self.url, self.token, self.name = url, token, name
        self.last_seq = since
        # track_acks: acknowledgements (and withdrawals) made while it was away are replayed on
        # reconnect; the first connection starts from the hub's last one (the alerts it catches up
        # on carry their acknowledged state).
        self.track_acks = track_acks
        self.last_ack_seq: int | None = None
        self.ssl_context = ssl_context
        # dedupe=False passes on whatever the hub sends: the benchmark uses it to check
        # that the hub itself never duplicates.
        self.dedupe = dedupe
        self.backoff_min, self.backoff_max = backoff_min, backoff_max
        self.ping_interval, self.open_timeout, self.max_size = ping_interval, open_timeout, max_size
        self.epoch: str | None = None  # the hub database our seqs belong to
        self.connects = 0
        self.last_error: str | None = None
        self._ws: ClientConnection | None = None
        self._closing = asyncio.Event()

    async def frames(self) -> AsyncIterator[dict]:
        """Yield alert/acked/caught_up/error frames, plus "disconnected" (with the retry
        delay) and "reset" (the hub's database changed; seqs start over), until close()."""
        delay = self.backoff_min
        while not self._closing.is_set():
            try:
                async with connect(self.url, ssl=self.ssl_context, open_timeout=self.open_timeout,
                                   ping_interval=self.ping_interval,
                                   ping_timeout=self.ping_interval, close_timeout=2,
                                   compression=None, max_size=self.max_size) as ws:
                    self._ws = ws
                    hello = {"type": "hello", "role": "console", "token": self.token,
                             "since": self.last_seq, "name": self.name}
                    if self.last_ack_seq is not None:
                        hello["ack_since"] = self.last_ack_seq
                    if self.epoch is not None:
                        hello["epoch"] = self.epoch
                    await ws.send(dumps(hello))
                    self.connects += 1
                    async for raw in ws:
                        msg = json.loads(raw)
                        kind = msg.get("type")
                        if kind == "welcome":
                            delay = self.backoff_min
                            self.last_error = None
                            self.epoch = msg.get("epoch")
                            if self.track_acks and self.last_ack_seq is None:
                                self.last_ack_seq = int(msg.get("last_ack_seq") or 0)
                            if msg.get("reset"):
                                # Another database answers (it was replaced): start over,
                                # and tell the consumer its view is from the old one.
                                self.last_seq = msg["since"]
                                if self.last_ack_seq is not None:
                                    self.last_ack_seq = 0
                                yield {"type": "reset", "since": self.last_seq}
                            continue
                        if kind == "alert":
                            seq = msg.get("seq", 0)
                            if self.dedupe and seq <= self.last_seq:
                                continue
                            self.last_seq = max(self.last_seq, seq)
                        elif kind == "acked" and self.last_ack_seq is not None:
                            self.last_ack_seq = max(self.last_ack_seq, msg.get("ack_seq", 0))
                        yield msg
            except ConnectionClosed as exc:
                if exc.rcvd is not None and exc.rcvd.code in (
                        CLOSE_UNAUTHORIZED, CLOSE_FORBIDDEN, CLOSE_BAD_HELLO):
                    raise ConsoleRefused(f"hub refused console: {exc.rcvd.reason} "
                                         f"(code {exc.rcvd.code})") from None
                self.last_error = f"connection closed: {exc}"
            except InvalidURI as exc:
                raise ConsoleRefused(f"bad hub URL: {exc}") from None
            except (OSError, TimeoutError, InvalidHandshake, ValueError) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
            finally:
                self._ws = None
            if self._closing.is_set():
                break
            yield {"type": "disconnected", "reason": self.last_error or "closed",
                   "retry_in": delay}
            try:
                await asyncio.wait_for(self._closing.wait(), delay * random.uniform(0.5, 1.0))
            except TimeoutError:
                pass
            delay = min(delay * 2, self.backoff_max)

    async def ack(self, seq: int) -> None:
        """Acknowledge alert `seq` (needs a live connection)."""
        if self._ws is None:
            raise ConnectionError("not connected to the hub")
        await self._ws.send(dumps({"type": "ack_alert", "seq": seq}))

    async def close(self) -> None:
        self._closing.set()
        if self._ws is not None:
            await self._ws.close()
