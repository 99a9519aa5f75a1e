"""The supervisor hub: one websockets server for desks and consoles, plus HTTP routes.

Desks push alerts; each is committed to the store and only then acked. Consoles say the
last seq they saw, get everything after it, then live alerts. A single writer task commits
alerts in batches and fans each new one out to every live console in the same synchronous
step, and a console's catch-up query and its registration for live alerts also happen
without an await in between, so the history/live handover has no gap and no overlap.

Desks also report their state (idle / on a call, last finished call) and send heartbeats.
The hub keeps that in memory (the last finished call also in the store, so it survives a
restart), serves it at GET /api/desks and pushes a "desk" frame to consoles on each change.
When the hub takes transcripts (--transcripts live), desks send each recognised line of their
current call; the hub stores it (pruned with --retain-days), keeps each side's last words
for the board and fans the line out to consoles. Phone, ID-card and bank-card numbers are
masked here too unless --redact off (a desk should have done it; the hub does not trust it).

Hostile clients: connections that have not authenticated yet sit in a bounded pool (per
source address and overall) with one deadline from TCP accept, so they cannot take the
room kept for authenticated desks and consoles; failed authentications block the address
for a growing time; each desk has a rate and a size quota, and over-quota alerts are
rejected with a reason; a failed write is rolled back and never shows a seq to anyone.
"""
from __future__ import annotations

import asyncio
import hmac
import http
import ipaddress
import logging
import math
import ssl
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, Self, cast
from urllib.parse import parse_qs

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from monitor import labels
from monitor.redact import redact

from .auth import Authenticator, bearer_token, origin_allowed
from .metrics import CONTENT_TYPE as METRICS_TYPE
from .metrics import HubMetrics, Snapshot
from .options import HubOptions
from .protocol import (
    CLOSE_BAD_HELLO,
    CLOSE_HELLO_TIMEOUT,
    CLOSE_POLICY,
    CLOSE_TOO_SLOW,
    CLOSE_TRY_AGAIN,
    CLOSE_UNAUTHORIZED,
    MAX_CALL_ID,
    MAX_NOTE,
    MAX_RULE,
    MAX_UNIX,
    NAME_RE,
    WITHDRAW_WINDOW_S,
    AckAlert,
    Alert,
    AlertMsg,
    DeskStatus,
    Heartbeat,
    Hello,
    LastCall,
    ProtocolError,
    StatusMsg,
    TranscriptLine,
    TranscriptMsg,
    Withdraw,
    decode,
    dumps,
    error,
    parse_message,
)
from .store import AlertQuery, AlertStore, InsertResult, StoreError

log = logging.getLogger("monitor.hub")

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
# Fixed routes only: no path from a request ever reaches the filesystem.
STATIC_ROUTES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/static/console.js": ("console.js", "text/javascript; charset=utf-8"),
    "/static/console.css": ("console.css", "text/css; charset=utf-8"),
}
PAGE_HEADERS = [
    ("Content-Security-Policy",
     "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
     "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
]
CATCH_UP_PAGE = 500
WRITE_BATCH = 512
API_MAX_LIMIT = 1000
STALE_AFTER = 3  # missed heartbeats before a desk shows stale
DESK_SWEEP = 0.5  # seconds between looks for desks whose heartbeat became overdue
PRUNE_EVERY = 3600.0  # seconds between --retain-days sweeps
ATTENTION = ("critical", "major", "escalation")  # severities that mark a call on the board
SEARCH_MAX = 500
SINGLE_HEADERS = ("Host", "Origin", "Authorization", "Upgrade", "Connection",
                  "Sec-WebSocket-Key", "Sec-WebSocket-Version", "Content-Length")


class HubConfigError(RuntimeError):
    """The hub cannot start with these options (one clear line for the user)."""


class _Bucket:
    """Token bucket: `rate` per second, holding at most `burst`."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = burst
        self.at = time.monotonic()

    def take(self, n: float = 1.0) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False

    def refund(self, n: float = 1.0) -> None:
        self.tokens = min(self.burst, self.tokens + n)


@dataclass
class _Failures:
    """Failed authentications from one address."""

    count: int = 0
    first: float = 0.0
    block: float = 0.0  # length of the last block
    blocked_until: float = 0.0


@dataclass
class _Pending:
    desk: str
    record: Alert
    done: asyncio.Future[InsertResult]


@dataclass
class _Desk:
    """What the hub knows about one desk (last_call is also in the store)."""

    name: str
    heartbeat: float  # seconds between its heartbeats, as the desk announced
    sessions: int = 0  # open websockets: a reconnect can overlap the old, half-dead one
    last_seen: float | None = None  # wall clock of its last frame
    seen_mono: float | None = None
    status: DeskStatus = field(default_factory=DeskStatus)  # without last_call
    last_call: LastCall | None = None
    last_alert: dict | None = None
    shown_stale: bool = True  # `stale` in the last desk frame pushed to consoles
    alerts: _Bucket | None = None  # quotas, made on first use
    volume: _Bucket | None = None
    lines: _Bucket | None = None
    last_words: dict[str, str] = field(default_factory=dict)  # role -> current call's last line
    # The current call's unacknowledged major/critical/escalation alerts: seq -> severity.
    attention: dict[int, str] = field(default_factory=dict)

    def stale(self, now: float) -> bool:
        return self.seen_mono is None or now - self.seen_mono > STALE_AFTER * self.heartbeat

    def to_json(self, now: float) -> dict:
        s = self.status
        return {"desk": self.name, "connected": self.sessions > 0, "stale": self.stale(now),
                "last_seen": self.last_seen, "heartbeat": self.heartbeat,
                "on_call": s.on_call, "call_id": s.call_id, "call_started": s.call_started,
                "profile": s.profile, "peer": s.peer, "softphone": s.softphone,
                "score": s.score, "last_words": dict(self.last_words),
                "attention": len(self.attention),
                "escalations": sum(1 for s in self.attention.values() if s == "escalation"),
                "last_alert": self.last_alert,
                "last_call": self.last_call.to_wire() if self.last_call else None}


class _Console:
    """A subscribed console: a bounded queue of frames to send, drained by one task."""

    def __init__(self, ws: ServerConnection, name: str, size: int) -> None:
        self.ws = ws
        self.name = name  # recorded on its acknowledgements
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=size)
        self.overflowed = False
        self.sender: asyncio.Task | None = None

    def offer(self, frame: str) -> bool:
        """Queue a frame; on overflow stop the sender (the session then closes with 4429)."""
        if self.overflowed:
            return False
        try:
            self.queue.put_nowait(frame)
            return True
        except asyncio.QueueFull:
            # Dropping the console (not the alert) is safe: the alert is in the store and
            # the console resumes from its last seq when it reconnects.
            self.overflowed = True
            if self.sender is not None:
                self.sender.cancel()
            return False


def _response(status: int, body: bytes, content_type: str,
              extra: list[tuple[str, str]] | None = None) -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))),
                       ("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"),
                       ("Connection", "close")])
    for k, v in extra or []:
        headers[k] = v
    return Response(status, http.HTTPStatus(status).phrase, headers, body)


def _json(status: int, obj: dict, extra: list[tuple[str, str]] | None = None) -> Response:
    return _response(status, dumps(obj).encode(), "application/json; charset=utf-8", extra)


def _problem(status: int, message: str) -> Response:
    extra = [("WWW-Authenticate", 'Bearer realm="monitor-hub"')] if status == 401 else None
    return _json(status, {"error": message}, extra)


def _too_many(retry_after: float) -> Response:
    return _json(429, {"error": "too many failed authentications from this address; "
                                "try again later"},
                 [("Retry-After", str(max(1, round(retry_after))))])


def tls_context(certfile: Path, keyfile: Path | None) -> ssl.SSLContext:
    for f in (certfile, keyfile):
        if f is not None:
            try:
                Path(f).open("rb").close()  # ssl's own errors do not name the file
            except OSError as exc:
                raise HubConfigError(f"cannot read TLS file {f}: {exc.strerror}") from None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(certfile), str(keyfile) if keyfile else None)
    except (ssl.SSLError, OSError) as exc:
        what = getattr(exc, "reason", None) or exc
        raise HubConfigError(f"cannot load TLS certificate {certfile}"
                             f"{' / key ' + str(keyfile) if keyfile else ''}: not a PEM "
                             f"certificate with its private key, or they do not match ({what})"
                             ) from None
    return ctx


class Hub:
    """The hub. `async with Hub(options) as hub:` or `await hub.start()` / `await hub.close()`."""

    def __init__(self, options: HubOptions) -> None:
        self.options = options
        self.store: AlertStore | None = None
        self._auth: Authenticator | None = None
        self._server: Server | None = None
        self._writer: asyncio.Task | None = None
        self._ingest: asyncio.Queue[_Pending] | None = None
        self._consoles: set[_Console] = set()
        self._desks: dict[str, _Desk] = {}
        self._desk_watch: asyncio.Task | None = None
        self._static: dict[str, bytes] = {}
        self._port = options.port
        self._pruner: asyncio.Task | None = None
        self.problem: str | None = None  # what the store found wrong at start, if anything
        # Connections not authenticated yet -> (address, accepted at), oldest first.
        self._pre: dict[ServerConnection, tuple[str, float]] = {}
        self._pre_by_addr: dict[str, dict[ServerConnection, float]] = {}
        self._accepted: dict[ServerConnection, float] = {}
        self._authed = 0  # authenticated sessions open
        self._failures: dict[str, _Failures] = {}
        self.refused_preauth = 0  # connections dropped by the pre-auth limits
        self.metrics = HubMetrics(self._snapshot)

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        o = self.options
        try:
            self._auth = Authenticator(*o.resolved_tokens(), o.console_names)
        except ValueError as exc:
            raise HubConfigError(str(exc)) from None
        ctx = tls_context(o.certfile, o.keyfile) if o.certfile else None
        for route, (name, _) in STATIC_ROUTES.items():
            try:
                self._static[route] = (STATIC_DIR / name).read_bytes()
            except OSError as exc:
                raise HubConfigError(f"console page file missing: {exc.filename}") from None
        try:
            self.store = AlertStore(o.db, o.sync)
        except StoreError as exc:
            raise HubConfigError(str(exc)) from None
        self.problem = self.store.problem
        self._load_desks()
        self._ingest = asyncio.Queue(maxsize=o.ingest_queue)
        self._writer = asyncio.create_task(self._write_loop(), name="hub-writer")
        self._desk_watch = asyncio.create_task(self._watch_desks(), name="hub-desks")
        try:
            self._server = await serve(
                self._handler, o.host, o.port, ssl=ctx,
                process_request=self._process_request,
                max_size=o.max_message_bytes, max_queue=16,
                ping_interval=o.ping_interval, ping_timeout=o.ping_timeout,
                open_timeout=o.hello_timeout, close_timeout=o.close_timeout,
                # Local network, small JSON: deflate would cost CPU and per-connection memory.
                compression=None, server_header=None,
                create_connection=self._connection_class())
        except OSError as exc:
            await self._stop_writer()
            self.store.close()
            reason = exc.strerror or str(exc)
            raise HubConfigError(f"cannot listen on {o.host}:{o.port}: {reason}") from None
        self._port = self.port
        if o.retain_days is not None:
            self._pruner = asyncio.create_task(self._prune_loop(), name="hub-prune")
        if not o.is_loopback():
            log.warning("listening on %s (not loopback)%s", o.host,
                        "" if o.tls else " without TLS: tokens and alerts travel in clear")
        log.info("hub listening on %s (db %s, last seq %d, epoch %s, %s); console page "
                 "%s/#token=...", self.url, o.db, self.store.last_seq(), self.store.epoch,
                 self.store.durability(), self.http_url)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()  # closes live connections with 1001 (going away)
            await self._server.wait_closed()
            self._server = None
        await self._stop_writer()
        if self.store is not None:
            self.store.close()
            self.store = None

    async def _stop_writer(self) -> None:
        if self._pruner is not None:
            self._pruner.cancel()
            await asyncio.gather(self._pruner, return_exceptions=True)
            self._pruner = None
        if self._desk_watch is not None:
            self._desk_watch.cancel()
            await asyncio.gather(self._desk_watch, return_exceptions=True)
            self._desk_watch = None
        if self._writer is not None:
            self._writer.cancel()
            try:
                await self._writer
            except asyncio.CancelledError:
                pass
            self._writer = None
        while self._ingest is not None and not self._ingest.empty():
            p = self._ingest.get_nowait()
            if not p.done.done():
                p.done.set_exception(StoreError("hub is shutting down"))

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def serve_forever(self) -> None:
        assert self._server is not None
        await self._server.serve_forever()

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0); kept after close()."""
        if self._server is not None:
            self._port = self._server.sockets[0].getsockname()[1]
        return self._port

    @property
    def url(self) -> str:
        host = self.options.host if ":" not in self.options.host else f"[{self.options.host}]"
        return f"{'wss' if self.options.tls else 'ws'}://{host}:{self.port}/ws"

    @property
    def http_url(self) -> str:
        host = self.options.host if ":" not in self.options.host else f"[{self.options.host}]"
        return f"{'https' if self.options.tls else 'http'}://{host}:{self.port}"

    # -- storing and fan-out ---------------------------------------------------------

    async def _write_loop(self) -> None:
        assert self._ingest is not None and self.store is not None
        while True:
            batch = [await self._ingest.get()]
            while len(batch) < WRITE_BATCH and not self._ingest.empty():
                batch.append(self._ingest.get_nowait())
            self._commit(batch)

    def _commit(self, batch: list[_Pending]) -> None:
        """Store a batch and fan it out. A batch that fails is rolled back (no one saw any
        of it) and retried one alert at a time, so one alert the store refuses cannot hold
        up the other desks' alerts."""
        assert self.store is not None
        try:
            with self.metrics.write_seconds.time():
                results = self.store.insert_many((p.desk, p.record) for p in batch)
        except StoreError as exc:
            if len(batch) > 1:
                for p in batch:
                    self._commit([p])
                return
            log.error("%s (desk %s, alert %s)", exc, batch[0].desk, batch[0].record.id)
            if not exc.transient:  # a failed write is resent by the desk and stored then: not refused
                self.metrics.alerts_rejected.inc()
            if not batch[0].done.done():
                batch[0].done.set_exception(exc)
            return
        except Exception:  # a bug: keep the writer alive, desks get an error and resend
            log.exception("storing %d alerts failed", len(batch))
            for p in batch:
                if not p.done.done():
                    p.done.set_exception(StoreError("internal error"))
            return
        # Same synchronous step as the commit: see the module docstring.
        for p, res in zip(batch, results, strict=True):
            if not res.duplicate:
                self.metrics.alerts_stored.inc()
                a = res.alert
                d = self._desk(a.desk)
                d.last_alert = {"seq": a.seq, "at": a.received, "rule": a.rule}
                self._broadcast(dumps(a.to_message()))
                if a.severity in ATTENTION and a.call_id == d.status.call_id and a.seq:
                    d.attention[a.seq] = a.severity
                    self._push_desk(d)
            if not p.done.done():
                p.done.set_result(res)

    def _broadcast(self, frame: str) -> None:
        for console in list(self._consoles):
            if not console.offer(frame):
                self._consoles.discard(console)

    # -- desk state ------------------------------------------------------------------

    def _load_desks(self) -> None:
        assert self.store is not None
        for name, call in self.store.last_calls().items():
            self._desk(name).last_call = call
        for name, (seq, at, rule) in self.store.last_alerts().items():
            self._desk(name).last_alert = {"seq": seq, "at": at, "rule": rule}

    def _desk(self, name: str) -> _Desk:
        d = self._desks.get(name)
        if d is None:
            d = self._desks[name] = _Desk(name, self.options.desk_heartbeat)
        return d

    def _desk_frame(self, d: _Desk, now: float) -> str:
        return dumps({"type": "desk", **d.to_json(now)})

    def _push_desk(self, d: _Desk) -> None:
        now = time.monotonic()
        d.shown_stale = d.stale(now)
        self._broadcast(self._desk_frame(d, now))

    def _seen(self, d: _Desk) -> None:
        d.last_seen, d.seen_mono = time.time(), time.monotonic()
        if d.shown_stale:
            self._push_desk(d)

    def _set_status(self, d: _Desk, status: DeskStatus) -> None:
        assert self.store is not None
        call, new_call = status.last_call, False
        # A desk resends its whole state on every reconnect: store the call only once.
        if call is not None and call != d.last_call:
            d.last_call, new_call = call, True
            try:
                self.store.save_last_call(d.name, call)
            except StoreError as exc:  # still shown; only a hub restart would forget it
                log.error("%s", exc)
        current = replace(status, last_call=None)
        if current.call_id != d.status.call_id:
            # Another call (or none): its own last words and alerts, including any that
            # arrived before this status did.
            d.last_words = {}
            d.attention = {} if current.call_id is None else \
                self.store.unacked(d.name, current.call_id, ATTENTION)
        if new_call or current != d.status:
            d.status = current
            self._push_desk(d)

    def _transcript(self, d: _Desk, line: TranscriptLine) -> None:
        """A line of a desk's current call: stored, kept as its side's last words, shown."""
        assert self.store is not None
        if not self.options.transcripts_live:
            raise ProtocolError("transcripts_off", "this hub does not take transcripts")
        if line.call_id != d.status.call_id:
            raise ProtocolError("not_on_call", "transcript lines are taken for the desk's "
                                               "current call only")
        if d.lines is None:
            rate = self.options.transcript_rate
            d.lines = _Bucket(rate, rate * 10)
        if not d.lines.take():
            raise ProtocolError("over_quota", "too many transcript lines")
        text = redact(line.text) if self.options.redact else line.text
        line = replace(line, desk=d.name, text=text, received=time.time())
        try:
            self.store.add_transcript(line)
        except StoreError as exc:
            log.error("%s", exc)
            return
        d.last_words[line.role] = text[-200:]
        self._broadcast(dumps(line.to_message()))

    async def _watch_desks(self) -> None:
        # Staleness is the absence of frames, so nothing else would ever announce it.
        while True:
            await asyncio.sleep(DESK_SWEEP)
            now = time.monotonic()
            for d in list(self._desks.values()):
                if d.stale(now) != d.shown_stale:
                    self._push_desk(d)

    async def _prune_loop(self) -> None:
        assert self.store is not None and self.options.retain_days is not None
        while True:
            before = time.time() - self.options.retain_days * 86400.0
            total = 0
            try:
                while n := self.store.prune(before):
                    total += n
                    await asyncio.sleep(0)  # small steps: desks and consoles keep going
                lines = self.store.prune_transcripts(before)
                if lines:
                    log.info("deleted %d transcript lines older than %g days", lines,
                             self.options.retain_days)
            except StoreError as exc:
                log.error("%s", exc)
            if total:
                log.info("deleted %d alerts older than %g days", total,
                         self.options.retain_days)
            await asyncio.sleep(PRUNE_EVERY)

    # -- admission: connections before they authenticate --------------------------------

    def _connection_class(self) -> type[ServerConnection]:
        hub = self

        class HubConnection(ServerConnection):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                super().connection_made(transport)
                hub._admit(self, transport)

            def connection_lost(self, exc: Exception | None) -> None:
                hub._forget(self)
                super().connection_lost(exc)

        return HubConnection

    def _admit(self, conn: ServerConnection, transport: asyncio.BaseTransport) -> None:
        """A TCP connection was accepted: put it in the pre-auth pool, making room by
        dropping the oldest waiting one (if it has waited long enough: a real client
        authenticates in milliseconds) or else refusing this one."""
        peer = transport.get_extra_info("peername")
        addr = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        now = time.monotonic()
        o = self.options
        same = self._pre_by_addr.setdefault(addr, {})
        pools: tuple[tuple[dict[ServerConnection, float], int], ...] = (
            (same, o.max_preauth_per_address),
            ({c: at for c, (_, at) in self._pre.items()} if len(self._pre) >= o.max_preauth else {}, o.max_preauth))
        for pool, limit in pools:
            if len(pool) >= limit:
                oldest = next(iter(pool))  # dicts keep insertion order: the longest waiting
                self.refused_preauth += 1
                if now - pool[oldest] > o.preauth_evict_after:
                    self._forget(oldest)
                    cast(asyncio.Transport, oldest.transport).abort()
                else:
                    if not same:
                        self._pre_by_addr.pop(addr, None)
                    log.debug("refused a connection from %s: too many waiting to "
                              "authenticate", addr)
                    cast(asyncio.Transport, transport).abort()
                    return
        self._pre[conn] = (addr, now)
        same[conn] = now
        self._accepted[conn] = now

    def _forget(self, conn: ServerConnection) -> None:
        """Leave the pre-auth pool (authenticated, or gone)."""
        entry = self._pre.pop(conn, None)
        self._accepted.pop(conn, None)
        if entry is not None:
            same = self._pre_by_addr.get(entry[0])
            if same is not None:
                same.pop(conn, None)
                if not same:
                    del self._pre_by_addr[entry[0]]

    @staticmethod
    def _address(conn: ServerConnection) -> str:
        peer = conn.remote_address
        return str(peer[0]) if isinstance(peer, tuple) and peer else "?"

    def _blocked(self, addr: str) -> float:
        """Seconds this address is still blocked for failed authentications (0: not)."""
        f = self._failures.get(addr)
        return 0.0 if f is None else max(0.0, f.blocked_until - time.monotonic())

    def _auth_failed(self, addr: str) -> None:
        self.metrics.auth_failures.inc()
        o = self.options
        now = time.monotonic()
        if len(self._failures) > 10000:  # many addresses: forget the ones that calmed down
            for a in [a for a, f in self._failures.items()
                      if f.blocked_until < now and now - f.first > o.auth_failure_window]:
                del self._failures[a]
        f = self._failures.setdefault(addr, _Failures(first=now))
        if now - f.first > o.auth_failure_window and f.blocked_until < now:
            f.count, f.first = 0, now
        f.count += 1
        if f.count >= o.auth_failures:
            f.block = min(o.auth_block_max, max(1.0, f.block * 2))
            f.blocked_until = now + f.block
            log.warning("%d failed authentications from %s: blocked for %g s", f.count, addr,
                        f.block)

    def _auth_ok(self, addr: str) -> None:
        self._failures.pop(addr, None)

    # -- websocket sessions ----------------------------------------------------------

    async def _handler(self, ws: ServerConnection) -> None:
        counted = False
        try:
            hello = await self._hello(ws)
            if hello is None:
                return
            self._forget(ws)
            if self._authed >= self.options.max_connections:
                await ws.close(CLOSE_TRY_AGAIN, "hub full, try again later")
                return
            self._authed += 1
            counted = True
            if hello.role == "desk":
                await self._desk_session(ws, hello)
            else:
                await self._console_session(ws, hello)
        except ConnectionClosed:
            pass
        except Exception:  # one client's surprise must never take the hub down
            log.exception("connection from %s failed", ws.remote_address)
            try:
                await ws.close(1011, "internal error")
            except Exception:
                pass
        finally:
            self._forget(ws)
            if counted:
                self._authed -= 1

    async def _hello(self, ws: ServerConnection) -> Hello | None:
        assert self._auth is not None
        addr = self._address(ws)
        # One deadline from TCP accept: the handshake time counts against the hello.
        accepted = self._accepted.get(ws, time.monotonic())
        left = self.options.hello_timeout - (time.monotonic() - accepted)
        try:
            raw = await asyncio.wait_for(ws.recv(), max(0.0, left))
        except TimeoutError:
            await ws.close(CLOSE_HELLO_TIMEOUT, "no hello in time")
            return None
        try:
            msg = parse_message(raw)
        except ProtocolError as exc:
            self._auth_failed(addr)
            code = CLOSE_UNAUTHORIZED if exc.code == "missing_token" else CLOSE_BAD_HELLO
            await ws.close(code, ("missing token" if code == CLOSE_UNAUTHORIZED
                                  else f"bad hello: {exc.message}")[:120])
            return None
        if not isinstance(msg, Hello):
            self._auth_failed(addr)
            await ws.close(CLOSE_BAD_HELLO, "the first message must be a hello")
            return None
        res = self._auth.check(msg.role, msg.token, msg.desk)
        if not res.ok:
            self._auth_failed(addr)
            log.warning("refused %s from %s: %s", msg.role, addr, res.detail)
            await ws.close(res.code, res.reason)
            return None
        self._auth_ok(addr)
        if res.name is not None:  # the token says who this is; the hello may not override it
            msg = replace(msg, name=res.name)
        return msg

    async def _desk_session(self, ws: ServerConnection, hello: Hello) -> None:
        assert self._ingest is not None and self.store is not None and hello.desk
        desk = hello.desk
        log.info("desk %s connected from %s", desk, ws.remote_address)
        await ws.send(dumps({"type": "welcome", "role": "desk", "desk": desk,
                             "last_seq": self.store.last_seq(), "status": True,
                             "transcripts": self.options.transcripts_live,
                             "redact": self.options.redact, "withdraw": True}))
        d = self._desk(desk)
        d.sessions += 1
        d.heartbeat = hello.heartbeat or self.options.desk_heartbeat
        d.last_seen, d.seen_mono = time.time(), time.monotonic()
        self._push_desk(d)
        try:
            await self._desk_frames(ws, d)
        finally:
            d.sessions -= 1
            self._push_desk(d)
        log.info("desk %s disconnected", desk)

    def _over_quota(self, d: _Desk, size: int) -> str | None:
        """Charge one alert of `size` bytes to the desk; the reason if it is over quota."""
        o = self.options
        if d.alerts is None or d.volume is None:
            d.alerts = _Bucket(o.desk_rate, max(1.0, float(o.desk_burst)))
            d.volume = _Bucket(o.desk_bytes_per_day / 86400.0, float(o.desk_bytes_per_day))
        if not d.alerts.take():
            return (f"over quota: desk {d.name} sent more than {o.desk_rate:g} alerts/s "
                    f"(burst {o.desk_burst})")
        if not d.volume.take(size):
            d.alerts.refund()
            return (f"over quota: desk {d.name} sent more than {o.desk_bytes_per_day} bytes "
                    "of alerts in a day")
        return None

    async def _desk_frames(self, ws: ServerConnection, d: _Desk) -> None:
        assert self._ingest is not None and self.store is not None
        desk = d.name
        errors = 0
        loop = asyncio.get_running_loop()
        async for raw in ws:
            self._seen(d)
            try:
                msg = parse_message(raw)
                if isinstance(msg, StatusMsg):
                    if msg.desk is not None and msg.desk != desk:
                        raise ProtocolError("not_allowed", "a desk may only report its own "
                                                           "status")
                    self._set_status(d, msg.status)
                    continue
                if isinstance(msg, Heartbeat):
                    continue
                if isinstance(msg, TranscriptMsg):
                    self._transcript(d, msg.line)
                    continue
                if isinstance(msg, Withdraw):
                    await ws.send(self._withdraw(d, msg))
                    continue
                if not isinstance(msg, AlertMsg):
                    raise ProtocolError("not_allowed", "a desk may only send alerts, withdrawals, "
                                                       "status, transcripts and heartbeats")
            except ProtocolError as exc:
                errors += 1
                if exc.ref is not None:
                    # The frame was readable but the alert is invalid: tell the desk to stop
                    # resending it, or it would retry it forever.
                    (self.metrics.withdrawals_rejected if _kind(raw) == "withdraw" else self.metrics.alerts_rejected).inc()
                    await ws.send(dumps({"type": "reject", "id": exc.ref, "code": exc.code,
                                         "reason": exc.message}))
                else:
                    await ws.send(error(exc.code, exc.message))
                if errors > self.options.max_errors:
                    await ws.close(CLOSE_POLICY, "too many invalid messages")
                    return
                continue
            size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "replace"))
            over = self._over_quota(d, size)
            if over is not None and (old := self.store.find(desk, msg.record.id or "")):
                # A resend of an alert already stored: ack it, a reject would be a lie.
                await ws.send(dumps({"type": "ack", "id": msg.record.id, "seq": old.seq,
                                     "duplicate": True}))
                continue
            if over is not None:
                # Refused, not dropped: the desk logs the reason and keeps the alert.
                self.metrics.alerts_rejected.inc()
                await ws.send(dumps({"type": "reject", "id": msg.record.id,
                                     "code": "over_quota", "reason": over}))
                continue
            record = msg.record
            if self.options.redact:
                record = replace(record, text=redact(record.text),
                                 evidence=redact(record.evidence))
            pending = _Pending(desk, record, loop.create_future())
            await self._ingest.put(pending)  # bounded: waits (and stops reading) when full
            try:
                res = await pending.done
            except StoreError as exc:
                assert d.alerts is not None and d.volume is not None
                d.alerts.refund()
                d.volume.refund(size)
                if not exc.transient:
                    # The store can never take this alert: tell the desk to stop resending.
                    errors += 1
                    await ws.send(dumps({"type": "reject", "id": msg.record.id,
                                         "code": "not_storable",
                                         "reason": "the hub cannot store this alert"}))
                    if errors > self.options.max_errors:
                        await ws.close(CLOSE_POLICY, "too many invalid messages")
                        return
                    continue
                await ws.send(error("store_failed", "not stored, resend later",
                                    ref=msg.record.id))
                continue
            if res.duplicate:  # a resend after a lost ack costs no quota
                assert d.alerts is not None and d.volume is not None
                d.alerts.refund()
                d.volume.refund(size)
            await ws.send(dumps({"type": "ack", "id": msg.record.id, "seq": res.alert.seq,
                                 "duplicate": res.duplicate}))

    async def _console_session(self, ws: ServerConnection, hello: Hello) -> None:
        assert self.store is not None
        console = _Console(ws, hello.name, self.options.queue_size)
        log.info("console %s connected from %s (since %d)", hello.name, ws.remote_address,
                 hello.since)
        last_seq, last_ack_seq = self.store.last_seq(), self.store.last_ack_seq()
        since, ack_since = hello.since, hello.ack_since
        reset = hello.epoch is not None and hello.epoch != self.store.epoch
        if reset:
            since, ack_since = 0, 0  # its seqs are from another database: start over
        if hello.tail is not None:
            since = max(since, last_seq - hello.tail)
        # Without ack_since, acks from this moment on are replayed: the alerts sent in the
        # catch-up already carry their acked state as of the moment they are read.
        if ack_since is None:
            ack_since = last_ack_seq
        await ws.send(dumps({"type": "welcome", "role": "console", "last_seq": last_seq,
                             "last_ack_seq": last_ack_seq, "since": since,
                             "epoch": self.store.epoch, "reset": reset}))
        console.sender = asyncio.create_task(self._console_sender(console, since, ack_since))
        reader = asyncio.create_task(self._console_reader(console))
        try:
            await asyncio.wait({console.sender, reader}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._consoles.discard(console)
            for t in (console.sender, reader):
                t.cancel()
            await asyncio.gather(console.sender, reader, return_exceptions=True)
        if console.overflowed:
            log.warning("console %s too slow (%d queued): disconnected, it will resume",
                        hello.name, console.queue.qsize())
            await ws.close(CLOSE_TOO_SLOW, "too slow: reconnect and resume from your last seq")
        log.info("console %s disconnected", hello.name)

    async def _console_sender(self, console: _Console, last: int, ack_last: int) -> None:
        assert self.store is not None
        ws = console.ws
        while True:
            rows = self.store.fetch_after(last, CATCH_UP_PAGE)
            acks = self.store.acks_after(ack_last, CATCH_UP_PAGE)
            if not rows and not acks:
                # No await since the empty fetch: nothing was committed in between, so the
                # live stream continues exactly after `last`.
                self._consoles.add(console)
                console.offer(dumps({"type": "caught_up", "seq": last}))
                # Every desk's state now, in the same step: later changes follow as frames.
                now = time.monotonic()
                for name in sorted(self._desks):
                    console.offer(self._desk_frame(self._desks[name], now))
                break
            for r in rows:
                await ws.send(dumps(r.to_message()))
                last = r.seq or last  # stored alerts always have one
            for a in acks:
                await ws.send(dumps(a.to_message()))
                ack_last = a.ack_seq
        while True:
            await ws.send(await console.queue.get())

    async def _console_reader(self, console: _Console) -> None:
        assert self.store is not None
        errors = 0
        async for raw in console.ws:
            try:
                msg = parse_message(raw)
                if not isinstance(msg, AckAlert):
                    raise ProtocolError("not_allowed", "a console may only send ack_alert")
            except ProtocolError as exc:
                errors += 1
                console.offer(error(exc.code, exc.message))
                if errors > self.options.max_errors:
                    await console.ws.close(CLOSE_POLICY, "too many invalid messages")
                    return
                continue
            self._acknowledge(msg.seq, console.name, msg.note, reply_to=console)

    def _withdraw(self, d: _Desk, msg: Withdraw) -> str:
        """A desk takes back one of its own alerts; the frame to answer it with. Frames from one
        desk are handled in order, so an alert sent before its withdrawal is stored by now."""
        assert self.store is not None
        alert = self.store.find(d.name, msg.alert)
        if alert is None or alert.seq is None:
            # Another desk's alert, one the hub refused, or one pruned: never withdrawable.
            self.metrics.withdrawals_rejected.inc()
            return dumps({"type": "reject", "id": msg.id, "code": "no_such_alert",
                          "reason": f"this desk has no alert {msg.alert!r} at the hub"})
        if alert.withdrawn is None and time.time() - (alert.received or 0.0) > WITHDRAW_WINDOW_S:
            self.metrics.withdrawals_rejected.inc()
            return dumps({"type": "reject", "id": msg.id, "code": "too_late",
                          "reason": f"alert {msg.alert!r} was stored more than {WITHDRAW_WINDOW_S / 3600:g} h ago"})
        try:
            rec, new = self.store.withdraw(alert.seq, msg.reason)
        except StoreError as exc:
            log.error("%s (desk %s, withdrawal %s)", exc, d.name, msg.id)
            return error("store_failed", "withdrawal not stored, resend later", ref=msg.id)
        if rec is not None and new:
            self.metrics.alerts_withdrawn.inc()
            self._broadcast(dumps(rec.to_message()))
            if d.attention.pop(alert.seq, None) is not None:
                self._push_desk(d)
        return dumps({"type": "ack", "id": msg.id, "seq": alert.seq, "duplicate": not new})

    def _acknowledge(self, seq: int, by: str, note: str | None = None,
                     reply_to: _Console | None = None) -> dict | None:
        assert self.store is not None
        try:
            rec, new = self.store.ack(seq, by, note)
        except StoreError as exc:
            log.error("%s", exc)
            if reply_to:
                reply_to.offer(error("store_failed", "acknowledgement not stored"))
            return None
        if rec is None:
            if reply_to:
                reply_to.offer(error("no_such_alert", f"no alert with seq {seq}"))
            return None
        frame = dumps(rec.to_message())
        if new:
            self._broadcast(frame)
            for d in self._desks.values():
                if seq in d.attention:
                    del d.attention[seq]
                    self._push_desk(d)
        elif reply_to:
            reply_to.offer(frame)
        return {**rec.to_message(), "new": new}

    # -- HTTP ------------------------------------------------------------------------

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        try:
            return self._check_request(conn, request)
        except Exception:
            log.exception("HTTP request %s failed", request.path[:100])
            return _problem(500, "internal error")

    def _check_request(self, conn: ServerConnection, request: Request) -> Response | None:
        path, _, query = request.path.partition("?")
        headers = request.headers
        for name in SINGLE_HEADERS:
            if len(headers.get_all(name)) > 1:
                return _problem(400, f"more than one {name} header")
        addr = self._address(conn)
        origin_ok = origin_allowed(headers.get("Origin"), headers.get("Host"), self.options.tls,
                                   self.options.allowed_origins)
        if "websocket" in headers.get("Upgrade", "").lower():
            if path not in ("/", "/ws"):
                return _problem(404, "websocket endpoint is /ws")
            if not origin_ok:
                log.warning("refused websocket from origin %r", headers.get("Origin"))
                return _problem(403, "origin not allowed")
            blocked = self._blocked(addr)
            if blocked:
                return _too_many(blocked)
            if self._authed >= self.options.max_connections:
                return _problem(503, "too many connections")
            return None  # go on with the websocket handshake
        return self._route(request.method, path, query, headers, origin_ok, addr)

    def _route(self, method: str, path: str, query: str, headers: Headers,
               origin_ok: bool, addr: str = "?") -> Response:
        if path in STATIC_ROUTES:
            if method != "GET":
                return _problem(405, "method not allowed")
            _name, ctype = STATIC_ROUTES[path]
            return _response(200, self._static[path], ctype, PAGE_HEADERS)
        if path == "/api/health":
            return _json(200, {"ok": True, "problem": self.problem})
        if path == "/api/labels":  # the wording table: no data in it, no token needed
            return _json(200, labels.table())
        if path == "/metrics":
            return self._metrics_api(method, headers, addr)
        if path not in ("/api/alerts", "/api/ack", "/api/desks", "/api/transcript"):
            return _problem(404, "not found")
        if not origin_ok:
            return _problem(403, "origin not allowed")
        assert self._auth is not None and self.store is not None
        blocked = self._blocked(addr)
        if blocked:
            return _too_many(blocked)
        res = self._auth.check("console", bearer_token(headers.get("Authorization")))
        if not res.ok:
            self._auth_failed(addr)
            log.warning("refused HTTP %s from %s: %s", path, addr, res.detail)
            return _problem(res.http_status, res.reason)
        self._auth_ok(addr)
        if path == "/api/desks":
            if method != "GET":
                return _problem(405, "use GET")
            now = time.monotonic()
            return _json(200, {"desks": [self._desks[n].to_json(now)
                                         for n in sorted(self._desks)], "now": time.time()})
        params = parse_qs(query, keep_blank_values=True)
        if path == "/api/transcript":
            if method != "GET":
                return _problem(405, "use GET")
            return self._transcript_api(params)
        if path == "/api/alerts" and method == "GET" and (set(params) & SEARCH_PARAMS):
            return self._search_api(params)
        if path == "/api/alerts":
            if method != "GET":
                return _problem(405, "use GET")
            since = _int_param(params, "since", 0)
            limit = _int_param(params, "limit", CATCH_UP_PAGE)
            if since is None or limit is None or limit < 1:
                return _problem(400, "since and limit must be non-negative integers")
            limit = min(limit, API_MAX_LIMIT)
            rows = self.store.fetch_after(since, limit + 1)
            alerts = [r.to_message() for r in rows[:limit]]
            for a in alerts:
                a.pop("type", None)
            last = alerts[-1]["seq"] if alerts else since
            return _json(200, {"alerts": alerts, "last_seq": last, "more": len(rows) > limit})
        if method != "POST":
            return _problem(405, "use POST")
        seq = _int_param(params, "seq", None)
        if seq is None:
            return _problem(400, "seq must be a non-negative integer")
        note = _text_param(params, "note", MAX_NOTE)
        if note is False:
            return _problem(400, f"note must be text of at most {MAX_NOTE} characters")
        out = self._acknowledge(seq, res.name or "http", note or None)
        if out is None:
            return _problem(404, f"no alert with seq {seq}")
        out.pop("type", None)
        return _json(200, out)


    def _metrics_api(self, method: str, headers: Headers, addr: str) -> Response:
        """GET /metrics (Prometheus): counts and timings, no alert text. Needs the metrics
        token (or a console token) as a bearer; with no metrics token set, a scraper on this
        machine (loopback) needs none."""
        assert self._auth is not None
        if method != "GET":
            return _problem(405, "use GET")
        blocked = self._blocked(addr)
        if blocked:
            return _too_many(blocked)
        token = bearer_token(headers.get("Authorization"))
        want = self.options.metrics_token
        if token is None and want is None and _loopback(addr):
            ok = True
        elif token is not None and want is not None and hmac.compare_digest(token.encode(), want.encode()):
            ok = True
        else:
            ok = token is not None and self._auth.check("console", token).ok
        if not ok:
            self._auth_failed(addr)
            log.warning("refused HTTP /metrics from %s", addr)
            return _problem(401, "invalid token")
        self._auth_ok(addr)
        return _response(200, self.metrics.render(), METRICS_TYPE)

    def _snapshot(self) -> Snapshot | None:
        if self.store is None:
            return None
        sizes = [c.queue.qsize() for c in self._consoles]
        return Snapshot(desks_connected=sum(1 for d in self._desks.values() if d.sessions > 0),
                        desks_known=len(self._desks),
                        desks_on_call=sum(1 for d in self._desks.values() if d.sessions > 0 and d.status.on_call),
                        consoles=len(self._consoles), preauth=len(self._pre),
                        ingest_queue=self._ingest.qsize() if self._ingest is not None else 0,
                        console_queue_max=max(sizes, default=0), console_queue_total=sum(sizes),
                        last_seq=self.store.last_seq())

    def _transcript_api(self, params: dict[str, list[str]]) -> Response:
        """GET /api/transcript?desk=D[&call_id=C]: the lines of a call (default: the desk's
        current call, else its last one with a transcript)."""
        assert self.store is not None
        desk = _text_param(params, "desk", 64)
        call_id = _text_param(params, "call_id", MAX_CALL_ID)
        if not desk or not NAME_RE.fullmatch(desk) or call_id is False:
            return _problem(400, "desk must be a desk name (call_id optional)")
        d = self._desks.get(desk)
        if not call_id:
            call_id = (d.status.call_id if d is not None else None) \
                or self.store.last_transcript_call(desk)
        lines = self.store.transcript(desk, call_id) if call_id else []
        alerts = [a.to_wire() for a in self.store.call_alerts(desk, call_id)] if call_id else []
        return _json(200, {"desk": desk, "call_id": call_id,
                           "lines": [x.to_wire() for x in lines], "alerts": alerts,
                           "transcripts": self.options.transcripts_live})

    def _search_api(self, params: dict[str, list[str]]) -> Response:
        """GET /api/alerts?from=&to=&desk=&rule=&q=&before=&limit=: history, newest first."""
        assert self.store is not None
        since, until = _time_param(params, "from"), _time_param(params, "to")
        desk, rule = _text_param(params, "desk", 64), _text_param(params, "rule", MAX_RULE)
        words = _text_param(params, "q", 100)
        before = _int_param(params, "before", None)
        limit = _int_param(params, "limit", 100)
        bad = [k for k, v in (("from", since), ("to", until), ("desk", desk), ("rule", rule),
                              ("q", words)) if v is False]
        if "before" in params and before is None:
            bad.append("before")
        if limit is None or limit < 1:
            bad.append("limit")
        if bad:
            return _problem(400, f"bad search parameter(s): {', '.join(bad)} (from/to: unix "
                                 "seconds or YYYY-MM-DD; before, limit: integers)")
        q = AlertQuery(since=since or None, until=until or None, desk=desk or None,
                       rule=rule or None, words=words or None, before=before,
                       limit=min(limit or 100, SEARCH_MAX))
        rows, more = self.store.search(q)
        alerts = [r.to_wire() for r in rows]
        return _json(200, {"alerts": alerts, "more": more,
                           "next_before": alerts[-1]["seq"] if alerts and more else None})


SEARCH_PARAMS = {"from", "to", "desk", "rule", "q", "before"}


def _kind(raw: str | bytes) -> object:
    """The type of a frame already found readable."""
    try:
        return decode(raw).get("type")
    except ProtocolError:
        return None


def _loopback(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return False


def _text_param(params: dict[str, list[str]], key: str, limit: int) -> str | None | Literal[False]:
    """A text parameter ('' or None when absent), False when it is too long or not text."""
    values = params.get(key)
    if not values:
        return None
    v = values[0].strip()
    if len(v) > limit or not v.isprintable():
        return False
    return v


def _time_param(params: dict[str, list[str]], key: str) -> float | None | Literal[False]:
    """unix seconds, or a local date YYYY-MM-DD (its midnight); False when it is neither."""
    v = _text_param(params, key, 32)
    if v is False:
        return False
    if not v:
        return None
    try:
        t = float(v)
        return t if math.isfinite(t) and 0 <= t <= MAX_UNIX else False
    except ValueError:
        pass
    try:
        return time.mktime(time.strptime(v, "%Y-%m-%d"))
    except (ValueError, OverflowError):
        return False


def _int_param(params: dict[str, list[str]], key: str, default: int | None) -> int | None:
    values = params.get(key)
    if not values:
        return default
    v = values[0]
    if not (v.isascii() and v.isdigit()) or len(v) > 18:  # "²".isdigit(), but int("²") fails
        return None
    return int(v)


async def run_hub(options: HubOptions, stop: asyncio.Event | None = None) -> None:
    """Run until `stop` is set (or forever); raises HubConfigError on bad options."""
    async with Hub(options):
        await (stop.wait() if stop is not None else asyncio.Future())


__all__ = ["Hub", "HubConfigError", "HubOptions", "run_hub"]
