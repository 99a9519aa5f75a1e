"""Calls found in continuous desk audio, and the softphone hook's control endpoint."""
import asyncio

import numpy as np
import pytest

from monitor.events import AudioFrame, EndOfStream
from monitor.live.calls import CallDetectOptions, CallTracker, Control, post_control, serve_control
from tests.test_tones import china_busy
from tests.test_vad import quiet, voiced

SR = 16000


def stream(agent: np.ndarray, caller: np.ndarray, block_s: float = 0.1):
    async def gen():
        b = int(block_s * SR)
        for i in range(0, len(agent), b):
            yield AudioFrame("agent", i / SR, agent[i:i + b])
            yield AudioFrame("caller", i / SR, caller[i:i + b])
            await asyncio.sleep(0)
        yield EndOfStream(len(agent) / SR)
    return gen()


def calls_in(agent, caller, controls=None, options=CallDetectOptions(idle_end_s=8.0, tone_end_s=2.0)):
    """[(call_id, first frame time, last time, end reason frames)] for the audio."""
    async def go():
        q = controls or asyncio.Queue()
        tracker = CallTracker(stream(agent, caller), ("agent", "caller"), q, options)
        calls = asyncio.Queue()
        task = asyncio.create_task(tracker.run(calls))
        found = []
        while (call := await calls.get()) is not None:
            call_id, frames, events = call
            items = []
            while True:
                item = await frames.get()
                items.append(item)
                if isinstance(item, EndOfStream):
                    break
            found.append((call_id, items, events))
        await task
        return found
    return asyncio.run(go())


def test_speech_after_idle_starts_a_call_and_the_busy_tone_ends_it():
    agent = np.concatenate([quiet(3.0), voiced(1.5), quiet(8.0)])
    caller = np.concatenate([quiet(5.0), voiced(1.5), quiet(0.5), china_busy(4.0, lead=0.0).astype(np.float32)])
    caller = np.concatenate([caller, quiet(len(agent) / SR - len(caller) / SR)])
    (call_id, items, events), = calls_in(agent, caller)
    frames = [i for i in items if isinstance(i, AudioFrame)]
    assert frames[0].start == 0.0  # call time starts with the pre-roll before the first words
    end = items[-1]
    assert isinstance(end, EndOfStream)
    # tone from 7.0 s of stream time = about 5 s of call time; ended ~2 s after confirmation
    assert 6.0 < end.t < 10.0


def test_long_silence_on_both_sides_ends_a_call_and_the_next_words_start_another():
    agent = np.concatenate([quiet(1.0), voiced(1.5), quiet(10.0), voiced(1.5), quiet(2.0)])
    caller = quiet(len(agent) / SR)
    found = calls_in(agent, caller)
    assert len(found) == 2
    assert found[0][0] != found[1][0]


def test_softphone_hook_starts_and_ends_the_call_and_says_who_hung_up():
    agent = np.concatenate([quiet(1.0), voiced(1.5), quiet(3.0)])
    caller = quiet(len(agent) / SR)

    async def go():
        q = asyncio.Queue()
        q.put_nowait(Control("start", call_id="abc"))
        tracker = CallTracker(stream(agent, caller), ("agent", "caller"), q,
                              CallDetectOptions(from_audio=False))
        calls = asyncio.Queue()
        task = asyncio.create_task(tracker.run(calls))
        call_id, frames, events = await calls.get()
        q.put_nowait(Control("end", by="caller"))
        while not isinstance(await frames.get(), EndOfStream):
            pass
        task.cancel()
        return call_id, events
    call_id, events = asyncio.run(go())
    assert call_id == "abc"
    assert [(e.type, e.by) for e in events] == [("hangup", "caller")]


@pytest.mark.parametrize("action, by, token, want", [
    ("start", None, "t0k", "ok"),
    ("end", "caller", "t0k", "ok"),
    ("end", "nobody", "t0k", "400"),
    ("start", None, "wrong", "401"),
])
def test_control_endpoint_accepts_good_commands_and_refuses_bad_ones(action, by, token, want):
    async def go():
        q = asyncio.Queue()
        server = await serve_control(q, port=0, token="t0k")
        port = server.sockets[0].getsockname()[1]
        try:
            reply = await asyncio.to_thread(post_control, action, port, by, None, token)
        except RuntimeError as exc:
            reply = str(exc)
        finally:
            server.close()
        return reply, (q.get_nowait() if not q.empty() else None)
    reply, control = asyncio.run(go())
    assert want in reply
    if want == "ok":
        assert control == Control(action, by=by)
    else:
        assert control is None
