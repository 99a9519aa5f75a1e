"""Silence at a call's end: the agent waiting for the caller to hang up is not holding them."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from monitor.asr.scripted import Line, ScriptedTranscriber
from monitor.events import ToneEvent, Transcript
from monitor.phrasebook import load_profile
from monitor.pipeline import score_call
from monitor.rules import RuleEngine
from monitor.rules.engine import timeline_key


def wait_for_the_hang_up(corpus_dir, call_id: str, wait_s: float, out):
    """The dev call with quiet line noise put after the last words, so that the caller's busy tone
    starts `wait_s` after them; the scripted words of its labels."""
    labels = json.loads((corpus_dir / f"{call_id}.json").read_text())
    assert labels["hangup"]["by"] == "caller"
    x, rate = sf.read(corpus_dir / labels["audio"], dtype="float32", always_2d=True)
    last = max(u["end"] for u in labels["utterances"])
    tone_at = labels["hangup"]["t"]
    at = int((last + tone_at) / 2 * rate)
    pad = int((wait_s - (tone_at - last)) * rate)
    line = (10 ** (-62 / 20) * np.random.default_rng(5).standard_normal((pad, 2))).astype(np.float32)
    sf.write(out / "call.wav", np.concatenate([x[:at], line, x[at:]]), rate)
    lines = [Line(u["channel"], u["start"], u["end"], u["text"]) for u in labels["utterances"]]
    return out / "call.wav", labels, lines


@pytest.mark.parametrize("wait_s", [9.5, 12.0])
def test_an_agent_who_waits_after_the_goodbyes_for_the_caller_to_hang_up_is_not_holding(corpus_dir, tmp_path,
                                                                                       wait_s):
    """dev-005 ends "感谢您的来电，再见" / "好的，拜拜"; the caller hangs up 9.5 s or 12 s later. At 9.5 s
    the busy tone is confirmed only past the 10 s limit; at 12 s the call was over anyway."""
    path, labels, lines = wait_for_the_hang_up(corpus_dir, "dev-005", wait_s, tmp_path)
    report = score_call(path, load_profile(labels["profile"]), ScriptedTranscriber(lines)).to_dict()
    assert [t["start"] for t in report["tones"]], "the caller's busy tone is heard"
    assert not [v for v in report["violations"] if v["rule"] in ("hold", "hangup")]


def judge(items, t_end: float) -> list[tuple[str, float, float]]:
    engine = RuleEngine(load_profile("zte"))
    for item in sorted(items, key=timeline_key):
        engine.feed(item)
    engine.tick(t_end)
    engine.end(t_end)
    return [(v.rule, v.start, v.end) for v in engine.violations if v.rule == "hold"]


def words(role, start, end, text):
    return Transcript(role=role, start=start, end=end, text=text)


OPENING = [words("agent", 0.5, 2.0, "您好，中兴通讯！"), words("caller", 2.5, 4.0, "我的设备连不上网。"),
           words("agent", 4.5, 6.0, "好的，我看一下。")]


def busy(start: float, confirmed_after: float = 1.1) -> ToneEvent:
    return ToneEvent(role="caller", start=start, end=start + confirmed_after, kind="busy_450")


def test_a_silence_that_ends_in_the_callers_hang_up_is_a_hold_only_past_the_limit():
    # silent from 6.0 s; the caller gives up 9.5 s later, the tone confirmed 1.1 s or 2.3 s after that
    assert judge([*OPENING, busy(15.5)], 40.0) == []
    assert judge([*OPENING, busy(15.5, 2.3)], 40.0) == []
    # ... 11 s later: the caller was left 11 s in silence, the hold ends where the caller hung up
    assert judge([*OPENING, busy(17.0)], 40.0) == [("hold", 6.0, 17.0)]


def test_a_silence_after_the_agents_goodbye_is_no_hold_but_one_before_it_is():
    goodbye = [words("agent", 7.0, 9.0, "感谢您的来电，再见！"), words("caller", 9.5, 10.5, "好的，拜拜。")]
    assert judge([*OPENING, *goodbye], 40.0) == []  # the agent waits 30 s, then hangs up
    assert judge([*OPENING, *goodbye, busy(30.0)], 40.0) == []
    # silent 13 s before the agent comes back to say goodbye: that was a hold
    late = [words("agent", 19.0, 21.0, "感谢您的来电，再见！")]
    assert judge([*OPENING, *late], 30.0) == [("hold", 6.0, 19.0)]
    # a goodbye, then 16 s of silence, then the agent is back and the call goes on: a hold all the same
    back = [words("agent", 7.0, 9.0, "感谢您的来电，再见！"), words("agent", 25.0, 27.0, "对不起，让您久等了。")]
    assert judge([*OPENING, *back], 30.0) == [("hold", 9.0, 25.0)]


def test_a_goodbye_the_recogniser_only_scored_as_likely_also_ends_the_call_for_the_hold_rule():
    """An outside tester's case: the agent's garbled last line carries 再见 in `may_open_with` (it
    counts for `closing`); the caller then stays on 13 s before hanging up. That is no hold either."""
    from dataclasses import replace

    garbled = replace(words("agent", 7.0, 9.0, "在这儿祝你一切是迷惑会活动。"), may_open_with=("再见",))
    assert judge([*OPENING, garbled, busy(22.0)], 30.0) == []
    assert [(r, start) for r, start, _ in judge([*OPENING, replace(garbled, may_open_with=()), busy(22.0)], 30.0)] \
        == [("hold", 9.0)]
