"""A neighbour's voice glued by the VAD to the agent's own words is cut off, in batch and live."""
import numpy as np
import pytest
import soundfile as sf

from monitor.asr.scripted import Line, ScriptedTranscriber
from monitor.attribution import Attributor
from monitor.audio.files import load_call
from monitor.audio.levels import level_db
from monitor.events import SAMPLE_RATE as SR
from monitor.events import AudioFrame, Control, Utterance
from monitor.phrasebook import load_profile
from monitor.pipeline import score_call
from monitor.vad import segment
from tests.test_desk_runner import run as run_desk

DB = 10 ** (1 / 20)


@pytest.fixture(scope="module")
def voices(samples_dir):
    """Real speech: the agent's and the caller's VAD lines of samples/demo-zte.flac."""
    call = load_call(samples_dir / "demo-zte.flac")
    return {role: [u.samples for u in segment(x, role)] for role, x in call.channels.items()}


def at_db(x: np.ndarray, db: float) -> np.ndarray:
    return (x * DB ** (db - level_db(x))).astype(np.float32)


def test_a_neighbour_running_into_the_agents_words_is_cut_off_and_the_agent_is_kept(voices):
    a = Attributor()
    for own in voices["agent"][:3]:
        assert a.judge("agent", own, None) is None  # the agent's level is known
    main = float(np.percentile([level_db(x) for x in voices["agent"][:3]], 75))
    neighbour = at_db(voices["caller"][1], main - 14)
    agent = voices["agent"][3]
    u = Utterance("agent", 10.0, 10.0 + (len(neighbour) + len(agent)) / SR, np.concatenate([neighbour, agent]))
    kept, cut = a.split_background_ends(u)
    assert [t.dropped_because for t in cut] == ["background voice (before this side's words)"]
    junction = 10.0 + len(neighbour) / SR  # the agent's VAD line starts with its 0.4 s pre-roll
    assert junction - 0.35 <= kept.start <= junction + 0.3  # all of the agent's words, little of the neighbour
    assert kept.end == u.end
    # the agent's own sentence, a little softer, with no one before it: nothing cut
    soft = Utterance("agent", 0.0, len(agent) / SR, at_db(agent, main - 5))
    assert a.split_background_ends(soft) == (soft, [])


def hold_call(voices, seconds: float = 25.0):
    """The agent greets, answers, then leaves the caller 12 s in silence without asking them to
    wait; a neighbour 14 dB below the agent talks for 2.8 s on the agent's channel and runs
    straight into the agent's return line, so the VAD makes one utterance of both."""
    agent, caller = np.zeros(int(seconds * SR), np.float32), np.zeros(int(seconds * SR), np.float32)
    rng = np.random.default_rng(3)
    agent += (0.0003 * rng.standard_normal(len(agent))).astype(np.float32)  # a quiet headset line
    caller += (0.0003 * rng.standard_normal(len(caller))).astype(np.float32)

    def put(x: np.ndarray, at: float, y: np.ndarray) -> float:
        x[int(at * SR):int(at * SR) + len(y)] += y
        return at + len(y) / SR

    main = float(np.percentile([level_db(x) for x in voices["agent"][:3]], 75))
    greeting_end = put(agent, 0.5, voices["agent"][0])
    asked_end = put(caller, greeting_end + 0.3, voices["caller"][0])
    answer_end = put(agent, asked_end + 0.4, voices["agent"][1])
    back = answer_end + 12.0
    neighbour_start = back - 2.8
    put(agent, neighbour_start, at_db(voices["caller"][1], main - 14)[:int(2.8 * SR)])
    back_end = put(agent, back, voices["agent"][3])
    lines = [Line("agent", 0.5, greeting_end, "您好，中兴通讯！"),
             Line("caller", greeting_end + 0.3, asked_end, "我们这边的网络一直断。"),
             Line("agent", asked_end + 0.4, answer_end, "好的，我帮您查一下。"),
             Line("agent", neighbour_start, back - 0.1, "今天不上门了"),  # the neighbour, if the recogniser is asked
             Line("agent", back, back_end, "系统显示线路是正常的。")]
    return agent, caller, lines, (answer_end, back)


def test_the_silence_before_the_agents_return_is_a_hold_though_a_neighbour_talked_into_it(voices, tmp_path):
    agent, caller, lines, (silent_from, back) = hold_call(voices)
    sf.write(tmp_path / "call.wav", np.stack([agent, caller], axis=1), SR)
    report = score_call(tmp_path / "call.wav", load_profile("zte"), ScriptedTranscriber(lines)).to_dict()
    (hold,) = [v for v in report["violations"] if v["rule"] == "hold"]
    assert silent_from - 0.3 <= hold["start"] <= silent_from + 0.3
    (cut,) = report["not_their_words"]  # nothing else is cut: no one else is on the line
    assert cut["why"] == "background voice (before this side's words)" and back - 3.3 <= cut["start"] <= back - 2.5
    assert "今天不上门了" not in "".join(t["text"] for t in report["transcript"])
    # a desk hearing the same call live cuts the same words off and raises the same hold
    b = int(0.1 * SR)
    frames = [AudioFrame(role, i / SR, x[i:i + b]) for i in range(0, len(agent), b)
              for role, x in (("agent", agent), ("caller", caller))]
    (s,), _, _ = run_desk([Control("start", call_id="c1"), *frames, Control("end", by="caller")], lines)
    live = [(v.rule, round(v.start, 1)) for v in s.violations if v.rule == "hold"]
    assert live == [("hold", round(hold["start"], 1))]
