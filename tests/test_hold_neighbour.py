"""A neighbour's unreadable mumble on the agent's headset does not end a hold's silence; the agent's own
unreadable words, and anything on the caller's line, still do."""
from dataclasses import replace

import numpy as np

from monitor.audio.levels import level_db, speech_level_db
from monitor.events import SAMPLE_RATE
from monitor.judge_input import JudgeInput
from monitor.rules.hold import AGENT_LEVEL_PERCENTILE, QUIET_UNREAD_DB
from tests.scripted import agent, caller
from tests.test_rules import ZTE, rules_of, run

AGENT_DB = -20.0


def heard(t, level):
    return replace(t, level_db=level)


def call_with_a_silence(*during):
    """The agent greets and answers at -20 dB; 8-19 s nobody says a readable word (no hold ask)."""
    lines = [heard(agent(0.5, 3.0, "您好，中兴通讯，请问有什么可以帮您？"), AGENT_DB),
             caller(3.5, 5.5, "我的设备出了点问题。"),
             heard(agent(6.0, 8.0, "好的，我看一下。"), AGENT_DB - 1.0),
             heard(agent(19.0, 21.0, "系统显示线路是正常的。"), AGENT_DB),
             heard(agent(22.0, 24.0, "还有其他需要吗？没有的话，再见。"), AGENT_DB)]
    return lines + list(during)


def mumble(level, role="agent", why="unlikely text"):
    t = (agent if role == "agent" else caller)(12.0, 14.5, "请问请问请问", speech=False, why=why)
    return heard(t, level)


def test_a_neighbours_mumble_well_below_the_agents_voice_leaves_the_hold_silent():
    assert rules_of(run(ZTE, call_with_a_silence(mumble(AGENT_DB - 6.5)))) == ["hold"]
    assert rules_of(run(ZTE, call_with_a_silence(mumble(AGENT_DB - 6.5, why="repetition")))) == ["hold"]


def test_the_agents_own_unreadable_words_still_end_the_silence():
    assert rules_of(run(ZTE, call_with_a_silence(mumble(AGENT_DB - 2.5)))) == []
    assert rules_of(run(ZTE, call_with_a_silence(mumble(None)))) == []  # level not measured: as before


def test_a_quiet_burst_on_the_callers_line_still_ends_the_silence():
    """A caller's level varies with emotion and distance: no level cue on that side."""
    assert rules_of(run(ZTE, call_with_a_silence(mumble(AGENT_DB - 12.0, role="caller")))) == []


def test_before_the_agent_said_a_readable_word_a_quiet_burst_counts():
    lines = [heard(agent(0.5, 3.0, "????", speech=False, why="unlikely text"), AGENT_DB - 8.0),
             caller(3.5, 5.5, "喂？"), mumble(AGENT_DB - 8.0),
             heard(agent(19.0, 21.0, "您好，中兴通讯。"), AGENT_DB)]
    assert "hold" not in rules_of(run(ZTE, lines))


def test_a_mixed_mono_call_has_no_agent_channel_to_measure():
    lines = [replace(t, role_confidence=0.9) for t in call_with_a_silence(mumble(AGENT_DB - 6.5))]
    assert "hold" not in rules_of(run(ZTE, lines, roles=("agent", "caller")))


def test_the_level_is_kept_in_the_report_for_rescoring():
    inp = JudgeInput(roles=("agent", "caller"), direction="inbound", rules=("hold",),
                     transcripts=call_with_a_silence(mumble(AGENT_DB - 6.5)), confirmed_tones=[], tones=[],
                     events=[], duration=26.0, truncated=False, note="", path="x.wav")
    again = JudgeInput.from_dict(inp.to_dict())
    assert [t.level_db for t in again.transcripts] == [t.level_db for t in inp.transcripts]
    assert again.transcripts[-1].level_db == AGENT_DB - 6.5


def test_the_talkers_level_ignores_the_pauses_a_long_stretch_holds(corpus_dir):
    from monitor.audio.files import load_call

    voice = load_call(corpus_dir / "dev-002.wav").channels["agent"][int(0.5 * SAMPLE_RATE):int(3.5 * SAMPLE_RATE)]
    padded = np.concatenate([voice, np.zeros(6 * SAMPLE_RATE, np.float32), voice])
    level = speech_level_db(voice)
    assert level is not None and abs(speech_level_db(padded) - level) < 2.0  # half the stretch silent
    assert level_db(voice) - level_db(padded) > 3.0  # the mean over the span drops with it
    assert abs(speech_level_db(voice * 10 ** (-6.5 / 20)) - (level - 6.5)) < 0.1
    assert speech_level_db(voice[:SAMPLE_RATE // 5]) is None


def test_every_readable_agent_line_of_real_calls_is_near_the_agents_voice(scored_dev_subset):
    """The recogniser's transcripts carry their level, and no agent line of the dev calls is quiet
    enough to be taken for a neighbour (the margin the rule relies on)."""
    for cid, (report, _) in scored_dev_subset.items():
        levels = [t.level_db for t in report.judge_input.transcripts if t.role == "agent" and t.speech]
        assert levels and all(v is not None for v in levels), cid
        for k in range(1, len(levels)):
            main = float(np.percentile(levels[:k], AGENT_LEVEL_PERCENTILE))
            assert main - levels[k] < QUIET_UNREAD_DB - 1.0, (cid, k, main, levels[k])
