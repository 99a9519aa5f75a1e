"""The live path, fed block by block with a scripted recogniser: alerts come when they are known."""
import asyncio

import numpy as np

from monitor.asr.scripted import Line, ScriptedTranscriber
from monitor.events import AudioFrame, EndOfStream
from monitor.live.desk import Desk, DeskOptions
from monitor.live.session import CallSession, LiveOptions
from monitor.phrasebook import load_profile
from tests.test_vad import quiet, voiced

SR = 16000
ZTE = load_profile("zte")


def two_channels(agent_spans, caller_spans, seconds):
    """Audio with voiced bursts at the given (start, end) spans of each channel."""
    chans = {}
    for role, spans in (("agent", agent_spans), ("caller", caller_spans)):
        x = quiet(seconds)
        for s, e in spans:
            burst = voiced(e - s, f0=190 if role == "agent" else 140)
            x[int(s * SR):int(s * SR) + len(burst)] = burst
        chans[role] = x
    return chans


async def frames(chans, block_s=0.1):
    n = len(chans["agent"])
    b = int(block_s * SR)
    for i in range(0, n, b):
        for role, x in chans.items():
            yield AudioFrame(role, i / SR, x[i:i + b])
    yield EndOfStream(n / SR)


class Collect:
    def __init__(self):
        self.alerts = []

    async def emit(self, alert):
        self.alerts.append(alert)

    async def close(self):
        pass


def replay(chans, lines, options=LiveOptions()):
    sink = Collect()
    desk = Desk(ZTE, ScriptedTranscriber(lines), [sink], DeskOptions(desk="t", live=options))

    async def go():
        try:
            return await desk.run_call(frames(chans), ("agent", "caller"), "c", speed=0.0)
        finally:
            await desk.close()

    return asyncio.run(go()), sink.alerts


def test_greeting_alert_is_raised_at_the_deadline_when_the_agent_is_silent():
    session = CallSession("c", ZTE)
    fired_at = None
    block = int(0.05 * SR)
    for _ in range(0, 7 * SR, block):
        for role in ("agent", "caller"):
            _, found = session.feed(role, quiet(0.05))
            if found and fired_at is None:
                fired_at = session.duration
                assert [v.rule for v in found] == ["greeting"]
    assert fired_at is not None and 5.0 < fired_at <= 5.1


def test_words_still_being_said_hold_the_greeting_decision():
    session = CallSession("c", ZTE)
    chans = two_channels([(4.0, 9.0)], [], 9.5)
    for i in range(0, int(6.5 * SR), 800):
        work, found = session.feed("agent", chans["agent"][i:i + 800])
        session.feed("caller", chans["caller"][i:i + 800])
        assert not found  # at 6.5 s the agent is still talking since 4 s: maybe a greeting
    assert session.watermark <= 4.0


def test_replayed_call_raises_the_violations_of_its_script():
    chans = two_channels([(0.5, 2.0), (6.0, 8.0), (10.0, 11.5)], [(2.5, 5.0), (8.5, 9.5)], 13.0)
    lines = [Line("agent", 0.5, 2.0, "喂，说吧。"), Line("caller", 2.5, 5.0, "我想问一下这个设备多少钱。"),
             Line("agent", 6.0, 8.0, "这种小事也找我，你们自己处理一下。"), Line("caller", 8.5, 9.5, "好的。"),
             Line("agent", 10.0, 11.5, "好的，就这样吧。")]
    summary, alerts = replay(chans, lines)
    assert sorted(v.rule for v in summary.violations) == ["closing", "forbidden", "greeting", "hangup"]
    assert {a.rule for a in alerts} == {"closing", "forbidden", "greeting", "hangup"}
    forbidden = next(a for a in alerts if a.rule == "forbidden")
    assert forbidden.phrase == "这种小事也找我" and forbidden.call_id == "c" and forbidden.desk == "t"


def test_forbidden_words_alert_before_a_long_utterance_ends():
    chans = two_channels([(0.5, 2.0), (3.0, 11.0)], [], 12.5)
    lines = [Line("agent", 0.5, 2.0, "您好，中兴通讯！"),
             Line("agent", 3.0, 11.0, "这个故障与我无关，你找别人吧，我们这边没有办法处理这种情况。")]
    session = CallSession("c", ZTE, options=LiveOptions(partial_every_s=1.0, partial_min_s=1.5))
    stt = ScriptedTranscriber(lines)
    early = None
    for i in range(0, int(12.5 * SR), 800):
        work, _ = session.feed("agent", chans["agent"][i:i + 800])
        session.feed("caller", chans["caller"][i:i + 800])
        for w in work:
            (tr,) = stt.transcribe([w.utterance])
            for v in session.transcribed(w, tr):
                if v.rule == "forbidden" and early is None:
                    early = session.duration
    assert early is not None and early < 11.0  # the agent was still talking
    session.finish()
    assert [v.rule for v in session.engine.violations].count("forbidden") == 1  # partial and final: one finding


def test_a_busy_tone_on_the_caller_side_is_not_transcribed_and_means_the_caller_hung_up():
    from tests.test_tones import china_busy  # generated ITU tone

    chans = two_channels([(0.5, 2.0), (3.0, 4.5)], [(2.2, 2.8)], 9.0)
    tone = china_busy(3.5).astype(np.float32)
    tone = tone[:len(chans["caller"]) - int(5.0 * SR)]
    chans["caller"][int(5.0 * SR):int(5.0 * SR) + len(tone)] += tone
    lines = [Line("agent", 0.5, 2.0, "您好，中兴通讯！"), Line("caller", 2.2, 2.8, "好的"),
             Line("agent", 3.0, 4.5, "感谢您的来电，再见！"), Line("caller", 5.0, 9.0, "嘟嘟嘟")]
    summary, alerts = replay(chans, lines)
    assert summary.violations == [] and alerts == []


def test_the_busy_tones_echo_on_the_agents_channel_is_not_glued_to_the_goodbye_live_as_in_batch():
    """The caller hangs up 0.4 s after the agent's goodbye; the tone leaks onto the agent's channel
    nearly as loud as the tone itself (an AGC lifts echo). From the tone's onset nobody is talking
    to anyone: the goodbye ends where its words end, although live the tone is known a second late."""
    from pathlib import Path

    from monitor.audio.files import CallAudio
    from monitor.pipeline import caller_tones, utterances_of
    from monitor.vad import VadOptions
    from tests.test_tones import china_busy

    chans = two_channels([(0.5, 2.0), (3.0, 4.5)], [(2.2, 2.8)], 9.0)
    onset, delay = 4.9, int(0.08 * SR)
    tone = china_busy(4.0, lead=0.0).astype(np.float32)[:len(chans["caller"]) - int(onset * SR)]
    chans["caller"][int(onset * SR):int(onset * SR) + len(tone)] += tone
    echo = 0.8 * tone[:len(tone) - delay]
    chans["agent"][int(onset * SR) + delay:int(onset * SR) + delay + len(echo)] += echo

    call = CallAudio(path=Path("c.wav"), source_rate=SR, source_channels=2, channels=chans)
    _, tones = caller_tones(call)
    assert tones and abs(tones[0].start - onset) < 0.2
    batch = sorted((u.role, round(u.start, 2), round(u.end, 2))
                   for u in utterances_of(call, tones, VadOptions()))

    session = CallSession("c", ZTE)
    work = []
    b = int(0.1 * SR)
    for i in range(0, len(chans["agent"]), b):
        for role in ("agent", "caller"):
            work += session.feed(role, chans[role][i:i + b])[0]
    work += session.finish()
    live = sorted((w.utterance.role, round(w.utterance.start, 2), round(w.utterance.end, 2))
                  for w in work if not w.partial)
    goodbye = [u for u in batch if u[0] == "agent"][-1]
    assert goodbye[2] < onset  # the words and a little pad, not the tone after them
    assert live == batch
