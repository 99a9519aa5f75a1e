"""A desk that replays a scripted call in (scaled) real time: for the board tests, the
board benchmark and demos. The whole live path runs (VAD, rules, the hub client); only
the recogniser reads its words from the script (monitor.asr.scripted).

    call = ScriptedCall("c-1", lines, seconds=20)
    summaries = await replay_desk("ws://127.0.0.1:8765/ws", token, "desk-1", call, spool)
"""
from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from monitor.asr.scripted import Line, ScriptedTranscriber
from monitor.events import SAMPLE_RATE, AudioFrame, Control, EndOfStream, Role
from monitor.live.calls import CallDetectOptions
from monitor.live.desk import Desk, DeskOptions
from monitor.live.runner import DeskRunner
from monitor.live.sinks import AlertSink, CallSummary, HubSink
from monitor.phrasebook import load_profile


def _voiced(seconds: float, f0: float, seed: int) -> np.ndarray:
    """A vowel-like buzz that a VAD takes for speech."""
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    wobble = 1 + 0.03 * np.sin(2 * np.pi * 3 * t)
    x = sum(np.sin(2 * np.pi * f0 * k * wobble * t) / k for k in range(1, 8))
    env = np.minimum(1.0, np.minimum(t, seconds - t) / 0.05)
    rng = np.random.default_rng(seed)
    return (0.25 * x * env + 0.002 * rng.standard_normal(n)).astype(np.float32)


@dataclass(frozen=True)
class ScriptedCall:
    """A call: its id, what each side says when (call seconds), and how long it lasts."""

    call_id: str
    lines: Sequence[Line]
    seconds: float
    hung_up_by: Role = "caller"

    def audio(self) -> dict[Role, np.ndarray]:
        """Both channels (read-only arrays, shared by calls with the same timing)."""
        return _audio(tuple((x.role, x.start, x.end) for x in self.lines), self.seconds)


@functools.lru_cache(maxsize=32)
def _audio(spans: tuple[tuple[Role, float, float], ...], seconds: float) -> dict[Role, np.ndarray]:
    """Voiced bursts where the lines are spoken, faint noise elsewhere."""
    n = int(seconds * SAMPLE_RATE)
    rng = np.random.default_rng(7)
    chans: dict[Role, np.ndarray] = {
        r: (0.001 * rng.standard_normal(n)).astype(np.float32) for r in ("agent", "caller")}
    for i, (role, start, end) in enumerate(spans):
        burst = _voiced(end - start, 190.0 if role == "agent" else 140.0, i)
        a = int(start * SAMPLE_RATE)
        chans[role][a:a + len(burst)] = burst[:max(0, n - a)]
    for x in chans.values():
        x.flags.writeable = False
    return chans


class PacedSource:
    """The call as a softphone-started stream: start, the audio at `speed` x real time, end."""

    roles: tuple[Role, ...] = ("agent", "caller")

    def __init__(self, call: ScriptedCall, speed: float = 1.0, block_s: float = 0.1) -> None:
        self.call, self.speed, self.block_s = call, speed, block_s
        self._stop = False
        self._chans = call.audio()  # made now, not when the call starts

    def stop(self) -> None:
        self._stop = True

    async def frames(self) -> AsyncIterator[AudioFrame | Control | EndOfStream]:
        chans = self._chans
        b = int(self.block_s * SAMPLE_RATE)
        n = len(chans["agent"])
        yield Control("start", call_id=self.call.call_id)
        t0 = time.monotonic()
        for i in range(0, n, b):
            if self._stop:
                break
            for role in self.roles:
                yield AudioFrame(role, i / SAMPLE_RATE, chans[role][i:i + b])
            due = t0 + (i + b) / SAMPLE_RATE / self.speed
            await asyncio.sleep(max(0.0, due - time.monotonic()))
        yield Control("end", by=self.call.hung_up_by)
        yield EndOfStream(n / SAMPLE_RATE)


async def replay_desk(url: str, token: str, desk: str, calls: Sequence[ScriptedCall], spool: Path,
                      profile: str = "zte", speed: float = 1.0, heartbeat_s: float = 10.0,
                      extra_sinks: Sequence[AlertSink] = (),
                      on_sink: Callable[[HubSink], None] | None = None) -> list[CallSummary]:
    """Replay `calls` one after the other as desk `desk` pushing to the hub at `url`."""
    prof = load_profile(profile)
    sink = HubSink(url, token, desk, spool, profile=prof.name)
    sink.client.heartbeat_s = heartbeat_s
    if on_sink is not None:
        on_sink(sink)
    summaries: list[CallSummary] = []
    d = Desk(prof, ScriptedTranscriber([]), [sink, *extra_sinks], DeskOptions(desk=desk))
    try:
        await sink.start()
        for call in calls:
            d.transcriber = ScriptedTranscriber(call.lines)  # each call's words from 0 s
            runner = DeskRunner(d, PacedSource(call, speed), CallDetectOptions(from_audio=False),
                                speed=speed)
            summaries += await runner.run()
    finally:
        await d.close()
    return summaries
