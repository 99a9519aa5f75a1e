"""Whose voice is it: the side's own speaker, the other side leaking in (echo), or a neighbour."""
import numpy as np

from monitor.asr.scripted import Line
from monitor.attribution import Attributor
from monitor.events import AudioFrame, Control
from monitor.live.session import CallSession
from monitor.phrasebook import load_profile
from tests.test_desk_runner import run as run_desk
from tests.test_vad import quiet, voiced

SR = 16000
DB = 10 ** (1 / 20)


def syllables(seconds: float, f0: float = 140) -> np.ndarray:
    """Speech comes in syllables: 0.2 s voiced, 0.1 s nearly silent."""
    out = np.concatenate([np.concatenate([voiced(0.2, f0=f0), quiet(0.1, level=0.0005)])
                          for _ in range(int(seconds / 0.3))])
    return out[:int(seconds * SR)]


def test_the_other_sides_voice_leaking_in_is_echo_and_double_talk_is_not():
    a = Attributor()
    caller = syllables(1.2)
    assert a.judge("agent", caller / DB ** 18, caller).startswith("echo of the other side (-18 dB)")
    # both talk at once, the agent 6 dB softer than the caller: the agent's own words
    assert a.judge("agent", syllables(1.2, f0=190) / DB ** 6, caller) is None


def test_a_quiet_agent_beside_a_loud_flat_noise_on_the_caller_line_is_the_agent():
    """An AGC lifts the caller line's noise to -10 dBFS while nobody speaks on it: louder than a
    quiet speakerphone agent, but level, so it is nobody's voice and the agent's words are kept."""
    a = Attributor()
    noise = (0.3 * np.random.default_rng(1).standard_normal(int(1.2 * SR))).astype(np.float32)
    agent = syllables(1.2, f0=190) / DB ** 25
    assert a.judge("agent", agent, noise) is None
    # the same agent under the caller's words at that level is their echo
    caller = syllables(1.2) * 0.9
    assert a.judge("agent", agent, caller).startswith("echo of the other side")


def test_a_neighbour_well_below_this_sides_speaker_is_background_once_that_speaker_is_known():
    a = Attributor()
    own = voiced(1.0)
    assert a.judge("agent", own / DB ** 12, None) is None  # nothing known yet: kept
    for _ in range(3):
        assert a.judge("agent", own, None) is None
    assert a.judge("agent", own / DB ** 12, None).startswith("background voice")
    assert a.judge("agent", own / DB ** 4, None) is None  # a softer sentence of the agent's own


def two_channels_with_leak(seconds=12.0):
    """The agent greets and answers, never says goodbye; the caller leaks onto the agent channel 12.5 dB down
    (webrtcvad itself ignores fainter leaks on a quiet line)."""
    agent, caller = quiet(seconds, level=0.0003), quiet(seconds, level=0.0003)  # a quiet headset line
    for s, e in ((0.5, 2.0), (5.0, 6.5)):
        agent[int(s * SR):int(s * SR) + int((e - s) * SR)] += voiced(e - s, f0=190)
    for s, e in ((3.0, 4.0), (7.5, 8.5)):
        burst = voiced(e - s, f0=140)
        caller[int(s * SR):int(s * SR) + len(burst)] += burst
        agent[int(s * SR):int(s * SR) + len(burst)] += burst / DB ** 12.5  # line echo / sidetone
    return agent, caller


LINES = [Line("agent", 0.5, 2.0, "您好，中兴通讯！"), Line("caller", 3.0, 4.0, "我的路由器坏了。"),
         Line("agent", 5.0, 6.5, "好的，我们明天派人上门。"), Line("caller", 7.5, 8.5, "好的，再见。"),
         # what the recogniser would make of the echo on the agent channel, if it were asked
         Line("agent", 3.0, 4.0, "我的路由器坏了。"), Line("agent", 7.5, 8.5, "好的，再见。")]


def test_the_callers_goodbye_echoed_on_the_agent_channel_is_not_the_agents_goodbye():
    agent, caller = two_channels_with_leak()
    b = int(0.1 * SR)
    frames = [AudioFrame(role, i / SR, x[i:i + b]) for i in range(0, len(agent), b)
              for role, x in (("agent", agent), ("caller", caller))]
    script = [Control("start", call_id="c1"), *frames, Control("end", by="caller")]
    (s,), sink, _ = run_desk(script, LINES)
    assert [v.rule for v in s.violations] == ["closing"]  # the agent never said 再见


def test_batch_reports_the_words_it_did_not_count_and_agrees_with_live(tmp_path):
    import soundfile as sf

    from monitor.asr.scripted import ScriptedTranscriber
    from monitor.pipeline import score_call

    agent, caller = two_channels_with_leak()
    sf.write(tmp_path / "call.wav", np.stack([agent, caller], axis=1), SR)
    report = score_call(tmp_path / "call.wav", load_profile("zte"), ScriptedTranscriber(LINES))
    d = report.to_dict()
    # the agent never said goodbye (and no busy tone says the caller hung up first)
    assert [v["rule"] for v in d["violations"]] == ["closing", "hangup"]
    leaks = d["not_their_words"]
    assert [(x["channel"], round(x["start"])) for x in leaks] == [("agent", 3), ("agent", 7)]
    assert all(x["why"].startswith("echo of the other side") for x in leaks)


def test_a_live_session_drops_the_echo_before_it_reaches_the_recogniser():
    agent, caller = two_channels_with_leak()
    session = CallSession("c", load_profile("zte"))
    sent = []
    for i in range(0, len(agent), 800):
        for role, x in (("agent", agent), ("caller", caller)):
            work, _ = session.feed(role, x[i:i + 800])
            sent += [w.utterance for w in work if not w.partial]
    sent += [w.utterance for w in session.finish()]
    assert [round(u.start) for u in sent if u.role == "agent"] == [0, 5]  # the echoes at 3 and 7.5 s never go
    assert [(t.role, round(t.start)) for t in session.transcripts if t.dropped_because.startswith("echo")] == \
        [("agent", 3), ("agent", 7)]


def test_a_neighbour_lifted_near_the_agents_level_is_background_by_voice_and_the_agent_is_not(samples_dir):
    """Real speech (samples/demo-zte.flac: the caller's voice is 20 % lower than the agent's). An
    AGC lifts a neighbour to 5.5 dB below the agent: level alone keeps it, a different voice at
    that level is someone else; the agent's own sentence 5.5 dB softer stays the agent's."""
    from monitor.audio.files import load_call
    from monitor.audio.levels import level_db
    from monitor.vad import segment

    call = load_call(samples_dir / "demo-zte.flac")
    lines = {role: [u.samples for u in segment(x, role) if u.end - u.start >= 1.0]
             for role, x in call.channels.items()}
    a = Attributor()
    for own in lines["agent"][:3]:
        assert a.judge("agent", own, None) is None

    def at(x: np.ndarray, lines: list[np.ndarray]) -> np.ndarray:  # 5.5 dB below those lines' main level
        return x * DB ** (float(np.percentile([level_db(y) for y in lines], 75)) - 5.5 - level_db(x))

    why = a.judge("agent", at(lines["caller"][0], lines["agent"][:3]), None)
    assert why is not None and why.startswith("background voice (-5") and why.endswith("another voice)")
    assert a.judge("agent", at(lines["agent"][3], lines["agent"][:3]), None) is None
    # on the caller's side the voice does not count (a caller's level varies with emotion and distance)
    b = Attributor()
    for own in lines["caller"][:3]:
        assert b.judge("caller", own, None) is None
    assert b.judge("caller", at(lines["agent"][0], lines["caller"][:3]), None) is None


def glued_echo_call(seconds=9.0):
    """A loud caller complains (3.0-5.0 s) and the agent apologises at once (5.2-6.7 s): on the
    agent channel the complaint's echo, 14 dB down and 60 ms late (about as loud as the agent),
    runs straight into the apology, so the VAD makes one utterance of both."""
    agent, caller = quiet(seconds, level=0.0003), quiet(seconds, level=0.0003)
    agent[int(0.5 * SR):int(0.5 * SR) + int(1.5 * SR)] += syllables(1.5, f0=190)  # the greeting
    complaint = syllables(2.0, f0=140) * 4.0
    caller[int(3.0 * SR):int(3.0 * SR) + len(complaint)] += complaint
    at = int(3.06 * SR)
    agent[at:at + len(complaint)] += complaint / DB ** 14
    apology = syllables(1.5, f0=190)
    agent[int(5.2 * SR):int(5.2 * SR) + len(apology)] += apology
    return agent, caller


GLUED_LINES = [Line("agent", 0.5, 2.0, "您好，中兴通讯！"), Line("caller", 3.0, 5.0, "你们怎么这么差！"),
               Line("agent", 3.06, 4.9, "你们怎么这么差"),  # what the recogniser makes of the echo, if asked
               Line("agent", 5.2, 6.7, "非常抱歉，我马上帮您处理。")]


def test_the_callers_complaint_echoed_into_the_agents_apology_is_cut_off_in_batch_and_live(tmp_path):
    import soundfile as sf

    from monitor.asr.scripted import ScriptedTranscriber
    from monitor.pipeline import score_call

    agent, caller = glued_echo_call()
    sf.write(tmp_path / "call.wav", np.stack([agent, caller], axis=1), SR)
    asr = ScriptedTranscriber(GLUED_LINES)
    report = score_call(tmp_path / "call.wav", load_profile("zte"), asr).to_dict()
    assert "forbidden" not in [v["rule"] for v in report["violations"]]
    (echo,) = [x for x in report["not_their_words"] if x["channel"] == "agent"]
    assert echo["why"] == "echo of the other side (before this side's words)"
    assert 2.5 <= echo["start"] <= 3.1 and 4.8 <= echo["end"] <= 5.2
    apology = next(t for t in report["transcript"] if t["text"].startswith("非常抱歉"))
    assert apology["text"] == "非常抱歉，我马上帮您处理。" and apology["start"] >= 4.8
    # a desk hearing the same call live cuts the same echo off before it reaches the recogniser
    b = int(0.1 * SR)
    frames = [AudioFrame(role, i / SR, x[i:i + b]) for i in range(0, len(agent), b)
              for role, x in (("agent", agent), ("caller", caller))]
    (s,), sink, _ = run_desk([Control("start", call_id="c1"), *frames, Control("end", by="caller")], GLUED_LINES)
    # (the caller hung up first here; the file has no busy tone, so batch also reports `hangup`)
    assert [v.rule for v in s.violations] == ["closing"] == [v["rule"] for v in report["violations"]][:1]


def agc_noise_call(seconds=4.8):
    """An AGC holds the caller line's noise at -10 dBFS until the caller's back-channel (2.75 s),
    then backs off to -28 dBFS and lifts the agent's echo (80 ms late) above the agent; meanwhile
    the agent greets (0.9-2.7 s), some 20 dB below that noise, and goes on (3.0-4.6 s)."""
    rng = np.random.default_rng(3)
    agent = quiet(seconds, level=0.0003)
    for at, words in ((0.9, syllables(1.8, f0=190)), (3.0, syllables(1.6, f0=190))):
        agent[int(at * SR):int(at * SR) + len(words)] += words / DB ** 4
    lifted = int(2.8 * SR)
    caller = np.concatenate([0.3 * rng.standard_normal(lifted),
                             0.04 * rng.standard_normal(int(seconds * SR) - lifted)]).astype(np.float32)
    back_channel = syllables(0.4) * 0.8
    caller[int(2.75 * SR):int(2.75 * SR) + len(back_channel)] += back_channel
    caller[lifted:] += _line_echo(agent, 80, 6.0)[lifted:]  # then the agent's own echo, lifted by it
    return agent, caller


def test_the_agents_greeting_under_a_callers_line_held_flat_by_an_agc_is_not_cut_off_as_echo(tmp_path):
    """field33 syn-021: the flat noise is louder than the agent's greeting and, next to the line's
    quieter noise after it, looked like the caller talking; its level does not come and go as
    speech does, so the greeting is not taken for the caller's echo (the call lost its greeting)."""
    import soundfile as sf

    from monitor.asr.scripted import ScriptedTranscriber
    from monitor.attribution import AttributionOptions, echo_ends
    from monitor.pipeline import score_call

    agent, caller = agc_noise_call()
    assert echo_ends(agent, caller, AttributionOptions()) == (0, len(agent))
    sf.write(tmp_path / "call.wav", np.stack([agent, caller], axis=1), SR)
    lines = [Line("agent", 0.9, 2.7, "您好，中兴通讯！"), Line("caller", 2.75, 3.15, "对对。"),
             Line("agent", 3.0, 4.6, "请问有什么可以帮您？")]
    report = score_call(tmp_path / "call.wav", load_profile("zte"), ScriptedTranscriber(lines)).to_dict()
    assert "greeting" not in [v["rule"] for v in report["violations"]]
    assert not [x for x in report["not_their_words"] if x["channel"] == "agent"]


def greeting_then_the_callers_echo(seconds=12.0):
    """field35 syn-034: an AGC holds the caller line's noise at -10 dBFS, louder than the agent's
    greeting (0.4-3.4 s); then the caller talks (4.0-11.5 s) and the line's echo of it, 25 dB
    down and 60 ms late, keeps the agent's channel open: one VAD utterance, greeting and echo."""
    rng = np.random.default_rng(5)
    agent = quiet(seconds, level=0.0003)
    greeting = syllables(3.0, f0=200)
    agent[int(0.4 * SR):int(0.4 * SR) + len(greeting)] += greeting / DB ** 6
    talks = int(4.0 * SR)
    caller = (0.3 * rng.standard_normal(int(seconds * SR))).astype(np.float32)
    words = syllables(7.5, f0=120) * 8.0
    caller[talks:talks + len(words)] += words
    agent += _line_echo(caller * (np.arange(len(caller)) >= talks), 60, -25.0)
    return agent, caller


def test_the_agents_greeting_then_the_callers_echo_in_one_utterance_keeps_the_greeting(tmp_path):
    """The whole utterance sits far below the caller line (its noise, then its words), so as a
    whole it is the caller's echo; but while the caller line is only noise the agent's loud
    frames are the agent's own words: the echo after them is cut off and the greeting kept."""
    import soundfile as sf

    from monitor.asr.scripted import ScriptedTranscriber
    from monitor.attribution import AttributionOptions, echo_ends
    from monitor.pipeline import score_call

    agent, caller = greeting_then_the_callers_echo()
    a, b = echo_ends(agent, caller, AttributionOptions())
    assert a == 0 and 3.4 * SR <= b <= 4.3 * SR
    sf.write(tmp_path / "call.wav", np.stack([agent, caller], axis=1), SR)
    lines = [Line("agent", 0.4, 3.4, "您好，中兴通讯！"), Line("caller", 4.0, 11.5, "是这样的，我的交换机一直掉线。")]
    report = score_call(tmp_path / "call.wav", load_profile("zte"), ScriptedTranscriber(lines)).to_dict()
    assert "greeting" not in [v["rule"] for v in report["violations"]]
    echo = [x for x in report["not_their_words"] if x["channel"] == "agent"]
    assert echo and all(x["start"] >= 3.4 and x["why"].startswith("echo of the other side") for x in echo), echo


def _line_echo(x: np.ndarray, ms: int, db: float) -> np.ndarray:
    """What a line's hybrid puts on the other channel: the telephone band, `ms` late, `db` louder or softer."""
    spec = np.fft.rfft(x)
    freq = np.fft.rfftfreq(len(x), 1 / SR)
    spec[(freq < 300) | (freq > 3400)] = 0
    d = int(ms * SR / 1000)
    band = np.fft.irfft(spec, len(x))
    return (np.concatenate([np.zeros(d), band[:len(x) - d]]) * DB ** db).astype(np.float32)


def test_the_agents_words_stay_the_agents_when_an_agc_lifts_their_echo_above_them_on_the_caller_line(samples_dir):
    """An AGC on the caller's line pulled the agent's echo (80 ms late) up above the agent's own
    channel: by level the agent's greeting was the caller's echo, and the call lost its greeting.
    The agent's channel has the words first: they are the agent's. The caller's words, 80 ms late
    on the agent's channel, are still echo whatever the levels."""

    from monitor.attribution import AttributionOptions, echo_ends
    from monitor.audio.files import load_call
    from monitor.audio.lead import LeadOptions

    no_lead = AttributionOptions(lead=LeadOptions(enabled=False))
    call = load_call(samples_dir / "demo-zte.flac")
    greeting = call.channels["agent"][int(0.4 * SR):int(2.3 * SR)]  # 您好，中兴通讯！
    question = call.channels["caller"][int(2.6 * SR):int(6.6 * SR)]  # 你好，我们这边的设备出了点问题…
    noise = np.random.default_rng(3).normal(0, 0.002, len(greeting)).astype(np.float32)
    lifted = _line_echo(greeting, 80, +14) + noise
    assert Attributor().judge("agent", greeting, lifted) is None
    assert Attributor(no_lead).judge("agent", greeting, lifted).startswith("echo of the other side")
    # the mirror: the caller's question on the agent's channel is its echo, and stays so when an
    # AGC on the agent's line lifts it above the caller's own channel
    assert Attributor().judge("agent", _line_echo(question, 80, -15), question).startswith("echo of the other side")
    loud_echo = _line_echo(question, 80, +5)
    assert Attributor(no_lead).judge("agent", loud_echo, question) is None
    assert Attributor().judge("agent", loud_echo, question).endswith("later than it)")

    # the VAD glued the caller's echo after the greeting: the echo is cut off, the greeting kept
    own = np.concatenate([greeting, _line_echo(question, 80, -15)])
    other = np.concatenate([lifted, question])
    a, b = echo_ends(own, other)
    assert a == 0 and abs(b / SR - len(greeting) / SR) < 0.3, (a / SR, b / SR)
    assert Attributor().judge("agent", own[a:b], other[a:b]) is None
    _, by_level = echo_ends(own, other, no_lead, no_lead.echo_ends)
    assert by_level < len(greeting) / 2  # by level alone most of the greeting went with the echo

    # an AGC on the agent's line lifted the caller's question to the agent's own level, and the VAD
    # glued the agent's answer after it: the question, which comes later there, is cut off
    own = np.concatenate([loud_echo, greeting])
    other = np.concatenate([question, _line_echo(greeting, 80, -15) + noise])
    a, b = echo_ends(own, other)
    assert abs(a - len(question)) / SR < 0.3 and b == len(own), (a / SR, b / SR)
    assert echo_ends(own, other, no_lead, no_lead.echo_ends) == (0, len(own))  # by level: all the agent's


def test_the_agents_words_stay_the_agents_when_the_recorder_writes_the_agents_leg_late(samples_dir):
    """A recorder may write one leg 15-60 ms behind the other (a jitter buffer, a codec, a stall). With
    a faint leak of the agent onto the caller's line, the agent's own words then came after their
    leak, and every one of them was dropped as 'echo of the other side (24 dB, later than it)'."""
    from monitor.audio.files import load_call

    call = load_call(samples_dir / "demo-zte.flac")
    words = call.channels["agent"][int(7.2 * SR):int(9.2 * SR)]  # 这个问题我也没办法。
    noise = np.random.default_rng(5).normal(0, 0.0005, len(words)).astype(np.float32)
    for late_ms, leak_ms, leak_db in ((25, 4, -25), (15, 0, -20), (60, 30, -25), (60, 4, -25)):
        own = _line_echo(words, late_ms, 0) + noise  # the agent's leg, written late
        other = _line_echo(words, leak_ms, leak_db) + noise  # its leak on the caller's line
        assert Attributor().judge("agent", own, other) is None, (late_ms, leak_ms, leak_db)


def test_a_mono_mix_copied_to_both_channels_is_known_at_any_small_offset_even_ending_in_a_busy_tone(samples_dir):
    """The busy tone at a call's end is among its loudest windows, and a tone's delay is ambiguous:
    copies 5 ms apart were taken for two sides (and the caller's rude line charged to the agent)."""
    from monitor.audio.files import load_call
    from monitor.audio.lead import same_audio

    call = load_call(samples_dir / "demo-zte.flac")
    t = np.arange(3 * SR) / SR
    tone = (0.5 * np.sin(2 * np.pi * 450 * t) * ((t % 0.7) < 0.35)).astype(np.float32)
    mix = np.concatenate([0.5 * (call.channels["agent"] + call.channels["caller"]), tone])
    assert not same_audio(call.channels["agent"], call.channels["caller"])  # two sides
    for ms in (0, 1, 5, 10, 15, 30):
        d = ms * SR // 1000
        late = np.concatenate([np.zeros(d, np.float32), mix[:len(mix) - d]])
        assert same_audio(mix, late * DB ** -6), ms
