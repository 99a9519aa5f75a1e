"""The agent desk: audio in, alerts out.

asyncio at the edges only: the recogniser runs in a worker thread (never on
the event loop), violations become `Alert`s for the sinks (the supervisor hub,
the terminal, a JSONL log). Every queue is bounded: finished utterances wait
for room (the source's own queue then drops and counts blocks), pieces of
utterances still going on are skipped when the recogniser is busy.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace

from monitor.asr import Transcriber
from monitor.events import (
    AudioFrame,
    CallEvent,
    CallStarted,
    EndOfStream,
    Heard,
    Role,
    Transcript,
    Violation,
)
from monitor.hub.protocol import Alert
from monitor.live.session import CallSession, LiveOptions, Work, finding
from monitor.live.sinks import AlertSink, CallSummary
from monitor.phrasebook import Profile
from monitor.scoring import score

log = logging.getLogger("monitor.live")

CallStreamItem = AudioFrame | CallEvent | EndOfStream


@dataclass(frozen=True)
class DeskOptions:
    desk: str = field(default_factory=lambda: socket.gethostname()[:64] or "desk")
    live: LiveOptions = field(default_factory=LiveOptions)
    work_queue: int = 32  # utterances waiting for the recogniser


class CallClock:
    """Seconds into the call: from the clock when audio is real time, else from the audio heard.

    The call's t = 0 on the clock is the earliest moment consistent with the
    frames seen (a frame ending at call time t cannot arrive before t0 + t), so a
    backlog handed over at once (the pre-roll of a call found by its speech)
    does not shift it.
    """

    def __init__(self, speed: float, session: CallSession, clock: Callable[[], float]) -> None:
        self.speed = speed
        self.session = session
        self.clock = clock
        self.t0 = clock()

    def saw(self, frame_end: float) -> None:
        if self.speed > 0:
            self.t0 = min(self.t0, self.clock() - frame_end / self.speed)

    def now(self) -> float:
        if self.speed > 0:
            return (self.clock() - self.t0) * self.speed
        return self.session.duration


class Desk:
    """Follows calls through the live path and sends their alerts to the sinks.

    `clock` is injected so a desk runs on virtual time in tests; `speed` 0 times
    alerts by the audio heard instead of the clock.
    """

    def __init__(self, profile: Profile, transcriber: Transcriber, sinks: list[AlertSink],
                 options: DeskOptions = DeskOptions(), clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.profile = profile
        self.transcriber = transcriber
        self.sinks = sinks
        self.opt = options
        self.clock = clock
        self.wall = wall
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="asr")

    async def close(self) -> None:
        for s in self.sinks:
            await s.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def open_call(self, started: CallStarted, roles: tuple[Role, ...], speed: float = 1.0) -> LiveCall:
        return LiveCall(self, started, roles, speed)

    async def run_call(self, frames: AsyncIterator[CallStreamItem], roles: tuple[Role, ...],
                       call_id: str | None = None, speed: float = 1.0, how: str = "file") -> CallSummary:
        """Follow one call from its stream (frames and call events, call time) to its end."""
        call = self.open_call(CallStarted(call_id or uuid.uuid4().hex[:12], 0.0, how), roles, speed)
        await call.begin()
        end_t, truncated = None, False
        async for item in frames:
            if isinstance(item, EndOfStream):
                end_t, truncated = item.t, item.truncated
                break
            await call.feed(item)
        return await call.finish(end_t, why="recording truncated" if truncated else "", end_heard=not truncated)

    async def _each_sink(self, what: str, *args: object) -> None:
        for s in self.sinks:
            fn = getattr(s, what, None)
            if fn is None:  # a sink that only takes alerts
                continue
            try:
                await fn(*args)
            except Exception as exc:  # a sink failing must not stop the call being watched
                log.warning("alert sink %s failed: %s", type(s).__name__, exc)


class LiveCall:
    """One call on a desk: fed frames and call events in order, finished once."""

    def __init__(self, desk: Desk, started: CallStarted, roles: tuple[Role, ...], speed: float) -> None:
        self.desk = desk
        self.started = started
        self.call_id = started.call_id
        self.session = CallSession(started.call_id, desk.profile, roles, desk.opt.live)
        self.clock = CallClock(speed, self.session, desk.clock)
        self.started_at = desk.wall()
        self.alerts: list[Alert] = []
        self._alert_of: dict[tuple[str, str | None, float], int] = {}  # a violation's alert in `alerts`
        self.skipped = 0
        self.hung_up_by: Role | None = None
        # Agent words first (they can break a rule now), then the caller's, then pieces
        # of utterances still going on; the end marker after everything.
        self._work: asyncio.PriorityQueue = asyncio.PriorityQueue(maxsize=desk.opt.work_queue)
        self._order = itertools.count()
        # Each side's last closed utterance and its words: a short piece after it may end its sentence
        # (monitor.asr.fragments), as batch hears it.
        self._last_heard: dict[Role, Heard] = {}
        self._worker = asyncio.create_task(self._recogniser(), name=f"asr-{self.call_id}")

    async def begin(self) -> None:
        await self.desk._each_sink("call_started", self.started, self.started_at)

    async def feed(self, item: AudioFrame | CallEvent) -> None:
        if isinstance(item, CallEvent):
            if item.type == "hangup" and item.by:
                self.hung_up_by = item.by
            await self._publish(self.session.event(item))
            return
        self.clock.saw(item.end)
        work, found = self.session.feed(item.role, item.samples)
        await self._publish(found)
        await self._submit(work)

    async def finish(self, end_t: float | None = None, why: str = "", end_heard: bool = True) -> CallSummary:
        """End of the call's audio: wait for the last words, judge the end, tell the sinks.

        `end_heard` False: the audio stopped before the call did; its end is not judged.
        """
        try:
            await self._submit(self.session.finish())
            await self._work.put((3, next(self._order), None))
            await self._worker
        finally:
            if not self._worker.done():
                self._worker.cancel()
        await self._publish(self.session.close(end_t, end_heard))
        await self._withdraw(self.session.withdrawn)
        s = self.session
        summary = CallSummary(call_id=self.call_id, duration=s.duration, score=score(s.engine.violations),
                              violations=list(s.engine.violations), alerts=self.alerts,
                              partial_skipped=self.skipped, how=self.started.how, peer=self.started.peer,
                              why_ended=why, hung_up_by=self.hung_up_by, started_at=self.started_at,
                              end_judged=end_heard)
        await self.desk._each_sink("call_ended", summary)
        return summary

    async def _publish(self, found: list[Violation]) -> None:
        if found:
            await self.desk._each_sink("call_progress", self.call_id, score(self.session.engine.violations))
        for v in found:
            a = Alert(desk=self.desk.opt.desk, call_id=self.call_id, rule=v.rule, start=round(v.start, 2),
                      end=round(v.end, 2), emitted=round(self.clock.now(), 2), text=v.text,
                      evidence=v.evidence, phrase=v.phrase, severity=v.severity, role_confidence=v.role_confidence)
            self._alert_of[finding(v)] = len(self.alerts)
            self.alerts.append(a)
            await self.desk._each_sink("emit", a)

    async def _withdraw(self, withdrawn: list[tuple[Violation, str]]) -> None:
        """Alerts raised live that the call's final judgement does not hold: taken back, so the
        supervisor's board agrees with the call's result."""
        for v, why in withdrawn:
            k = self._alert_of.pop(finding(v), None)
            if k is not None:
                a = self.alerts[k]
                self.alerts[k] = replace(a, withdrawn=why)
                await self.desk._each_sink("withdraw", a, why)

    async def _recogniser(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            *_, w = await self._work.get()
            if w is None:
                return
            u = w.utterance
            before = None if w.partial else self._last_heard.get(u.role)
            try:
                (tr,) = await loop.run_in_executor(self.desk._pool, self.desk.transcriber.transcribe, [u], before)
            except Exception as exc:  # one bad utterance must not stall the call: it counts as unheard
                log.error("call %s: recogniser failed on %.1f-%.1f s: %s", self.call_id, u.start, u.end, exc)
                tr = Transcript(u.role, u.start, u.end, "", speech=False, dropped_because="recogniser failed")
            if not w.partial:
                self._last_heard[u.role] = Heard(u, tr)
            heard = len(self.session.transcripts)
            found = self.session.transcribed(w, tr)
            line = self.session.transcripts[-1] if len(self.session.transcripts) > heard else None
            if not w.partial and line is not None and line.speech and line.text:
                # A line of the call as heard (not a piece, not a tone; in mono with its side): for the live transcript.
                await self.desk._each_sink("transcript", self.call_id, line)
            await self._publish(found)

    async def _submit(self, work: list[Work]) -> None:
        for w in work:
            if w.partial:
                if self._work.full() or self._work.qsize() > 0:
                    self.skipped += 1  # the recogniser is behind: the final transcript will do
                else:
                    self._work.put_nowait((2, next(self._order), w))
            else:
                await self._work.put((0 if w.utterance.role == "agent" else 1, next(self._order), w))
