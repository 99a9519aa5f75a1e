"""A forbidden phrase the recogniser garbled by a syllable is checked against the audio.

On a noisy line "我不知道，别再问我了" comes back as "不知他别再问我了", one syllable off the
phrase, beyond what the matcher may forgive. The reading with the phrase in its place is scored by
the model on the line's own audio (monitor.asr.whisper `phrase_probes`); where the model gives the
phrase's words a fair chance there, that reading is kept as a near reading and the forbidden rule
reads it. Where the audio says other words, the phrase is not put in.
"""
import dataclasses

import numpy as np
import pytest

from monitor.asr.whisper import new_token_logprobs, phrase_in_place
from monitor.events import SAMPLE_RATE, Transcript, Utterance
from monitor.matcher import Pattern, PhraseMatcher
from monitor.phrasebook import load_profile
from monitor.rules.base import CallFacts
from monitor.rules.forbidden import ForbiddenRule
from monitor.text import replace_normalized
from tests.test_long_utterances import agent_words

SR = SAMPLE_RATE


def near(phrases: list[str], text: str):
    return PhraseMatcher([Pattern(p, p) for p in phrases], slack=1.0).find(text)


def test_a_reading_one_syllable_off_a_phrase_comes_near_it_only_with_slack():
    assert not PhraseMatcher([Pattern("不知道", "不知道")]).find("不知他别再问我了")
    (m,) = near(["不知道"], "不知他别再问我了")
    assert (m.name, m.matched) == ("不知道", "不知")
    # a negation is never made up: 我知道 stays far from 我不知道
    assert not near(["我不知道"], "我知道了，马上处理")


def test_the_phrase_is_put_in_place_of_what_it_matched_and_of_as_many_characters():
    (m,) = near(["没法查"], "这个号码的通话记录没法尝。")
    assert phrase_in_place("这个号码的通话记录没法尝。", m) == ["这个号码的通话记录没法查。"]
    (m,) = near(["有意见找领导去"], "您有一天找领报去，我这里管不了。")
    assert phrase_in_place("您有一天找领报去，我这里管不了。", m) == ["您有意见找领导去，我这里管不了。"]


def test_a_syllable_the_reading_left_out_is_not_put_back_alone():
    # The model heard nothing for 们 there; putting it back is scored by fluency, not by the audio
    # (你们应该已经收到短信了吧 read 你应该接受到短信了吧 would become an order).
    text = "你应该接受到我们的短信了吧？"
    (m,) = near(["你们应该"], text)
    assert "你们应该接受到我们的短信了吧？" not in phrase_in_place(text, m)
    (m,) = near(["不知道"], "不知他别再问我了。")
    assert phrase_in_place("不知他别再问我了。", m) == ["不知道别再问我了。"]
    # nor in place of characters across a pause (不知。他说 is not 不知道说)
    (m,) = near(["不知道"], "我也不知。他说的")
    assert phrase_in_place("我也不知。他说的", m) == []


def test_replacing_normalised_characters_keeps_the_punctuation_around_them():
    assert replace_normalized("好的，不知他。别再问了", 2, 5, "不知道") == "好的，不知道。别再问了"
    assert replace_normalized("你有一天找领报去，我这里管不了", 4, 8, "找领导去") == "你有一天找领导去，我这里管不了"


def test_only_the_tokens_between_the_shared_ends_are_new():
    own = [(1, -0.1), (2, -0.2), (3, -0.3), (9, -0.1)]
    other = [(1, -0.1), (5, -4.0), (6, -1.0), (9, -0.2)]
    assert new_token_logprobs(own, other) == [-4.0, -1.0]
    assert new_token_logprobs(own, own) == []


def line(x: np.ndarray) -> Utterance:
    return Utterance(role="agent", start=20.0, end=20.0 + len(x) / SR, samples=x)


def heard_as(x: np.ndarray, text: str) -> Transcript:
    return Transcript(role="agent", start=20.0, end=20.0 + len(x) / SR, text=text, speech=True)


def verified(model, x: np.ndarray, text: str) -> tuple[str, ...]:
    results: list[Transcript | None] = [heard_as(x, text)]
    model._verify_phrases([line(x)], results)
    assert results[0] is not None
    return results[0].alternatives


def zte_model(whisper_factory):
    profile = load_profile("zte")
    return profile, whisper_factory().for_profile(profile)


def test_a_rude_line_read_off_its_phrase_gets_the_phrase_back_and_raises(whisper_factory, corpus_dir):
    profile, model = zte_model(whisper_factory)
    x = agent_words(corpus_dir, "dev-029", "这种小事也找我，你们自己处理一下。")
    reading = "这个晓得也找我，你们自己处理一下。"  # two syllables off: more than the matcher forgives
    assert not profile.forbidden_matcher.find(reading)
    alternatives = verified(model, x, reading)
    assert "这种小事也找我，你们自己处理一下。" in alternatives, alternatives
    tr = dataclasses.replace(heard_as(x, reading), alternatives=alternatives)
    (v,) = ForbiddenRule(CallFacts(profile, "inbound", ("agent", "caller"))).on_transcript(tr)
    assert (v.rule, v.phrase) == ("forbidden", "这种小事也找我")
    assert "near reading" in v.evidence


def test_short_phrases_are_not_put_back(whisper_factory, corpus_dir):
    # 不知您现在方便说话吗 read as 不知在…: putting 不知道 back would take the 您 that makes it polite,
    # and a short phrase's one syllable is too little of it to tell
    profile, model = zte_model(whisper_factory)
    x = agent_words(corpus_dir, "dev-008", "不知道您现在方便说话吗？")
    assert verified(model, x, "不知在现在方便说话吗？") == ()
    x = agent_words(corpus_dir, "dev-019", "这个型号的价格不知道。")
    assert verified(model, x, "这个型号的价格不知他。") == ()


def test_a_phrase_the_audio_does_not_say_is_not_put_in(whisper_factory, corpus_dir):
    profile, model = zte_model(whisper_factory)
    # the agent's 这种小事也找我 read with other words near 怎么连这点小事他们都做不好 is not that phrase
    x = agent_words(corpus_dir, "dev-029", "这种小事也找我，你们自己处理一下。")
    assert not [a for a in verified(model, x, "这种小事也找我，你们自己处理一下。") if "做不好" in a]
    x = agent_words(corpus_dir, "dev-025", "设备就这样，我也没办法。")
    assert not [a for a in verified(model, x, "设备就这样，我也没关系。") if "无关" in a]


@pytest.mark.parametrize("text", ["这个型号的价格不知。", "价格不知", "我不。", "好的没办。", "不知。" * 80,
                                  "中兡中兴通讯", "温度30℃有问题关电四位就得们"])
def test_odd_readings_are_checked_without_failing(whisper_factory, corpus_dir, text):
    profile, model = zte_model(whisper_factory)
    x = agent_words(corpus_dir, "dev-019", "这个型号的价格不知道。")
    verified(model, x, text)  # no error, whatever it finds


def test_a_character_nfkc_writes_as_two_is_not_split():
    assert replace_normalized("温度30℃不知他别再问我了", 6, 9, "不知道") == "温度30℃不知道别再问我了"
    assert replace_normalized("℡不知他别再问我了", 3, 6, "不知道") == "℡不知道别再问我了"
