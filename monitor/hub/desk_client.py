"""What a desk uses to push alerts and its state to the hub.

    client = DeskClient("wss://hub.local:8765/ws", token, "desk-07", Path("desk-07.spool"),
                        cafile=Path("hub-cert.pem"), on_problem=print_to_stderr)
    await client.start()              # spooled alerts from a previous run go out now
    await client.call_started("c-17", time.time(), "zte")
    await client.send(alert)          # returns once the alert is in the local spool
    await client.call_ended("c-17", time.time(), 92.5, 1)
    await client.flush(timeout=5)     # True when the hub has acked everything
    await client.close()              # unacked alerts stay spooled for the next start

The spool is the outbox: it is bounded by `max_pending`; when full, `send()` waits for the
hub to ack (backpressure instead of silently dropping a compliance alert). In flight at
most `window` alerts; on every (re)connect everything still spooled is resent in order
and the hub drops the duplicates it already stored.

The desk's state (idle / on a call, last finished call) is sent right after every
(re)connect and at once when it changes, plus a heartbeat every `heartbeat_s` seconds.
call_started/call_ended only record it: they never wait for the hub.

What is said on the call (`transcript()`) goes out only while connected to a hub whose
welcome said it takes transcripts; lines are never spooled (a bounded queue; dropped when
the hub is away). Phone, ID-card and bank-card numbers in alerts and transcripts are
masked before they are spooled or sent (monitor/redact.py), unless the hub's welcome said
"redact": false.

When the hub cannot be reached or refuses the desk, `on_problem` gets one line at the
first failed attempt and then at most every `report_every` seconds while it lasts (or when
the reason changes); `on_recovered` gets one line when the desk is connected again. Without
callbacks the same lines go to the log as warnings.
"""
from __future__ import annotations

import asyncio
import errno
import json
import logging
import random
import socket
import ssl
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Self

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
)
from websockets.uri import parse_uri

from monitor.hub.protocol import Alert
from monitor.outage import Outage
from monitor.redact import redact

from .protocol import (
    CLOSE_BAD_HELLO,
    CLOSE_FORBIDDEN,
    CLOSE_UNAUTHORIZED,
    MAX_HEARTBEAT,
    MAX_PEER,
    MAX_PROFILE,
    MIN_HEARTBEAT,
    NAME_RE,
    DeskStatus,
    LastCall,
    ProtocolError,
    TranscriptLine,
    Withdraw,
    alert_body,
    dumps,
    parse_alert_body,
)
from .spool import Spool

WITHDRAW_FRAME = dumps({"type": "withdraw"})[:-1]  # how a spooled withdrawal's frame begins

log = logging.getLogger("monitor.hub.desk")

REFUSED = (CLOSE_UNAUTHORIZED, CLOSE_FORBIDDEN, CLOSE_BAD_HELLO)
HEARTBEAT = dumps({"type": "heartbeat"})


def client_ssl_context(cafile: Path | None = None) -> ssl.SSLContext:
    """TLS for a wss:// hub: the system CA store plus `cafile` (e.g. the hub's self-signed
    certificate), TLS 1.2 or newer, host name checked. A bad cafile raises ValueError."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cafile is not None:
        try:
            Path(cafile).open("rb").close()  # ssl's own error does not name the file
        except OSError as exc:
            raise ValueError(f"cannot read CA file {cafile}: {exc.strerror or exc}") from None
        try:
            ctx.load_verify_locations(cafile=str(cafile))
        except ssl.SSLError as exc:
            raise ValueError(f"CA file {cafile} holds no PEM certificate "
                             f"({exc.reason or exc})") from None
    return ctx


def describe_failure(exc: BaseException) -> str:
    """Why a connection attempt failed, in a few words for an operator."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate problem: {exc.verify_message or exc.reason}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed ({exc.reason or exc}); is it a wss:// hub?"
    if isinstance(exc, ConnectionRefusedError) or getattr(exc, "errno", None) == \
            errno.ECONNREFUSED or "Connect call failed" in str(exc):
        # asyncio reports refusals on several addresses (localhost: ::1 and 127.0.0.1)
        # as one plain OSError naming them.
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name ({exc.strerror})"
    if isinstance(exc, InvalidStatus):
        return f"HTTP {exc.response.status_code} instead of a websocket; is the URL the hub's /ws?"
    if isinstance(exc, InvalidHandshake):
        return f"not a websocket hub? ({exc}); a wss:// hub needs a wss:// URL"
    if isinstance(exc, ConnectionClosed):
        return f"connection closed before the welcome ({exc})"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {exc}"


class DeskClient:
    """Asyncio client that spools alerts and delivers them to the hub at least once."""

    def __init__(self, url: str, token: str, desk: str, spool_path: Path | str, *,
                 ssl_context: ssl.SSLContext | None = None, cafile: Path | None = None,
                 window: int = 100, max_pending: int = 100_000, backoff_min: float = 0.2,
                 backoff_max: float = 10.0, ping_interval: float = 20.0,
                 open_timeout: float = 10.0, heartbeat_s: float = 10.0,
                 on_problem: Callable[[str], None] | None = None,
                 on_recovered: Callable[[str], None] | None = None,
                 report_every: float = 30.0) -> None:
        if not NAME_RE.fullmatch(desk):
            raise ValueError(f"invalid desk name {desk!r}: use letters, digits, ._:@- "
                             "(at most 64)")
        try:
            secure = parse_uri(url).secure
        except InvalidURI as exc:
            raise ValueError(f"bad hub URL {url!r}: {exc}") from None
        if not MIN_HEARTBEAT <= heartbeat_s <= MAX_HEARTBEAT:
            raise ValueError(f"heartbeat_s must be between {MIN_HEARTBEAT:g} and "
                             f"{MAX_HEARTBEAT:g} seconds")
        self.url, self.token, self.desk = url, token, desk
        if ssl_context is None and secure:
            ssl_context = client_ssl_context(cafile)
        elif cafile is not None:
            client_ssl_context(cafile)  # a bad path fails here too, not only on wss://
        # websockets refuses an ssl argument with a ws:// URL.
        self.ssl_context = ssl_context if secure else None
        self.window, self.max_pending = window, max_pending
        self.backoff_min, self.backoff_max = backoff_min, backoff_max
        self.ping_interval, self.open_timeout = ping_interval, open_timeout
        self.heartbeat_s = heartbeat_s
        self.on_problem, self.on_recovered = on_problem, on_recovered
        self.report_every = report_every
        self._spool = Spool(spool_path)
        self._new = asyncio.Event()  # something was spooled
        self._room = asyncio.Event()  # the spool has room again
        self._empty = asyncio.Event()  # everything is acked
        self._closing = asyncio.Event()
        self._status = DeskStatus()
        self._status_changed = asyncio.Event()  # the status or the transcript queue changed
        # Transcript frames waiting for the link (bounded), and status frames queued behind
        # them so the hub gets a call's last lines before the status that ends the call.
        self._lines: list[tuple[str, DeskStatus | None]] = []
        self.max_lines = 500
        self.redact = True  # until a hub says otherwise
        self.transcripts = False  # the hub of the current connection takes transcripts
        self.withdrawals = False  # ... and withdraw frames
        self.withdrawals_dropped = 0  # withdrawals an older hub could not take: dropped, not sent
        self.lines_dropped = 0
        self._task: asyncio.Task | None = None
        self._outage = Outage(report_every)
        self.connected = False
        self.connects = 0
        self.duplicates = 0  # acks saying the hub already had it (a resend after a lost ack)
        self.last_error: str | None = None
        self._update_events()

    # -- public API ------------------------------------------------------------------

    async def start(self) -> Self:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"desk-{self.desk}")
        return self

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def pending(self) -> int:
        """Alerts spooled and not yet acked by the hub."""
        return self._spool.count

    @property
    def status(self) -> DeskStatus:
        """The state the hub is told (or will be told once it is reachable)."""
        return self._status

    async def send(self, alert: Alert | Mapping[str, Any]) -> str:
        """Spool one alert for delivery; returns its id. Raises ValueError if invalid."""
        body = alert_body(alert)
        if self.redact:
            for k in ("text", "evidence"):
                if isinstance(body.get(k), str):
                    body[k] = redact(body[k])
        alert_id = f"{self.desk}:{uuid.uuid4().hex}"
        try:
            parse_alert_body(alert_id, body)  # same checks as the hub: fail here, not later
        except ProtocolError as exc:
            raise ValueError(exc.message) from None
        await self._spool_frame(alert_id, {"type": "alert", "id": alert_id, "alert": body})
        return alert_id

    async def withdraw(self, alert_id: str, reason: str) -> str:
        """Spool the withdrawal of an alert sent with id `alert_id` (what send() returned): the
        call's final judgement does not hold it (`reason`: one of WITHDRAW_REASONS). Delivered after
        the alert, at least once, like an alert, to a hub that takes withdrawals (an older one's
        welcome does not say so: there it is dropped); returns the withdrawal's own id. ValueError
        if the hub would refuse it."""
        wid = f"{self.desk}:{uuid.uuid4().hex}"
        frame = Withdraw(wid, alert_id, reason)
        try:
            Withdraw.from_wire(frame.to_wire())  # the hub's checks, here
        except ProtocolError as exc:
            raise ValueError(exc.message) from None
        await self._spool_frame(wid, frame.to_wire())
        return wid

    async def _spool_frame(self, frame_id: str, frame: dict) -> None:
        """Spool a frame for delivery in order (waiting while the spool is full)."""
        while self._spool.count >= self.max_pending:
            await self._room.wait()
        self._spool.add(frame_id, dumps(frame))
        self._update_events()
        self._new.set()

    async def call_started(self, call_id: str, started_at: float, profile: str | None,
                           peer: str | None = None) -> None:
        """The desk is on call `call_id` since `started_at` (unix seconds).

        Returns at once whether or not the hub is reachable. profile and peer are only
        shown, so they are cut to fit; ValueError for a call_id or time the hub would refuse
        (as send() does for alerts)."""
        self._set_status(DeskStatus("on_call", call_id, _float(started_at),
                                    _clip(profile, MAX_PROFILE), _clip(peer, MAX_PEER),
                                    self._status.last_call, self._status.softphone))

    def progress(self, call_id: str, score: float) -> None:
        """The current call's running score (shown on the supervisor's board)."""
        if self._status.on_call and self._status.call_id == call_id:
            self._set_status(replace(self._status, score=_float(score)))

    def transcript(self, line: TranscriptLine) -> bool:
        """Send a line of the current call to a hub that takes transcripts; False when it is
        not sent (no such hub connected now, or the queue is full). Never waits."""
        if not (self.connected and self.transcripts):
            return False
        if sum(1 for _, st in self._lines if st is None) >= self.max_lines:
            self.lines_dropped += 1
            return False
        if self.redact:
            line = replace(line, text=redact(line.text))
        try:
            TranscriptLine.from_wire(line.body())  # the hub's checks, here
        except ProtocolError as exc:
            raise ValueError(exc.message) from None
        self._lines.append((dumps({"type": "transcript", "line": line.body()}), None))
        self._status_changed.set()
        return True

    async def call_ended(self, call_id: str, ended_at: float, score: float,
                         violations: int | Collection[object]) -> None:
        """The call ended at `ended_at` (unix seconds) with this score; `violations` is a
        count or the violations themselves. Returns at once, like call_started."""
        count = violations if isinstance(violations, int) else len(violations)
        self._set_status(DeskStatus(last_call=LastCall(call_id, _float(score),
                                                       _float(ended_at), count),
                                    softphone=self._status.softphone))

    def softphone(self, state: str | None) -> None:
        """How the desk's softphone link is, e.g. "baresip connected" / "baresip away" (None: no softphone)."""
        self._set_status(replace(self._status, softphone=_clip(state, MAX_PROFILE)))

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

    def _set_status(self, status: DeskStatus) -> None:
        try:
            status = DeskStatus.from_wire(status.to_wire())  # the hub's checks, here
        except ProtocolError as exc:
            raise ValueError(exc.message) from None
        self._status = status
        if self.connected:
            # In order with the transcript lines: a call's lines after the status that
            # starts it and before the one that ends it. Statuses in a row: the last wins.
            frame = (dumps({"type": "status", "status": status.to_wire()}), status)
            if self._lines and self._lines[-1][1] is not None:
                self._lines[-1] = frame
            else:
                self._lines.append(frame)
        self._status_changed.set()

    def _update_events(self) -> None:
        for ev, on in ((self._room, self._spool.count < self.max_pending),
                       (self._empty, self._spool.count == 0)):
            ev.set() if on else ev.clear()

    async def _run(self) -> None:
        delay = self.backoff_min
        while not self._closing.is_set():
            welcomed = False
            problem: str | None = None
            try:
                async with connect(self.url, ssl=self.ssl_context, open_timeout=self.open_timeout,
                                   ping_interval=self.ping_interval,
                                   ping_timeout=self.ping_interval, close_timeout=2,
                                   compression=None, max_size=2**20) as ws:
                    await ws.send(dumps({"type": "hello", "role": "desk", "token": self.token,
                                         "desk": self.desk, "heartbeat": self.heartbeat_s}))
                    welcome = json.loads(await asyncio.wait_for(ws.recv(), self.open_timeout))
                    if not isinstance(welcome, dict) or welcome.get("type") != "welcome":
                        raise ConnectionError(f"unexpected reply to hello: {welcome!r:.100}")
                    welcomed = True
                    self.transcripts = welcome.get("transcripts") is True
                    self.redact = welcome.get("redact") is not False
                    self.withdrawals = welcome.get("withdraw") is True
                    self.connected, self.connects, self.last_error = True, self.connects + 1, None
                    delay = self.backoff_min
                    self._recovered()
                    # An older hub answers status frames with errors: only send them when
                    # the welcome says it takes them.
                    await self._pump(ws, bool(welcome.get("status")))
            except ConnectionClosed as exc:
                if exc.rcvd is not None and exc.rcvd.code in REFUSED:
                    problem = self.last_error = f"hub refused desk {self.desk}: {exc.rcvd.reason}"
                    delay = self.backoff_max  # a config error: retry, but slowly
                else:
                    self.last_error = f"connection closed: {exc}"
                    problem = f"hub {self.url} closed the connection: {exc}"
            except Exception as exc:  # never let delivery stop for good: report, retry
                if not isinstance(exc, (OSError, TimeoutError, InvalidHandshake, ValueError,
                                        ConnectionError)):
                    log.exception("desk %s: unexpected error in the sender", self.desk)
                self.last_error = problem = f"hub {self.url} unreachable: {describe_failure(exc)}"
            finally:
                self.connected = False
                self._lines.clear()
            if self._closing.is_set():
                break
            if not welcomed and problem is not None:
                self._problem(problem)
            log.debug("desk %s: reconnecting in ~%.1fs (%s)", self.desk, delay, self.last_error)
            try:
                await asyncio.wait_for(self._closing.wait(), delay * random.uniform(0.5, 1.0))
            except TimeoutError:
                pass
            delay = min(delay * 2, self.backoff_max)

    def _problem(self, line: str) -> None:
        if not self._outage.down(line):
            return
        n = self._spool.count
        self._tell(self.on_problem, f"{line}; {n} alert(s) waiting in the spool" if n else line,
                   logging.WARNING)

    def _recovered(self) -> None:
        away = self._outage.up()
        if away is None:
            return
        n = self._spool.count
        self._tell(self.on_recovered, f"hub {self.url} connected again after {away:.0f} s"
                   + (f"; resending {n} spooled alert(s)" if n else ""), logging.INFO)

    def _tell(self, callback: Callable[[str], None] | None, line: str, level: int) -> None:
        if callback is None:
            log.log(level, "%s", line)
            return
        try:
            callback(line)
        except Exception:  # the caller's reporting bug must not stop delivery
            log.exception("desk %s: problem callback failed", self.desk)

    async def _pump(self, ws: ClientConnection, send_status: bool) -> None:
        inflight: dict[str, int] = {}
        window_open = asyncio.Event()
        window_open.set()

        async def read_acks() -> None:
            async for raw in ws:
                msg = json.loads(raw)
                if not isinstance(msg, dict):
                    continue
                kind, ref = msg.get("type"), msg.get("id", msg.get("ref"))
                if kind == "error":
                    if msg.get("code") == "store_failed" or (isinstance(ref, str)
                                                             and ref in inflight):
                        # The hub could not store it: reconnect so it is sent again.
                        raise ConnectionError(f"hub error: {msg.get('message')}")
                    log.warning("desk %s: hub error: %s", self.desk, msg.get("message"))
                    continue
                if kind not in ("ack", "reject") or not isinstance(ref, str):
                    continue
                if kind == "ack":
                    self._spool.remove(ref)
                    self.duplicates += bool(msg.get("duplicate"))
                else:
                    log.error("hub rejected alert %s: %s", ref, msg.get("reason"))
                    self._spool.reject(ref, str(msg.get("reason", ""))[:500])
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
                    last_n = n
                    if not self.withdrawals and frame.startswith(WITHDRAW_FRAME):
                        # A hub from before withdrawals answers them with errors it cannot tie
                        # to the frame, and hangs up after enough: the alert stays as it was.
                        log.warning("desk %s: the hub does not take withdrawals: %s dropped", self.desk, alert_id)
                        self._spool.remove(alert_id)
                        self.withdrawals_dropped += 1
                        self._update_events()
                        continue
                    inflight[alert_id] = n
                    await ws.send(frame)

        async def send_state() -> None:
            # The current state on connect and on each change, then the transcript lines
            # (after the status that says which call they belong to), else heartbeats.
            sent: DeskStatus | None = None
            while True:
                self._status_changed.clear()
                if sent is None:  # on connect: the state first
                    sent = self._status
                    await ws.send(dumps({"type": "status", "status": sent.to_wire()}))
                while self._lines:  # lines and the statuses queued behind them, in order
                    frame, status = self._lines.pop(0)
                    await ws.send(frame)
                    sent = status or sent
                if self._status != sent:
                    sent = self._status
                    await ws.send(dumps({"type": "status", "status": sent.to_wire()}))
                while not self._status_changed.is_set():
                    try:
                        await asyncio.wait_for(self._status_changed.wait(), self.heartbeat_s)
                    except TimeoutError:
                        await ws.send(HEARTBEAT)

        tasks = [asyncio.create_task(read_acks()), asyncio.create_task(send_spooled())]
        if send_status:
            tasks.append(asyncio.create_task(send_state()))
        try:
            # Any side ending ends the session (a clean close from the hub ends read_acks
            # without an exception); the outer loop reconnects and resends.
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                t.result()  # re-raise what ended the session
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def _clip(text: str | None, limit: int) -> str | None:
    if not text:
        return None
    return "".join(c if c.isprintable() else " " for c in str(text))[:limit]


def _float(v: float) -> float:
    # Only real numbers are converted (an int is fine, numpy floats too); anything else,
    # bool included, is left for DeskStatus.from_wire to refuse with a clear message.
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v
