"""A goodbye the noise garbled at the opening of the agent's line still counts.

On a noisy line "再见，祝您一切顺利" comes back as "在这儿祝你一切…": the best reading lost the
goodbye, and `closing` fired although the agent said it. The recogniser is asked how likely 再见
is as the line's first words (monitor.asr.whisper `opening_probes`); a goodbye it scores well
counts as said. Lines without a goodbye must not gain one.
"""
import dataclasses

import numpy as np

from monitor.events import SAMPLE_RATE, Transcript, Utterance
from monitor.judge_input import JudgeInput
from monitor.phrasebook import load_profile
from monitor.rules.base import CallFacts
from monitor.rules.closing import ClosingRule
from tests.test_long_utterances import agent_words

SR = SAMPLE_RATE


def noisy(x: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    n = np.random.default_rng(seed).standard_normal(len(x)).astype(np.float32)
    return (x + n * np.sqrt(np.mean(x ** 2) / np.mean(n ** 2)) * 10 ** (-snr_db / 20)).astype(np.float32)


def goodbye_of(corpus_dir, call: str) -> np.ndarray:
    """The 再见 that ends the agent's "感谢您的来电，再见！" (its last 0.8 s of voice)."""
    x = agent_words(corpus_dir, call, "感谢您的来电，再见！")
    level = np.array([np.sqrt(np.mean(x[i:i + 160] ** 2)) for i in range(0, len(x) - 160, 160)])
    end = int(np.flatnonzero(level > 0.05 * level.max())[-1]) * 160
    return x[max(0, end - int(0.8 * SR)):end + SR // 10]


def line(x: np.ndarray) -> Utterance:
    return Utterance(role="agent", start=30.0, end=30.0 + len(x) / SR, samples=x)


def test_a_goodbye_the_noise_garbled_at_the_opening_is_still_heard(whisper_factory, corpus_dir):
    model = whisper_factory()
    bye = goodbye_of(corpus_dir, "dev-017")
    rest = agent_words(corpus_dir, "dev-017", "我们正在排查，原因查明后将及时向您反馈。")
    said = np.concatenate([bye, np.zeros(SR // 10, np.float32), rest])
    readings = [model.transcribe([line(noisy(said, snr, seed))])[0] for snr in (6, 5, 4) for seed in (1, 2)]
    lost = [t for t in readings if t.speech and "再见" not in t.text and "排查" in t.text]
    # The premise: on some of these noisy lines the best reading lost the opening goodbye.
    assert lost, [t.text for t in readings]
    assert any("再见" in t.may_open_with for t in lost), [(t.text, t.may_open_with) for t in lost]
    # Where the best reading has it, it is not asked again.
    assert all(not t.may_open_with for t in readings if "再见" in t.text)


def test_the_agents_lines_without_a_goodbye_gain_none(whisper_factory, corpus_dir):
    model = whisper_factory()
    lines = [("dev-009", "好的，就这样吧。"), ("dev-019", "好的，就这样吧。"),
             ("dev-017", "我们正在排查，原因查明后将及时向您反馈。"), ("dev-007", "好的，我帮您查一下。"),
             ("dev-019", "这个型号的价格不知道。"), ("dev-007", "请问您的设备型号是多少？")]
    for call, text in lines:
        x = agent_words(corpus_dir, call, text)
        for heard in [model.transcribe([line(x)])[0], model.transcribe([line(noisy(x, 5, 1))])[0]]:
            assert heard.may_open_with == (), (call, text, heard.text)


def closing_of(last: Transcript, judge_input_roundtrip: bool = False) -> list[str]:
    transcripts = [Transcript("agent", 0.5, 2.5, "您好，中兴通讯，请问有什么可以帮您？"), last]
    if judge_input_roundtrip:
        inp = JudgeInput(roles=("agent", "caller"), direction="inbound", rules=("closing",), transcripts=transcripts,
                         confirmed_tones=[], tones=[], events=[], duration=40.0, truncated=False, note="", path="x")
        transcripts = JudgeInput.from_dict(inp.to_dict()).transcripts
    rule = ClosingRule(CallFacts(load_profile("zte"), "inbound", ("agent", "caller")))
    for t in transcripts:
        rule.on_transcript(t)
    return [v.rule for v in rule.end(40.0)]


def test_the_closing_rule_counts_a_goodbye_the_recogniser_scored_at_the_opening():
    garbled = Transcript("agent", 30.0, 32.0, "在这儿祝你一切是迷惑会活动到厌恋。")
    assert "closing" in closing_of(garbled)
    heard = Transcript("agent", 30.0, 32.0, garbled.text, may_open_with=("再见",))
    assert "closing" not in closing_of(heard)
    # ... and it survives a rescore from the report's judge_input
    assert "closing" not in closing_of(heard, judge_input_roundtrip=True)


def test_a_goodbye_the_whole_line_was_read_with_is_kept_when_its_halves_garble_it(whisper_factory):
    """A long line read with too few words is decoded again in halves, and the halves' longer text
    replaces the whole's; a goodbye only the whole's reading had still counts as said."""
    model = whisper_factory()
    x = np.zeros(5 * SR, np.float32)
    whole = Transcript("agent", 30.0, 35.0, "好的 感谢你的耐心 再见", avg_logprob=-0.5)
    halves = [Transcript("agent", 30.0, 31.7, "好的,感谢你的脉气", avg_logprob=-0.9),
              Transcript("agent", 31.7, 35.0, "在卷称一条卷称之后", avg_logprob=-1.0)]
    for whole_read, want in ((whole, ("再见",)), (dataclasses.replace(whole, text="好的 感谢你的耐心"), ()),
                             # a bare 再见 (the model's stock word on noise) and 再见 inside a word: no goodbye
                             (dataclasses.replace(whole, text="再见。"), ()),
                             (dataclasses.replace(whole, text="好的，下次再见面再说"), ())):
        results: list[Transcript | None] = [whole_read]
        fake = model.__class__.__new__(model.__class__)
        fake.__dict__.update(model.__dict__)
        fake._decode = lambda utts, probe=False: halves[:len(utts)]  # the halves' readings
        fake._halve([line(x)], results, [0])
        (got,) = results
        assert got is not None and got.text == "好的,感谢你的脉气，在卷称一条卷称之后"  # the longer text wins
        assert got.may_open_with == want
        assert ("closing" in closing_of(got)) == (want == ())
