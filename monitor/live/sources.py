"""Where live audio comes from: a recording replayed on the clock, or sound devices.

Both yield `AudioFrame`s (16 kHz mono float32 per role) on an asyncio queue.
The device callback only copies and enqueues; when the bounded queue is full
the block is dropped and counted (the call goes on; the desk reports it).
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator, Sequence

import numpy as np

from monitor.audio.files import SAMPLE_RATE, ChannelRoles, load_call, resample
from monitor.events import AudioFrame, CallEvent, EndOfStream, Role

log = logging.getLogger("monitor.live")


@dataclass
class SourceStats:
    blocks: int = 0
    overflows: int = 0  # blocks dropped because the queue was full
    device_errors: int = 0
    reconnects: int = 0


class ReplaySource:
    """A recording fed as if it were live, paced by the clock (`speed` x real time; 0 = no pacing)."""

    def __init__(self, path: Path, roles: ChannelRoles = ChannelRoles(), speed: float = 1.0,
                 block_s: float = 0.1, events: Sequence[CallEvent] = ()) -> None:
        self.call = load_call(path, roles)
        self.events = sorted(events, key=lambda e: e.t)
        self.speed = speed
        self.block = int(block_s * SAMPLE_RATE)
        self.stats = SourceStats()

    @property
    def roles(self) -> tuple[Role, ...]:
        return self.call.roles

    async def frames(self) -> AsyncIterator[AudioFrame | CallEvent | EndOfStream]:
        """The call's frames, its logged call events where they happened, then the end."""
        t0 = time.monotonic()
        n = max(len(x) for x in self.call.channels.values())
        events = list(self.events)
        for i in range(0, n, self.block):
            t_audio = i / SAMPLE_RATE
            while events and events[0].t <= t_audio:
                yield events.pop(0)
            if self.speed > 0:
                delay = t0 + (t_audio + self.block / SAMPLE_RATE) / self.speed - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0)
            for role, x in self.call.channels.items():
                block = x[i:i + self.block]
                if len(block):
                    self.stats.blocks += 1
                    yield AudioFrame(role=role, start=t_audio, samples=block)
        for ev in events:
            yield ev
        yield EndOfStream(t=n / SAMPLE_RATE)


@dataclass(frozen=True)
class DeviceOptions:
    """Capture settings. One stereo device (`agent_device` only) or two devices."""

    agent_device: str | int | None = None
    caller_device: str | int | None = None
    roles: ChannelRoles = field(default_factory=ChannelRoles)
    samplerate: int | None = None  # None: the device's default
    block_s: float = 0.05
    queue_blocks: int = 200  # ~10 s of audio per stream before blocks are dropped
    retry_s: float = 2.0  # wait before reopening a lost device


class DeviceSource:
    """Sound-device capture through PortAudio (sounddevice)."""

    def __init__(self, options: DeviceOptions) -> None:
        self.opt = options
        self.stats = SourceStats()
        self._queue: asyncio.Queue | None = None
        self._stop = asyncio.Event()
        two = options.caller_device is not None
        self.roles: tuple[Role, ...] = ("agent", "caller")
        self._plan = ([(options.agent_device, {"agent": 0}), (options.caller_device, {"caller": 0})] if two
                      else [(options.agent_device, {"agent": options.roles.agent,
                                                    "caller": options.roles.caller})])

    def stop(self) -> None:
        self._stop.set()

    async def frames(self) -> AsyncIterator[AudioFrame | EndOfStream]:
        loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue(maxsize=self.opt.queue_blocks * len(self._plan))
        tasks = [asyncio.create_task(self._capture(loop, dev, chans)) for dev, chans in self._plan]
        heard: dict[Role, int] = {}
        try:
            while not self._stop.is_set():
                try:
                    role, rate, block = await asyncio.wait_for(self._queue.get(), timeout=0.5)
                except asyncio.TimeoutError:
                    continue
                x = resample(block, rate)
                start = heard.get(role, 0) / SAMPLE_RATE
                heard[role] = heard.get(role, 0) + len(x)
                yield AudioFrame(role=role, start=start, samples=x)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        yield EndOfStream(t=max(heard.values(), default=0) / SAMPLE_RATE)

    async def _capture(self, loop: asyncio.AbstractEventLoop, device, channels: dict[Role, int]) -> None:
        import sounddevice as sd

        n_channels = max(channels.values()) + 1
        while not self._stop.is_set():
            try:
                info = sd.query_devices(device, "input")
                rate = int(self.opt.samplerate or info["default_samplerate"])
                lost = asyncio.Event()

                def callback(indata, frames, time_info, status, rate=rate):
                    # Runs on PortAudio's thread: copy, hand over, nothing else.
                    block = indata.copy()
                    loop.call_soon_threadsafe(self._enqueue, channels, rate, block)

                def finished():
                    loop.call_soon_threadsafe(lost.set)

                with sd.InputStream(device=device, channels=n_channels, samplerate=rate, dtype="float32",
                                    blocksize=int(rate * self.opt.block_s), callback=callback,
                                    finished_callback=finished):
                    log.info("capturing %s at %d Hz", info["name"], rate)
                    while not self._stop.is_set() and not lost.is_set():
                        await asyncio.sleep(0.2)
                if lost.is_set() and not self._stop.is_set():
                    raise sd.PortAudioError("the input stream stopped")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a lost or unplugged device: report and retry
                self.stats.device_errors += 1
                log.warning("audio device %s: %s; retrying in %.0f s", device, exc, self.opt.retry_s)
                await asyncio.sleep(self.opt.retry_s)
                self.stats.reconnects += 1

    def _enqueue(self, channels: dict[Role, int], rate: int, block: np.ndarray) -> None:
        for role, ch in channels.items():
            try:
                self._queue.put_nowait((role, rate, np.ascontiguousarray(block[:, ch])))
                self.stats.blocks += 1
            except asyncio.QueueFull:
                self.stats.overflows += 1


def list_devices() -> list[dict]:
    import sounddevice as sd

    out = []
    for i, d in enumerate(sd.query_devices()):
        out.append({"index": i, "name": d["name"], "inputs": d["max_input_channels"],
                    "outputs": d["max_output_channels"], "default_samplerate": d["default_samplerate"]})
    return out
