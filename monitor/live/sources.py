"""Where live audio comes from: a recording replayed on the clock, or sound devices.

Both yield `AudioFrame`s (16 kHz mono float32 per role) on an asyncio queue.
The device callback only copies and enqueues; when the bounded queue is full
the block is dropped and counted (the call goes on; the desk reports it).
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from monitor.audio.files import ChannelRoles, load_call, resample
from monitor.events import SAMPLE_RATE, AudioFrame, CallEvent, EndOfStream, Role

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
        yield EndOfStream(t=n / SAMPLE_RATE, truncated=self.call.truncated)


@dataclass(frozen=True)
class DeviceOptions:
    """Capture settings. One stereo device (`agent_device` only), two devices, or one device whose
    agent channel holds both sides mixed (`mono`: the desk tells them apart, monitor.live.session)."""

    agent_device: str | int | None = None
    caller_device: str | int | None = None
    roles: ChannelRoles = field(default_factory=ChannelRoles)
    samplerate: int | None = None  # None: the device's default
    mono: bool = False
    block_s: float = 0.05
    queue_blocks: int = 200  # ~10 s of audio per stream before blocks are dropped
    retry_s: float = 2.0  # wait before reopening a lost device


class DeviceSource:
    """Sound-device capture through PortAudio (sounddevice, or a stand-in with its API for tests).

    A lost device is reopened every `retry_s`. When one of two devices comes back,
    its channel is padded with silence up to the other one, so both sides of the
    call stay on one timeline (the gap is logged and counted).
    """

    def __init__(self, options: DeviceOptions, backend: Any = None) -> None:
        self.opt = options
        self.stats = SourceStats()
        self._backend = backend
        self._queue: asyncio.Queue | None = None
        self._stop = asyncio.Event()
        two = options.caller_device is not None
        self.roles: tuple[Role, ...] = ("agent",) if options.mono else ("agent", "caller")
        self._plan: list[tuple[str | int | None, dict[Role, int]]] = (
            [(options.agent_device, {"agent": options.roles.agent})] if options.mono
            else [(options.agent_device, {"agent": 0}), (options.caller_device, {"caller": 0})] if two
            else [(options.agent_device, {"agent": options.roles.agent, "caller": options.roles.caller})])
        self._heard: dict[Role, int] = {}

    def stop(self) -> None:
        self._stop.set()

    async def frames(self) -> AsyncIterator[AudioFrame | EndOfStream]:
        loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue(maxsize=self.opt.queue_blocks * len(self._plan))
        tasks = [asyncio.create_task(self._capture(loop, dev, chans)) for dev, chans in self._plan]
        heard = self._heard
        stopping = asyncio.create_task(self._stop.wait())
        try:
            while not self._stop.is_set():
                getting = asyncio.create_task(self._queue.get())
                await asyncio.wait({getting, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not getting.done():
                    getting.cancel()
                    break
                role, rate, block = getting.result()
                if role is None:  # a device came back: pad its channels up to the others
                    for r in block:
                        ahead = max((heard.get(o, 0) for o in self.roles if o not in block), default=0)
                        gap = ahead - heard.get(r, 0)
                        if gap > 0:
                            log.warning("%s channel: %.1f s lost while its device was away", r, gap / SAMPLE_RATE)
                            yield AudioFrame(role=r, start=heard.get(r, 0) / SAMPLE_RATE,
                                             samples=np.zeros(gap, dtype=np.float32))
                            heard[r] = ahead
                    continue
                x = resample(block, rate)
                start = heard.get(role, 0) / SAMPLE_RATE
                heard[role] = heard.get(role, 0) + len(x)
                yield AudioFrame(role=role, start=start, samples=x)
        finally:
            stopping.cancel()
            for t in tasks:
                t.cancel()
            await asyncio.gather(stopping, *tasks, return_exceptions=True)
        yield EndOfStream(t=max(heard.values(), default=0) / SAMPLE_RATE)

    def _sd(self) -> Any:
        if self._backend is None:
            import sounddevice

            self._backend = sounddevice
        return self._backend

    async def _capture(self, loop: asyncio.AbstractEventLoop, device, channels: dict[Role, int]) -> None:
        sd = self._sd()
        n_channels = max(channels.values()) + 1
        failed = False
        while not self._stop.is_set():
            try:
                info = sd.query_devices(device, "input")
                rate = int(self.opt.samplerate or info["default_samplerate"])
                lost = asyncio.Event()

                def callback(indata, frames, time_info, status, rate=rate):
                    # Runs on PortAudio's thread: copy, hand over, nothing else.
                    block = indata.copy()
                    loop.call_soon_threadsafe(self._enqueue, channels, rate, block)

                def finished(lost: asyncio.Event = lost) -> None:
                    loop.call_soon_threadsafe(lost.set)

                if failed:
                    self._mark_back(channels)
                with sd.InputStream(device=device, channels=n_channels, samplerate=rate, dtype="float32",
                                    blocksize=int(rate * self.opt.block_s), callback=callback,
                                    finished_callback=finished):
                    log.info("capturing %s at %d Hz", info["name"], rate)
                    failed = False
                    stopping = asyncio.create_task(self._stop.wait())
                    losing = asyncio.create_task(lost.wait())
                    try:
                        await asyncio.wait({stopping, losing}, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        stopping.cancel()
                        losing.cancel()
                if lost.is_set() and not self._stop.is_set():
                    raise OSError("the input stream stopped")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a lost or unplugged device: report and retry
                failed = True
                self.stats.device_errors += 1
                log.warning("audio device %s: %s; retrying in %g s", device, exc, self.opt.retry_s)
                try:
                    await asyncio.wait_for(self._stop.wait(), self.opt.retry_s)
                except TimeoutError:
                    pass
                self.stats.reconnects += 1

    def _mark_back(self, channels: dict[Role, int]) -> None:
        """In the queue, after the blocks from before the loss: pad these channels there."""
        assert self._queue is not None
        try:
            self._queue.put_nowait((None, 0, tuple(channels)))
        except asyncio.QueueFull:
            self.stats.overflows += 1

    def _enqueue(self, channels: dict[Role, int], rate: int, block: np.ndarray) -> None:
        assert self._queue is not None
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
