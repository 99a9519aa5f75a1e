"""baresip's `ctrl_tcp` event stream as the desk's softphone: where calls start and end.

`monitor live --softphone baresip://HOST:PORT` connects to the agent's baresip
(`ctrl_tcp_listen HOST:PORT` in its config, module `ctrl_tcp.so`) and turns its
call events into `Control`s:

    CALL_ESTABLISHED  -> start, call_id = baresip's call id (the SIP Call-ID),
                         peer = the peer URI
    CALL_CLOSED       -> end; who hung up from baresip's `param`:
                         "Connection reset by user" -> the agent (a local hang-up),
                         "Connection reset by peer" -> the caller (the peer's BYE),
                         anything else (SIP error codes, "Local timeout",
                         "rtp stream error", an audio device error such as
                         "end of file") -> unknown, the audio decides.

Observed with baresip 1.0.0 (see tests/data/baresip-1.0-events.bin). Each
message is a netstring (`LEN:JSON,`), e.g.

    {"event":true,"type":"CALL_CLOSED","class":"call",
     "accountaor":"sip:agent@127.0.0.1:5060","direction":"incoming",
     "peeruri":"sip:caller@127.0.0.1:5062","id":"3e9c74baf24989ea",
     "param":"Connection reset by peer"}

ctrl_tcp serves ONE connection at a time: a new client silently replaces the
old one, so the desk must be baresip's only ctrl_tcp client (drive the phone
through another module, e.g. `httpd` or `cons`).

The netstring decoder and `event_to_control` are pure; `BaresipEvents` is the
asyncio client that connects, reads events forever and reconnects when
baresip restarts.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from monitor.events import Control, Role
from monitor.outage import Outage

log = logging.getLogger("monitor.live")

# baresip's own words in CALL_CLOSED's param (1.0.0: ua_hangup() for a local hang-up,
# strerror(ECONNRESET) from libre when the peer sends BYE; baresip sets no locale).
LOCAL_HANGUP = "Connection reset by user"
PEER_HANGUP = "Connection reset by peer"

MAX_NETSTRING = 1 << 20  # baresip's events are < 2 KB; its longest command replies a few KB
PROBE_TOKEN = "call-monitor-probe"


class SoftphoneError(RuntimeError):
    """The softphone cannot be reached or does not speak its protocol (one line for the user)."""


class NetstringError(ValueError):
    """Bytes that are not a netstring stream (`LEN:PAYLOAD,`).

    `payloads` holds the whole netstrings that came before the garbage in the
    same feed, so that none is lost.
    """

    def __init__(self, message: str, payloads: list[bytes] | None = None) -> None:
        super().__init__(message)
        self.payloads = payloads or []


class NetstringDecoder:
    """Streaming netstring decoder: feed bytes as they come, get the complete payloads.

    After an error the stream is unusable (framing is lost); make a new decoder
    for the next connection.
    """

    def __init__(self, max_length: int = MAX_NETSTRING) -> None:
        self.max_length = max_length
        self._buf = bytearray()
        self._max_digits = len(str(max_length))
        self.failed: NetstringError | None = None

    @property
    def pending(self) -> int:
        """Bytes received that do not yet make a whole netstring."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        if self.failed is not None:
            raise self.failed
        self._buf += data
        out: list[bytes] = []
        try:
            while True:
                payload = self._next()
                if payload is None:
                    return out
                out.append(payload)
        except NetstringError as exc:
            self.failed = NetstringError(str(exc))
            raise NetstringError(str(exc), out) from None

    def _next(self) -> bytes | None:
        buf = self._buf
        if not buf:
            return None
        colon = buf.find(b":", 0, self._max_digits + 1)
        if colon < 0:
            head = bytes(buf[:self._max_digits + 1])
            if not head.isdigit():
                self._bad(f"expected a length, got {_show(bytes(buf))}")
            if len(head) > self._max_digits:
                self._bad(f"length {_show(head)}... is over the limit of {self.max_length} bytes")
            return None  # the length is still coming
        digits = bytes(buf[:colon])
        if not digits.isdigit() or (len(digits) > 1 and digits[0:1] == b"0"):
            self._bad(f"expected a length, got {_show(bytes(buf))}")
        n = int(digits)
        if n > self.max_length:
            self._bad(f"length {n} is over the limit of {self.max_length} bytes")
        end = colon + 1 + n
        if len(buf) <= end:
            return None  # payload or its comma still coming
        if buf[end] != ord(","):
            self._bad(f"a {n}-byte payload not followed by ',' (got {_show(bytes(buf[end:end + 1]))})")
        payload = bytes(buf[colon + 1:end])
        del buf[:end + 1]
        return payload

    def _bad(self, what: str) -> None:
        raise NetstringError(f"not a netstring stream: {what}")


def _show(b: bytes, limit: int = 24) -> str:
    return repr(b[:limit]) + ("..." if len(b) > limit else "")


def netstring(payload: bytes) -> bytes:
    return b"%d:%s," % (len(payload), payload)


def event_to_control(event: Mapping[str, Any]) -> Control | None:
    """A baresip ctrl_tcp event as the desk's `Control`; None for every other event.

    Only call-class CALL_ESTABLISHED and CALL_CLOSED count (CALL_RTCP,
    CALL_RINGING, SDP and register events do not). `reason` is baresip's
    `param`: the peer URI for a start, the cause for an end.
    """
    if event.get("event") is not True or event.get("class") != "call":
        return None
    kind = event.get("type")
    if kind not in ("CALL_ESTABLISHED", "CALL_CLOSED"):
        return None
    call_id = _text(event.get("id")) or None
    peer = _text(event.get("peeruri")) or None
    param = _text(event.get("param"))
    if kind == "CALL_ESTABLISHED":
        return Control("start", call_id=call_id, peer=peer, source="baresip", reason=param)
    return Control("end", by=hangup_by(param), call_id=call_id, peer=peer, source="baresip", reason=param)


def hangup_by(param: str) -> Role | None:
    """Who hung up, from CALL_CLOSED's param, seen from the agent's softphone."""
    if param == LOCAL_HANGUP:
        return "agent"
    if param == PEER_HANGUP:
        return "caller"
    return None


def _text(v: Any) -> str:
    return v if isinstance(v, str) else ""


def parse_softphone_url(url: str) -> tuple[str, int]:
    """`baresip://HOST:PORT` (baresip's ctrl_tcp_listen address) -> (host, port)."""
    usage = f"softphone must be baresip://HOST:PORT (baresip's ctrl_tcp_listen address), not {url!r}"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError(usage) from None
    if (parts.scheme != "baresip" or not parts.hostname or port is None or port == 0
            or parts.path not in ("", "/") or parts.query or parts.fragment or parts.username is not None):
        raise ValueError(usage)
    return parts.hostname, port


OnControl = Callable[[Control], Awaitable[None]]


class BaresipEvents:
    """A client of baresip's ctrl_tcp that hands each call start/end to `on_control`.

        client = BaresipEvents("127.0.0.1", 4444, runner.control)
        await client.connect_first()   # SoftphoneError if baresip is not there
        await client.run()             # until close(); reconnects when baresip restarts

    When the connection is lost during a call, that call is ended with by=None
    and reason "baresip exited" (it said so: SHUTDOWN/EXIT; baresip 1.0 sends no
    CALL_CLOSED then) or "lost the connection to baresip" (a crash: the call
    died with it), unless `end_calls_on_disconnect` is False. Events are only
    sent to a connected client: what happens while reconnecting is not seen.
    An exception raised by `on_control` ends `run()`.
    """

    def __init__(self, host: str, port: int, on_control: OnControl, *,
                 on_event: Callable[[dict], None] | None = None,
                 connect_timeout: float = 5.0, probe_timeout: float = 3.0,
                 backoff: tuple[float, float] = (0.25, 5.0),
                 end_calls_on_disconnect: bool = True,
                 on_problem: Callable[[str], None] | None = None,
                 on_recovered: Callable[[str], None] | None = None,
                 report_every: float = 30.0) -> None:
        self.host, self.port = host, port
        self.on_control = on_control
        self.on_event = on_event  # every decoded event, for logs and tests
        self.connect_timeout = connect_timeout
        self.probe_timeout = probe_timeout
        self.backoff = backoff
        self.end_calls_on_disconnect = end_calls_on_disconnect
        # While it is away no call is followed: say so at once, again every `report_every` s, and when back.
        self.on_problem = on_problem or (lambda line: log.warning("%s", line))
        self.on_recovered = on_recovered or (lambda line: log.warning("%s", line))
        self.report_every = report_every
        self.where = f"baresip ctrl_tcp at {host}:{port}"
        self.connects = 0  # successful connections so far
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._decoder = NetstringDecoder()
        self._closed = asyncio.Event()
        self._calls: dict[str, bool] = {}  # call id -> established, for calls seen on this connection
        self._exiting = False  # baresip said it is shutting down

    @property
    def connected(self) -> bool:
        return self._writer is not None

    @property
    def open_calls(self) -> list[str]:
        return [c for c, up in self._calls.items() if up]

    # -- connecting ---------------------------------------------------------------------
    async def connect_first(self) -> None:
        """Connect and check that baresip's ctrl_tcp answers; `SoftphoneError` (one line) if not."""
        await self._connect()
        try:
            await self._probe()
        except BaseException:
            self._drop()
            raise

    async def _connect(self) -> None:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), self.connect_timeout)
        except ConnectionRefusedError:
            raise SoftphoneError(f"{self.where}: connection refused (is baresip running with "
                                 f"ctrl_tcp_listen {self.host}:{self.port} and module ctrl_tcp.so?)") from None
        except TimeoutError:
            raise SoftphoneError(f"{self.where}: no answer to connect within {self.connect_timeout:g} s") from None
        except OSError as exc:
            raise SoftphoneError(f"{self.where}: {exc.strerror or exc}") from None
        self._reader, self._writer = reader, writer
        self._decoder = NetstringDecoder()
        self._calls.clear()
        self._exiting = False
        self.connects += 1

    async def _probe(self) -> None:
        """Ask for `listcalls`: only ctrl_tcp answers a netstring JSON response with our token."""
        assert self._reader is not None and self._writer is not None
        cmd = json.dumps({"command": "listcalls", "token": PROBE_TOKEN}).encode()
        hint = f"is {self.host}:{self.port} baresip's ctrl_tcp_listen port?"
        try:
            self._writer.write(netstring(cmd))
            await self._writer.drain()
            deadline = time.monotonic() + self.probe_timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                data = await asyncio.wait_for(self._reader.read(65536), left)
                if not data:
                    raise SoftphoneError(f"{self.where}: the connection was closed before ctrl_tcp answered "
                                         f"({hint} It serves only one client at a time)")
                answered = False
                for payload in self._decoder.feed(data):
                    msg = _json(payload)
                    if msg is None:
                        raise SoftphoneError(f"{self.where}: answered {_show(payload)}, not JSON ({hint})")
                    if msg.get("response") is True and msg.get("token") == PROBE_TOKEN:
                        answered = True
                        calls = _text(msg.get("data")).strip()
                        if calls and "Active calls (0)" not in calls:
                            log.info("%s: calls already in progress, started before the desk "
                                     "connected: %s", self.where, calls.replace("\n", " | "))
                    else:
                        await self._handle(msg)  # events that came with or before the answer
                if answered:
                    return
        except TimeoutError:
            raise SoftphoneError(f"{self.where}: connected, but no ctrl_tcp answer within "
                                 f"{self.probe_timeout:g} s ({hint})") from None
        except NetstringError as exc:
            raise SoftphoneError(f"{self.where}: does not speak ctrl_tcp ({exc}; {hint})") from None
        except (ConnectionError, OSError) as exc:
            raise SoftphoneError(f"{self.where}: {exc.strerror or exc} ({hint})") from None

    # -- running ------------------------------------------------------------------------
    async def run(self) -> None:
        """Read events until `close()`, reconnecting (with backoff) whenever baresip goes away."""
        outage = Outage(self.report_every)
        delay = self.backoff[0]
        while not self._closed.is_set():
            if self._writer is None:
                try:
                    await self._connect()
                except SoftphoneError as exc:
                    first = outage.since is None
                    if outage.down("away"):  # one outage, whatever each attempt says
                        self.on_problem(f"{exc}; no calls are followed until it is back" if first else
                                        f"{exc}; still away after {outage.lasted():.0f} s, no calls are followed")
                    await self._sleep(delay)
                    delay = min(delay * 2, self.backoff[1])
                    continue
                away = outage.up()
                if away is not None:
                    self.on_recovered(f"{self.where}: connected again after {away:.0f} s")
            since = time.monotonic()
            why = await self._read_until_lost()
            if self._closed.is_set():
                break
            outage.down("away")
            self.on_problem(f"{self.where}: {why}; reconnecting")
            await self._lost()
            # a connection that lasted is a fresh outage; one dropped at once (another
            # client taking ctrl_tcp's only connection) backs off further
            delay = self.backoff[0] if time.monotonic() - since > 2.0 else min(delay * 2, self.backoff[1])
            await self._sleep(delay)

    async def _read_until_lost(self) -> str:
        assert self._reader is not None
        reader = self._reader
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            while True:
                read = asyncio.ensure_future(reader.read(65536))
                done, _ = await asyncio.wait({read, closed}, return_when=asyncio.FIRST_COMPLETED)
                if read not in done:
                    read.cancel()
                    return "closed"
                try:
                    data = read.result()
                except (ConnectionError, OSError) as exc:
                    return f"connection lost ({exc.strerror or exc})"
                if not data:
                    return ("baresip exited" if self._exiting else
                            "connection closed without baresip saying it exits (it crashed, or another "
                            "client took ctrl_tcp's only connection)")
                garbage: NetstringError | None = None
                try:
                    payloads = self._decoder.feed(data)
                except NetstringError as exc:
                    garbage, payloads = exc, exc.payloads
                for payload in payloads:
                    msg = _json(payload)
                    if msg is None:
                        log.warning("%s: ignored a message that is not JSON: %s", self.where, _show(payload, 80))
                        continue
                    await self._handle(msg)
                if garbage is not None:
                    return f"dropped the connection: {garbage}"
        finally:
            closed.cancel()

    async def _handle(self, msg: dict) -> None:
        if msg.get("event") is not True:
            return  # a command response
        if self.on_event is not None:
            self.on_event(msg)
        if msg.get("class") == "application" and msg.get("type") in ("SHUTDOWN", "EXIT"):
            self._exiting = True
        call_id = _text(msg.get("id"))
        ctl = event_to_control(msg)
        if call_id and call_id not in self._calls and len(self._calls) < 1000:
            self._calls[call_id] = False
        if ctl is None:
            return
        if ctl.action == "start":
            if call_id:
                self._calls[call_id] = True
        else:
            if call_id and self._calls.pop(call_id, None) is False and msg.get("type") == "CALL_CLOSED":
                # seen on this connection but never established: a call that failed
                # before pick-up (cancelled, rejected, busy): nothing to end
                log.debug("%s: call %s closed before it was established (%s)", self.where, call_id, ctl.reason)
                return
        log.info("%s: %s%s%s", self.where, "call started" if ctl.action == "start" else "call ended",
                 f" by {ctl.by}" if ctl.by else "", f" ({ctl.reason})" if ctl.reason else "")
        await self.on_control(ctl)

    async def _lost(self) -> None:
        """The connection is gone: end the calls it had open (baresip restarted, so did they)."""
        calls = self.open_calls
        reason = "baresip exited" if self._exiting else "lost the connection to baresip"
        self._drop()
        if self.end_calls_on_disconnect:
            for call_id in calls:
                await self.on_control(Control("end", by=None, call_id=call_id, source="baresip",
                                              reason=reason, lost=True))

    def _drop(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        self._calls.clear()
        if writer is not None:
            writer.close()

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._closed.wait(), seconds)
        except TimeoutError:
            pass

    async def close(self) -> None:
        """Stop `run()` and close the connection."""
        self._closed.set()
        writer = self._writer
        self._drop()
        if writer is not None:
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass


def _json(payload: bytes) -> dict | None:
    try:
        msg = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return msg if isinstance(msg, dict) else None
