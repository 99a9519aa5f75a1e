"""A desk that listens all day: one ordered stream in, calls out.

Audio frames from the source and the softphone's `Control`s (hook endpoint,
baresip) are put on one bounded queue in the order they arrive, so a hang-up
applies exactly where it happened in the audio. `CallDetector` cuts that stream
into calls; each call is followed by a `LiveCall`. A call's last words are
still being transcribed while the next stream items are read, so the source is
never left waiting for the recogniser at the end of a call.

    runner = DeskRunner(desk, source, CallDetectOptions())
    await control_server(runner.control)     # softphone hooks, optional
    summaries = await runner.run(stop_event)
"""
from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from monitor.events import (
    AudioFrame,
    CallEnded,
    CallEvent,
    CallStarted,
    Control,
    EndOfStream,
    Role,
)
from monitor.live.calls import CallDetectOptions, CallDetector, StreamItem
from monitor.live.desk import Desk, LiveCall
from monitor.live.sinks import CallSummary

log = logging.getLogger("monitor.live")

# Calls that stopped being followed before they really ended: their goodbye and
# who hung up are not judged (the softphone went away, a new call began without
# an end, the audio stopped).
UNSEEN_ENDS = ("end of audio", "desk stopped", "softphone lost", "new call")


class Source(Protocol):
    roles: tuple[Role, ...]

    def frames(self) -> AsyncIterator[AudioFrame | Control | EndOfStream]: ...

    def stop(self) -> None: ...


class DeskRunner:
    """Wires a source, the softphone's controls, call detection and a desk together."""

    def __init__(self, desk: Desk, source: Source, detect: CallDetectOptions = CallDetectOptions(),
                 speed: float = 1.0, max_calls: int | None = None, queue_items: int = 400,
                 new_id: Callable[[], str] = lambda: uuid.uuid4().hex[:12],
                 on_call: Callable[[CallSummary], None] | None = None) -> None:
        self.desk = desk
        self.source = source
        self.detector = CallDetector(source.roles, detect, new_id)
        self.speed = speed
        self.max_calls = max_calls
        self.on_call = on_call
        self.error: str | None = None  # why the source stopped, if it failed
        self._q: asyncio.Queue[StreamItem] = asyncio.Queue(maxsize=queue_items)
        self._call: LiveCall | None = None
        self._finishing: list[asyncio.Task[CallSummary]] = []
        self.summaries: list[CallSummary] = []

    async def control(self, ctl: Control) -> None:
        """A softphone event, put in the stream where it arrives (waits for room, never dropped)."""
        await self._q.put(ctl)

    async def run(self, stop: asyncio.Event | None = None) -> list[CallSummary]:
        """Follow calls until the source ends, `stop` is set or `max_calls` calls are done."""
        pump = asyncio.create_task(self._pump(), name="desk-source")
        stopper = asyncio.create_task(self._stop_on(stop)) if stop is not None else None
        try:
            await self._follow()
        finally:
            for t in (pump, stopper):
                if t is not None and not t.done():
                    t.cancel()
            await asyncio.gather(pump, *([stopper] if stopper else []), return_exceptions=True)
            if self._call is not None:  # cancelled mid-call: still report what was heard
                self._end_call(CallEnded(t=self.detector.now - self._call.started.at, why="desk stopped"))
            self.summaries = list(await asyncio.gather(*self._finishing))
        return self.summaries

    async def _stop_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self.source.stop()

    async def _pump(self) -> None:
        try:
            async for item in self.source.frames():
                await self._q.put(item)
                if isinstance(item, EndOfStream):
                    return
        except Exception as exc:  # the source is gone for good: end the call, keep its alerts
            self.error = f"{type(exc).__name__}: {exc}"
            log.error("audio source failed: %s", self.error)
        await self._q.put(EndOfStream(t=self.detector.now))

    async def _follow(self) -> None:
        ended = 0
        while True:
            item = await self._q.get()
            for out in self.detector.feed(item):
                if isinstance(out, CallStarted):
                    self._call = self.desk.open_call(out, self.source.roles, self.speed)
                    self.detector.follow(self._call.session)
                    await self._call.begin()
                elif isinstance(out, AudioFrame):
                    assert self._call is not None
                    await self._call.feed(out)
                elif isinstance(out, CallEnded):
                    assert self._call is not None
                    if out.by is not None:
                        await self._call.feed(CallEvent(t=out.t, type="hangup", by=out.by, source=out.source))
                    self._end_call(out)
                    ended += 1
                    if self.max_calls and ended >= self.max_calls:
                        self.source.stop()
                        return
                elif isinstance(out, EndOfStream):
                    return

    def _end_call(self, ended: CallEnded) -> None:
        call, self._call = self._call, None
        assert call is not None
        why, heard = ended.why, ended.why not in UNSEEN_ENDS
        if why in ("end of audio", "desk stopped"):
            # A desk's audio never ends with a call: it was stopped, or the device is gone.
            why = f"audio lost: {self.error}" if self.error else "desk stopped"

        async def finish() -> CallSummary:
            summary = await call.finish(ended.t, why, end_heard=heard)
            if self.on_call is not None:
                self.on_call(summary)
            return summary

        self._finishing.append(asyncio.create_task(finish(), name=f"finish-{call.call_id}"))
