"""Where calls begin and end on a desk that listens all day.

Best evidence first: the softphone says so (a hook runs `monitor call start`
/ `monitor call end --by caller`, which post to this desk's loopback control
endpoint); otherwise the audio: speech after idle starts a call, and the
caller's busy tone or a long silence on both sides ends it.
"""
from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from dataclasses import dataclass
from typing import AsyncIterator


from monitor.events import AudioFrame, CallEvent, EndOfStream, Role
from monitor.tones import ToneDetector
from monitor.vad import VadSegmenter

log = logging.getLogger("monitor.live")
SAMPLE_RATE = 16000


@dataclass(frozen=True)
class CallDetectOptions:
    """How calls are found in continuous audio."""

    from_audio: bool = True  # start/end calls by audio when no softphone event comes
    pre_roll_s: float = 1.0  # audio kept before detected speech becomes t = 0 of the call
    idle_end_s: float = 60.0  # both sides silent this long ends a call
    tone_end_s: float = 3.0  # the caller's busy tone this long ends a call
    max_call_s: float = 4 * 3600.0


@dataclass(frozen=True)
class Control:
    """A call-control command from the softphone hook."""

    action: str  # "start" | "end"
    by: Role | None = None
    call_id: str | None = None


class CallTracker:
    """Splits a continuous frame stream into calls: yields (call_id, frames, events) per call."""

    def __init__(self, frames: AsyncIterator, roles: tuple[Role, ...], controls: asyncio.Queue,
                 options: CallDetectOptions = CallDetectOptions()) -> None:
        self.frames = frames
        self.roles = roles
        self.controls = controls
        self.opt = options
        self._ring: dict[Role, deque] = {r: deque() for r in roles}
        self._idle_vad = {r: VadSegmenter(r) for r in roles}

    def _keep(self, frame: AudioFrame) -> None:
        ring = self._ring[frame.role]
        ring.append(frame)
        while ring and frame.end - ring[0].start > self.opt.pre_roll_s:
            ring.popleft()

    async def calls(self) -> AsyncIterator[tuple[str, asyncio.Queue, list[CallEvent]]]:
        """Yields, per call, its id and a queue of call-timed frames ending with EndOfStream."""
        current: asyncio.Queue | None = None
        t0 = 0.0
        call_events: list[CallEvent] = []
        tone: ToneDetector | None = None
        last_speech = 0.0
        tone_since: float | None = None
        async for item in self.frames:
            if isinstance(item, EndOfStream):
                if current is not None:
                    await current.put(EndOfStream(t=max(0.0, item.t - t0)))
                return
            ctl = self._next_control()
            if current is None:
                self._keep(item)
                speech = self._idle_vad[item.role].feed(item.samples) or self._idle_vad[item.role].in_speech
                if tone is not None and item.role == "caller":
                    # The busy tone goes on until the agent hangs up: it is not a new call.
                    tone.feed(item.samples)
                    if tone.active is not None:
                        self._idle_vad = {r: VadSegmenter(r) for r in self.roles}
                        continue
                    tone = None
                starting = (ctl is not None and ctl.action == "start") or (self.opt.from_audio and bool(speech))
                if not starting:
                    continue
                call_id = (ctl.call_id if ctl and ctl.call_id else uuid.uuid4().hex[:12])
                t0 = min(f.start for r in self.roles for f in self._ring[r]) if ctl is None else item.start
                current = asyncio.Queue(maxsize=400)
                call_events = []
                tone = ToneDetector("caller") if "caller" in self.roles else None
                last_speech, tone_since = item.end - t0, None
                log.info("call %s starts (%s)", call_id, "softphone" if ctl else "speech")
                yield call_id, current, call_events
                backlog = sorted((f for r in self.roles for f in self._ring[r]), key=lambda f: f.start)
                for f in backlog if ctl is None else [item]:
                    await current.put(AudioFrame(f.role, f.start - t0, f.samples))
                self._ring = {r: deque() for r in self.roles}
                self._idle_vad = {r: VadSegmenter(r) for r in self.roles}
                continue
            t = item.start - t0
            await current.put(AudioFrame(item.role, t, item.samples))
            if self._idle_vad[item.role].feed(item.samples) or self._idle_vad[item.role].in_speech:
                last_speech = item.end - t0
            if tone is not None and item.role == "caller":
                tone.feed(item.samples)
                if tone.active is not None and tone_since is None:
                    tone_since = tone.active.start
            ended = None
            if ctl is not None and ctl.action == "end":
                if ctl.by:
                    call_events.append(CallEvent(t=t, type="hangup", by=ctl.by))
                ended = "softphone"
            elif self.opt.from_audio and tone_since is not None and item.end - t0 - tone_since >= self.opt.tone_end_s:
                ended = "busy tone"
            elif self.opt.from_audio and item.end - t0 - last_speech >= self.opt.idle_end_s:
                ended = "silence"
            elif item.end - t0 >= self.opt.max_call_s:
                ended = "too long"
            if ended:
                log.info("call ends (%s) at %.1f s", ended, item.end - t0)
                await current.put(EndOfStream(t=item.end - t0))
                current = None
                self._idle_vad = {r: VadSegmenter(r) for r in self.roles}

    async def run(self, out: asyncio.Queue) -> None:
        """Put each call (id, frame queue, events) on `out` as it starts; None at the end.

        Runs as its own task: it must keep filling the current call's frame queue
        while whoever takes calls from `out` is busy following that call.
        """
        try:
            async for call in self.calls():
                await out.put(call)
        finally:
            await out.put(None)

    def _next_control(self) -> Control | None:
        try:
            return self.controls.get_nowait()
        except asyncio.QueueEmpty:
            return None


async def queue_frames(q: asyncio.Queue) -> AsyncIterator:
    while True:
        item = await q.get()
        yield item
        if isinstance(item, EndOfStream):
            return


# -- the loopback control endpoint --------------------------------------------------
async def serve_control(controls: asyncio.Queue, host: str = "127.0.0.1", port: int = 8766,
                        token: str | None = None) -> asyncio.AbstractServer:
    """Minimal HTTP: POST /call/start?id=ID, POST /call/end?by=agent|caller (loopback only)."""
    from urllib.parse import parse_qs, urlsplit

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        status, body = 400, "bad request"
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            if len(head) > 8192:
                raise ValueError("header too large")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:] if l)}
            url = urlsplit(target)
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            if token and headers.get("authorization") != f"Bearer {token}":
                status, body = 401, "unauthorized"
            elif method != "POST" or url.path not in ("/call/start", "/call/end"):
                status, body = 404, "use POST /call/start or /call/end"
            elif url.path == "/call/end" and q.get("by") not in (None, "agent", "caller"):
                status, body = 400, "by must be agent or caller"
            elif q.get("id") and (len(q["id"]) > 64 or not q["id"].replace("-", "").replace("_", "").isalnum()):
                status, body = 400, "bad call id"
            else:
                action = url.path.rsplit("/", 1)[1]
                controls.put_nowait(Control(action=action, by=q.get("by"), call_id=q.get("id")))
                status, body = 200, "ok"
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        except asyncio.QueueFull:
            status, body = 503, "busy"
        reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 503: "Busy"}[status]
        data = body.encode()
        writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n"
                     .encode() + data)
        try:
            await writer.drain()
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port)


def post_control(action: str, port: int = 8766, by: str | None = None, call_id: str | None = None,
                 token: str | None = None, host: str = "127.0.0.1") -> str:
    import http.client
    from urllib.parse import urlencode

    q = {k: v for k, v in (("by", by), ("id", call_id)) if v}
    conn = http.client.HTTPConnection(host, port, timeout=5)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    conn.request("POST", f"/call/{action}" + (f"?{urlencode(q)}" if q else ""), headers=headers)
    r = conn.getresponse()
    body = r.read().decode()
    if r.status != 200:
        raise RuntimeError(f"desk refused: {r.status} {body}")
    return body
