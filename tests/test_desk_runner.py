"""A desk beside a softphone, in-process on virtual time: scripted audio, softphone events, a scripted recogniser."""
import asyncio
import threading
import time

import pytest

from monitor.asr.scripted import Line, ScriptedTranscriber
from monitor.events import AudioFrame, Control, EndOfStream
from monitor.live.calls import CallDetectOptions
from monitor.live.control import post_control, serve_control
from monitor.live.desk import Desk, DeskOptions
from monitor.live.runner import DeskRunner
from monitor.phrasebook import load_profile
from tests.test_live_session import two_channels

SR = 16000
ZTE = load_profile("zte")
GOOD = [Line("agent", 0.5, 2.0, "您好，中兴通讯！"), Line("caller", 2.5, 4.5, "我想问一下这个设备多少钱。"),
        Line("agent", 5.0, 7.0, "这个型号三百元，感谢您的来电，再见！"), Line("caller", 7.5, 8.0, "再见。")]
GOOD_SPANS = ([(0.5, 2.0), (5.0, 7.0)], [(2.5, 4.5), (7.5, 8.0)])


class Sink:
    def __init__(self):
        self.alerts, self.started, self.ended = [], [], []

    async def call_started(self, call, started_at):
        self.started.append(call)

    async def emit(self, alert):
        self.alerts.append(alert)

    async def call_ended(self, summary):
        self.ended.append(summary)

    async def close(self):
        pass


class ScriptSource:
    """The desk's stream as scripted items: frames (in desk time) and softphone controls in between.

    An item may also be a coroutine function: it is awaited there, with the stream held
    (as a softphone event arriving through the control endpoint would be).
    """

    roles = ("agent", "caller")

    def __init__(self, items):
        self.items = items
        self.stopped = False

    def stop(self):
        self.stopped = True

    async def frames(self):
        for item in self.items:
            if self.stopped:
                break
            if callable(item):
                await item()
                continue
            if isinstance(item, Exception):
                raise item
            yield item
            await asyncio.sleep(0)
        yield EndOfStream(0.0)


def audio(chans, offset=0.0, block_s=0.1):
    b = int(block_s * SR)
    n = len(chans["agent"])
    return [AudioFrame(role, offset + i / SR, chans[role][i:i + b]) for i in range(0, n, b) for role in ("agent", "caller")]


def call(call_id, by, lines=GOOD, spans=GOOD_SPANS, seconds=9.0, offset=0.0):
    """A hooked call: start, its audio, the hang-up, and the script lines shifted to desk time."""
    chans = two_channels(*spans, seconds)
    return ([Control("start", call_id=call_id)] + audio(chans, offset) + [Control("end", by=by)],
            [Line(x.role, x.start, x.end, x.text) for x in lines])


def run(items, lines, transcriber=None, detect=CallDetectOptions(from_audio=False), runner_hook=None):
    sink = Sink()
    desk = Desk(ZTE, transcriber or ScriptedTranscriber(lines), [sink], DeskOptions(desk="desk-1"),
                clock=lambda: 0.0)

    async def go():
        runner = DeskRunner(desk, ScriptSource(items), detect, speed=0.0)
        if runner_hook:
            runner_hook(runner)
        try:
            return await asyncio.wait_for(runner.run(), timeout=60), runner
        finally:
            await desk.close()

    (summaries, runner) = asyncio.run(go())
    return summaries, sink, runner


def test_a_hooked_call_where_the_caller_hangs_up_first_raises_no_hangup_alert():
    items, lines = call("c1", by="caller")
    (s,), sink, _ = run(items, lines)
    assert (s.call_id, s.hung_up_by, s.why_ended) == ("c1", "caller", "hook")
    assert sink.alerts == [] and s.violations == []


def test_a_hooked_call_where_the_agent_hangs_up_first_raises_one_hangup_alert_from_the_softphone():
    items, lines = call("c1", by="agent")
    (s,), sink, _ = run(items, lines)
    assert [a.rule for a in sink.alerts] == ["hangup"]
    assert sink.alerts[0].call_id == "c1" and "hook" in sink.alerts[0].evidence
    assert "agent hung up" in sink.alerts[0].evidence


def test_an_early_hang_up_by_the_caller_is_not_a_missing_goodbye():
    lines = GOOD[:2]
    items, _ = call("c1", by="caller", lines=lines, spans=([(0.5, 2.0)], [(2.5, 4.5)]), seconds=5.0)
    (s,), sink, _ = run(items, lines)
    assert [v.rule for v in s.violations] == ["closing"]  # the agent never said goodbye...
    assert "hangup" not in {a.rule for a in sink.alerts}  # ...but did not hang up first


def test_the_call_ends_before_its_last_words_are_transcribed():
    lines = GOOD[:2] + [Line("agent", 5.0, 7.0, "这种小事也找我，你们自己处理一下。再见！")] + GOOD[3:]
    items, _ = call("c1", by="caller", lines=lines)
    holder = {}

    class SlowAtTheEnd(ScriptedTranscriber):
        def transcribe(self, utterances, before=None):
            if any(u.role == "agent" and u.start > 4.0 for u in utterances):
                deadline = time.monotonic() + 10
                while holder["runner"].detector.call is not None and time.monotonic() < deadline:
                    time.sleep(0.01)  # the recogniser is still on it when the softphone ends the call
                assert holder["runner"].detector.call is None
            return super().transcribe(utterances, before)

    (s,), sink, _ = run(items, lines, transcriber=SlowAtTheEnd(lines),
                        runner_hook=lambda r: holder.setdefault("runner", r))
    assert [a.rule for a in sink.alerts] == ["forbidden"]
    assert sink.alerts[0].call_id == "c1" and sink.alerts[0].phrase == "这种小事也找我"
    assert sink.ended == [s]


def test_two_calls_back_to_back_keep_their_own_ids_and_hang_ups():
    first, lines1 = call("c1", by="caller")
    second, lines2 = call("c2", by="agent", offset=9.0)
    lines2 = [Line(x.role, x.start, x.end, x.text) for x in lines2]
    (s1, s2), sink, _ = run(first + second, lines1)
    assert (s1.call_id, s2.call_id) == ("c1", "c2")
    assert [(a.call_id, a.rule) for a in sink.alerts] == [("c2", "hangup")]
    assert [c.call_id for c in sink.started] == ["c1", "c2"]
    assert [x.call_id for x in sink.ended] == ["c1", "c2"]


def test_a_device_that_disappears_mid_call_ends_the_call_and_keeps_its_alerts():
    lines = [Line("agent", 0.5, 2.0, "喂，说吧。"), Line("caller", 2.5, 4.5, "我想问一下这个设备多少钱。")]
    chans = two_channels([(0.5, 2.0)], [(2.5, 4.5)], 9.0)
    frames = audio(chans)
    items = [Control("start", call_id="c1")] + frames[:100] + [OSError("the input stream stopped")] + frames[100:]
    (s,), sink, runner = run(items, lines)
    assert runner.error is not None and "input stream stopped" in runner.error
    assert s.why_ended.startswith("audio lost") and 4.9 < s.duration < 5.1
    assert not s.end_judged  # no goodbye or hang-up judged on audio that was never heard
    assert [a.rule for a in sink.alerts] == ["greeting"]  # the rude opening heard before the loss


@pytest.mark.parametrize("by, want", [("caller", []), ("agent", ["hangup"])])
def test_hook_commands_through_the_control_endpoint_reach_the_hangup_rule(by, want):
    """`monitor call start|end --by` as a softphone hook runs it: HTTP to the desk's loopback port."""
    chans = two_channels(*GOOD_SPANS, 9.0)
    frames = audio(chans)
    port, token = {}, "token-for-this-test-0123456789"

    async def hook(action, **kw):
        await asyncio.to_thread(post_control, action, port["n"], token, **kw)

    async def start():
        server = await serve_control(port["runner"].control, token, port=0)
        port["n"] = server.sockets[0].getsockname()[1]
        port["server"] = server
        await hook("start", call_id="sip-123")

    async def end():
        await hook("end", by=by)
        port["server"].close()

    items = [start] + frames + [end] + audio(two_channels([], [], 1.0), offset=9.0)
    (s,), sink, _ = run(items, GOOD, runner_hook=lambda r: port.setdefault("runner", r))
    assert s.call_id == "sip-123" and s.hung_up_by == by
    assert [a.rule for a in sink.alerts] == want


class FakeDevices:
    """Two capture devices with sounddevice's API, fed from arrays on one virtual clock.

    `outage` (device, lost_at, back_at): the device's stream stops at `lost_at`
    and it cannot be opened again until `back_at` (seconds of virtual time).
    """

    PortAudioError = OSError

    def __init__(self, audio, outage, block_s=0.05):
        self.audio, self.outage, self.block = audio, outage, int(block_s * SR)
        self.open, self.k, self.lock = {}, 0, threading.Lock()

    def now(self):
        return self.k * self.block / SR

    def query_devices(self, device, kind):
        name, lost_at, back_at = self.outage
        if device == name and lost_at <= self.now() < back_at:
            raise self.PortAudioError(f"device {device} unavailable")
        return {"name": device, "default_samplerate": SR}

    def InputStream(self, device, callback, finished_callback, **_):
        devices = self

        class Stream:
            def __enter__(self):
                with devices.lock:
                    devices.open[device] = (callback, finished_callback)

            def __exit__(self, *exc):
                with devices.lock:
                    devices.open.pop(device, None)

        return Stream()

    def drive(self, seconds, on_done):
        name, lost_at, _ = self.outage
        for k in range(int(seconds * SR / self.block)):
            self.k = k
            with self.lock:
                streams = dict(self.open)
            for device, (callback, finished) in streams.items():
                if device == name and self.now() >= lost_at and self.now() - lost_at < self.block / SR:
                    finished()  # unplugged
                    continue
                block = self.audio[device][k * self.block:(k + 1) * self.block]
                callback(block[:, None].copy(), len(block), None, None)
            time.sleep(0.002)
        on_done()


def test_a_capture_device_that_disappears_mid_call_comes_back_on_the_same_timeline():
    from monitor.live.sources import DeviceOptions, DeviceSource

    lines = [Line("agent", 0.5, 2.0, "您好，中兴通讯！"), Line("caller", 2.5, 6.5, "我想问一下这个设备多少钱。"),
             Line("agent", 6.0, 8.0, "这种小事也找我，你们自己处理一下。"), Line("caller", 8.5, 9.0, "好吧。")]
    chans = two_channels([(0.5, 2.0), (6.0, 8.0)], [(2.5, 6.5), (8.5, 9.0)], 10.0)
    devices = FakeDevices({"mic": chans["agent"], "line": chans["caller"]}, outage=("mic", 3.0, 5.0))
    source = DeviceSource(DeviceOptions(agent_device="mic", caller_device="line", retry_s=0.01), backend=devices)
    sink = Sink()
    desk = Desk(ZTE, ScriptedTranscriber(lines), [sink], DeskOptions(desk="desk-1"), clock=lambda: 0.0)

    async def go():
        runner = DeskRunner(desk, source, CallDetectOptions(from_audio=False), speed=0.0)
        loop = asyncio.get_running_loop()
        await runner.control(Control("start", call_id="c1"))
        driver = threading.Thread(target=devices.drive, args=(10.0, lambda: loop.call_soon_threadsafe(source.stop)))
        driver.start()
        try:
            return await asyncio.wait_for(runner.run(), timeout=60)
        finally:
            driver.join()
            await desk.close()

    (s,) = asyncio.run(go())
    assert source.stats.device_errors >= 2 and source.stats.reconnects >= 1
    forbidden = [a for a in sink.alerts if a.rule == "forbidden"]
    assert len(forbidden) == 1 and forbidden[0].call_id == "c1"
    assert abs(forbidden[0].start - 6.0) < 0.5  # the agent's words after the outage keep their time
    assert s.why_ended == "desk stopped" and not s.end_judged


@pytest.mark.parametrize("ending", [Control("end", source="baresip", reason="baresip exited", lost=True),
                                    Control("start", call_id="c2")])
def test_a_call_whose_end_was_not_seen_is_not_judged_on_its_goodbye_or_hang_up(ending):
    """The softphone crashed mid-call, or a new call began without an end: nobody knows how the call ended."""
    lines = GOOD[:2]
    items, _ = call("c1", by="caller", lines=lines, spans=([(0.5, 2.0)], [(2.5, 4.5)]), seconds=5.0)
    (s, *rest), sink, _ = run(items[:-1] + [ending] + audio(two_channels([], [], 1.0), offset=5.0), lines)
    assert not s.end_judged and s.violations == [] and sink.alerts == []
    assert s.why_ended in ("softphone lost", "new call")
