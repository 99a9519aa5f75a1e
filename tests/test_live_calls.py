"""Calls found in a desk's continuous stream: the softphone's word first, else the audio."""
import numpy as np

from monitor.events import AudioFrame, CallEnded, CallStarted, Control, EndOfStream
from monitor.live.calls import CallDetectOptions, CallDetector
from tests.test_tones import china_busy
from tests.test_vad import quiet, voiced

SR = 16000


def stream(agent: np.ndarray, caller: np.ndarray, block_s: float = 0.1, controls=None):
    """Desk stream items: frames of both channels, with controls inserted at the given times."""
    controls = dict(controls or {})
    b = int(block_s * SR)
    for i in range(0, len(agent), b):
        t = i / SR
        for at in sorted(k for k in controls if k <= t):
            yield controls.pop(at)
        yield AudioFrame("agent", t, agent[i:i + b])
        yield AudioFrame("caller", t, caller[i:i + b])
    yield EndOfStream(len(agent) / SR)


def cut(items, options=CallDetectOptions(idle_end_s=8.0, tone_end_s=2.0)):
    """[(CallStarted, [frames], CallEnded)] the detector makes of the stream."""
    ids = iter(f"call-{n}" for n in range(1, 100))
    det = CallDetector(("agent", "caller"), options, new_id=lambda: next(ids))
    calls, current = [], None
    for item in items:
        for out in det.feed(item):
            if isinstance(out, CallStarted):
                current = (out, [])
            elif isinstance(out, AudioFrame):
                assert current is not None, "a frame outside a call"
                current[1].append(out)
            elif isinstance(out, CallEnded):
                calls.append((*current, out))
                current = None
            else:
                assert isinstance(out, EndOfStream)
    return calls


def test_speech_after_idle_starts_a_call_and_the_busy_tone_ends_it():
    agent = np.concatenate([quiet(3.0), voiced(1.5), quiet(8.0)])
    caller = np.concatenate([quiet(5.0), voiced(1.5), quiet(0.5), china_busy(4.0, lead=0.0).astype(np.float32)])
    caller = np.concatenate([caller, quiet(len(agent) / SR - len(caller) / SR)])
    (started, frames, ended), = cut(stream(agent, caller))
    assert started.how == "speech" and frames[0].start == 0.0  # t = 0 is the pre-roll before the first words
    assert 1.5 < started.at < 3.0
    assert ended.why == "busy tone" and ended.by is None
    # tone from 7.0 s of stream time = about 5 s of call time; ended ~2 s after confirmation
    assert 6.0 < ended.t < 10.0


def test_the_busy_tone_after_a_call_does_not_start_another():
    agent = np.concatenate([quiet(1.0), voiced(1.5), quiet(12.0)])
    caller = np.concatenate([quiet(3.0), china_busy(11.0, lead=0.0).astype(np.float32), quiet(0.5)])
    calls = cut(stream(agent, caller))
    assert [c[2].why for c in calls] == ["busy tone"]


def test_long_silence_on_both_sides_ends_a_call_and_the_next_words_start_another():
    agent = np.concatenate([quiet(1.0), voiced(1.5), quiet(10.0), voiced(1.5), quiet(2.0)])
    caller = quiet(len(agent) / SR)
    calls = cut(stream(agent, caller))
    assert [c[0].call_id for c in calls] == ["call-1", "call-2"]
    assert [c[2].why for c in calls] == ["silence", "end of audio"]


def test_the_softphone_starts_and_ends_the_call_where_its_events_sit_in_the_audio():
    agent = np.concatenate([quiet(1.0), voiced(1.5), quiet(3.0), voiced(1.0), quiet(2.0)])
    caller = quiet(len(agent) / SR)
    controls = {0.5: Control("start", call_id="abc", peer="sip:1001@pbx", source="baresip"),
                4.0: Control("end", by="caller", source="baresip", reason="Connection reset by peer")}
    (started, frames, ended), = cut(stream(agent, caller, controls=controls), CallDetectOptions(from_audio=False))
    assert (started.call_id, started.how, started.peer, started.at) == ("abc", "baresip", "sip:1001@pbx", 0.5)
    assert frames[0].start == 0.0 and abs(frames[-1].end - 3.5) < 1e-6  # no audio from after the hang-up
    assert (ended.by, ended.why, ended.t) == ("caller", "baresip", 3.5)
    assert ended.source == "baresip: Connection reset by peer"


def test_once_a_softphone_has_spoken_speech_alone_no_longer_starts_calls():
    agent = np.concatenate([quiet(1.0), voiced(1.5), quiet(2.0), voiced(1.5), quiet(1.0)])
    caller = quiet(len(agent) / SR)
    controls = {0.5: Control("start", call_id="a"), 3.0: Control("end", by="agent")}
    calls = cut(stream(agent, caller, controls=controls))
    assert [(c[0].call_id, c[2].why) for c in calls] == [("a", "hook")]


def test_a_start_during_a_call_ends_it_and_an_end_without_a_call_is_ignored():
    agent = quiet(6.0)
    caller = quiet(6.0)
    controls = {0.0: Control("end", by="agent"), 1.0: Control("start", call_id="a"),
                2.0: Control("start", call_id="b"), 3.0: Control("end", call_id="zzz"),
                4.0: Control("end", by="agent", call_id="b")}
    calls = cut(stream(agent, caller, controls=controls))
    assert [(c[0].call_id, c[2].why, c[2].by) for c in calls] == [("a", "new call", None),
                                                                   ("b", "hook", "agent")]


def test_a_channel_lagging_the_softphone_start_is_trimmed_to_the_call():
    det = CallDetector(("agent", "caller"), CallDetectOptions(from_audio=False))
    det.feed(AudioFrame("agent", 0.0, quiet(0.1)))
    det.feed(Control("start", call_id="x"))
    out = det.feed(AudioFrame("caller", 0.05, quiet(0.1)))  # ends 0.05 s into the call
    (frame,) = out
    assert frame.start == 0.0 and len(frame.samples) == int(0.05 * SR)


def test_a_softphone_that_went_away_ends_the_call_without_saying_who_hung_up():
    agent = quiet(3.0)
    caller = quiet(3.0)
    controls = {0.5: Control("start", call_id="a", source="baresip"),
                2.0: Control("end", call_id="a", source="baresip", reason="lost the connection to baresip",
                             lost=True)}
    (started, frames, ended), = cut(stream(agent, caller, controls=controls))
    assert (ended.why, ended.by) == ("softphone lost", None)


def test_one_mixed_channel_is_cut_into_calls_by_its_busy_tone_too():
    """A mono desk (both sides in one channel, "agent"): the busy tone is in the mix; it ends the
    call and, going on, starts no other."""
    agent = np.concatenate([quiet(3.0), voiced(1.5), quiet(14.0)])
    caller = np.concatenate([quiet(5.0), voiced(1.5), quiet(0.5), china_busy(11.0, lead=0.0).astype(np.float32)])
    caller = np.concatenate([caller, quiet(len(agent) / SR - len(caller) / SR)])
    mix = 0.5 * (agent + caller)
    b = int(0.1 * SR)
    items = [AudioFrame("agent", i / SR, mix[i:i + b]) for i in range(0, len(mix), b)] + [EndOfStream(len(mix) / SR)]
    det = CallDetector(("agent",), CallDetectOptions(idle_end_s=8.0, tone_end_s=2.0), new_id=lambda: "c")
    out = [o for item in items for o in det.feed(item)]
    assert [type(o).__name__ for o in out if not isinstance(o, AudioFrame)] == \
        ["CallStarted", "CallEnded", "EndOfStream"]
    (ended,) = [o for o in out if isinstance(o, CallEnded)]
    assert ended.why == "busy tone" and 6.0 < ended.t < 10.0
