"""The agent desk: audio in, alerts out, one call at a time.

asyncio at the edges only: frames come from a source, the recogniser runs in
a worker thread (never on the event loop), violations become `Alert`s for the
sinks (the supervisor hub, the terminal, a JSONL log). Every queue is bounded:
finished utterances wait for room (the source's own queue then drops and counts
blocks), pieces of utterances still going on are skipped when the recogniser
is busy.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import json
import logging
import socket
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

from monitor.events import Alert, AudioFrame, CallEvent, EndOfStream, Role, Violation
from monitor.live.session import CallSession, LiveOptions, Work
from monitor.phrasebook import Profile
from monitor.scoring import score

log = logging.getLogger("monitor.live")


class AlertSink(Protocol):
    async def emit(self, alert: Alert) -> None: ...

    async def close(self) -> None: ...


class PrintSink:
    def __init__(self, out: IO[str] = sys.stdout) -> None:
        self.out = out

    async def emit(self, alert: Alert) -> None:
        what = f"“{alert.phrase}” " if alert.phrase else ""
        said = f" 「{alert.text}」" if alert.text else ""
        self.out.write(f"[{alert.call_id} {alert.emitted:6.1f}s] {alert.rule:<12} {what}{alert.evidence}{said}\n")
        self.out.flush()

    async def close(self) -> None:
        pass


class JsonlSink:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(path, "a", encoding="utf-8")

    async def emit(self, alert: Alert) -> None:
        self._f.write(json.dumps(alert.to_dict(), ensure_ascii=False) + "\n")
        self._f.flush()

    async def close(self) -> None:
        self._f.close()


class HubSink:
    """Pushes alerts to the supervisor hub; spools them on disk while it is unreachable."""

    def __init__(self, url: str, token: str, desk: str, spool: Path) -> None:
        from monitor.hub.desk_client import DeskClient

        self.client = DeskClient(url, token, desk, spool)
        self._started = False

    async def emit(self, alert: Alert) -> None:
        if not self._started:
            await self.client.start()
            self._started = True
        await self.client.send(alert)

    async def close(self, timeout: float = 10.0) -> None:
        if self._started:
            await self.client.flush(timeout=timeout)
            await self.client.close()


@dataclass(frozen=True)
class DeskOptions:
    desk: str = field(default_factory=lambda: socket.gethostname()[:64] or "desk")
    live: LiveOptions = field(default_factory=LiveOptions)
    work_queue: int = 32  # utterances waiting for the recogniser


@dataclass
class CallSummary:
    call_id: str
    duration: float
    score: float
    violations: list[Violation]
    alerts: list[Alert]
    partial_skipped: int = 0

    def to_dict(self) -> dict:
        return {"call_id": self.call_id, "duration": round(self.duration, 2), "score": self.score,
                "violations": [v.to_dict() for v in self.violations]}


class CallClock:
    """Seconds into the call: from the wall clock when audio is real time, else from the audio heard.

    The call's t = 0 on the wall clock is the earliest moment consistent with the
    frames seen (a frame ending at call time t cannot arrive before t0 + t), so a
    backlog handed over at once (the pre-roll of a call found by its speech)
    does not shift it.
    """

    def __init__(self, speed: float, session: CallSession) -> None:
        self.speed = speed
        self.session = session
        self.t0 = time.monotonic()

    def saw(self, frame_end: float) -> None:
        if self.speed > 0:
            self.t0 = min(self.t0, time.monotonic() - frame_end / self.speed)

    def now(self) -> float:
        if self.speed > 0:
            return (time.monotonic() - self.t0) * self.speed
        return self.session.duration


class Desk:
    """Runs calls through the live path and sends their alerts to the sinks."""

    def __init__(self, profile: Profile, transcriber, sinks: list[AlertSink],
                 options: DeskOptions = DeskOptions()) -> None:
        self.profile = profile
        self.transcriber = transcriber
        self.sinks = sinks
        self.opt = options
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="asr")

    async def close(self) -> None:
        for s in self.sinks:
            await s.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def run_call(self, frames, roles: tuple[Role, ...], call_id: str | None = None,
                       speed: float = 1.0, events: list[CallEvent] = ()) -> CallSummary:
        """Follow one call from its audio frames until the end of the stream."""
        call_id = call_id or uuid.uuid4().hex[:12]
        session = CallSession(call_id, self.profile, roles, self.opt.live)
        clock = CallClock(speed, session)
        alerts: list[Alert] = []
        # Agent words first (they can break a rule now), then the caller's, then pieces
        # of utterances still going on; the end marker after everything.
        work_q: asyncio.PriorityQueue = asyncio.PriorityQueue(maxsize=self.opt.work_queue)
        order = itertools.count()
        skipped = 0
        pending_events = sorted(events, key=lambda e: e.t)

        async def publish(found: list[Violation]) -> None:
            for v in found:
                a = Alert(desk=self.opt.desk, call_id=call_id, rule=v.rule, start=round(v.start, 2),
                          end=round(v.end, 2), emitted=round(clock.now(), 2), text=v.text, evidence=v.evidence,
                          phrase=v.phrase, severity=v.severity)
                alerts.append(a)
                for s in self.sinks:
                    try:
                        await s.emit(a)
                    except Exception as exc:  # a sink failing must not stop the call being watched
                        log.warning("alert sink %s failed: %s", type(s).__name__, exc)

        async def recogniser() -> None:
            loop = asyncio.get_running_loop()
            while True:
                *_, w = await work_q.get()
                if w is None:
                    return
                (tr,) = await loop.run_in_executor(self._pool, self.transcriber.transcribe, [w.utterance])
                await publish(session.transcribed(w, tr))

        async def submit(work: list[Work]) -> None:
            nonlocal skipped
            for w in work:
                if w.partial:
                    if work_q.full() or work_q.qsize() > 0:
                        skipped += 1  # the recogniser is behind: the final transcript will do
                    else:
                        work_q.put_nowait((2, next(order), w))
                else:
                    await work_q.put((0 if w.utterance.role == "agent" else 1, next(order), w))

        worker = asyncio.create_task(recogniser())
        end_t = None
        try:
            async for item in frames:
                if isinstance(item, EndOfStream):
                    end_t = item.t
                    break
                assert isinstance(item, AudioFrame)
                clock.saw(item.end)
                while pending_events and pending_events[0].t <= item.start:
                    await publish(session.event(pending_events.pop(0)))
                work, found = session.feed(item.role, item.samples)
                await publish(found)
                await submit(work)
            for ev in pending_events:
                await publish(session.event(ev))
            await submit(session.finish())
            await work_q.put((3, next(order), None))
            await worker
        finally:
            if not worker.done():
                worker.cancel()
        await publish(session.close(end_t))
        return CallSummary(call_id=call_id, duration=session.duration, score=score(session.engine.violations),
                           violations=list(session.engine.violations), alerts=alerts, partial_skipped=skipped)
