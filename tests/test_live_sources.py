"""Audio sources: replay pacing, and device capture that survives overflows and lost devices."""
import asyncio
import time

import numpy as np

from monitor.events import AudioFrame, EndOfStream
from monitor.live.sources import DeviceOptions, DeviceSource, ReplaySource


def test_replay_is_paced_by_the_clock_at_the_asked_speed(samples_dir):
    source = ReplaySource(samples_dir / "tel-unicom.wav", speed=16.0)

    async def go():
        t0 = time.monotonic()
        n = 0
        async for item in source.frames():
            if isinstance(item, EndOfStream):
                return time.monotonic() - t0, n, item.t
            assert isinstance(item, AudioFrame) and item.samples.dtype == np.float32
            n += 1
    wall, frames, duration = asyncio.run(go())
    assert abs(wall - duration / 16.0) < 0.5
    assert frames == 2 * int(np.ceil(duration / 0.1 - 1e-9))


def test_a_full_capture_queue_drops_and_counts_blocks_instead_of_blocking_the_callback():
    source = DeviceSource(DeviceOptions(agent_device="x"))

    async def go():
        source._queue = asyncio.Queue(maxsize=4)
        block = np.zeros((800, 2), dtype=np.float32)
        for _ in range(5):
            source._enqueue({"agent": 0, "caller": 1}, 16000, block)
    asyncio.run(go())
    assert source.stats.blocks == 4 and source.stats.overflows == 6


def test_a_missing_device_is_reported_and_retried_not_fatal():
    source = DeviceSource(DeviceOptions(agent_device="no such device 42", retry_s=0.05))

    async def go():
        async def stop_after_three_errors():
            # Each attempt asks PortAudio for the device list, which takes a while on a loaded
            # machine: wait for the attempts, not for a fixed time.
            for _ in range(400):
                if source.stats.device_errors >= 3:
                    break
                await asyncio.sleep(0.05)
            source.stop()
        asyncio.create_task(stop_after_three_errors())
        return [item async for item in source.frames()]
    items = asyncio.run(go())
    assert isinstance(items[-1], EndOfStream)
    assert source.stats.device_errors >= 3 and source.stats.reconnects >= 2
