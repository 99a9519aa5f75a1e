"""A hello the noise took from the agent's greeting still counts, when the company follows it.

On a noisy line "您好，警翼数码客服部" comes back as "1号 警翼数码客服部" or "以下 中兴通讯": the
best reading lost the hello, and `greeting` fired although the agent greeted. The recogniser is
asked how likely the profile's hello is as the first words of the agent's early lines
(monitor.asr.whisper `greeting_probes`); the greeting rule counts a hello it scores well only
where the company is named right after (a rude opening never names it).
"""
import dataclasses

import numpy as np
import pytest

from monitor.events import SAMPLE_RATE, Transcript, Utterance
from monitor.phrasebook import load_profile
from monitor.rules.base import CallFacts
from monitor.rules.greeting import GreetingRule
from tests.test_long_utterances import agent_words

SR = SAMPLE_RATE
OPENINGS = [("dev-003", "您好，警翼数码客服部。", "jingyi"), ("dev-015", "您好，警翼数码客服部。", "jingyi"),
            ("dev-000", "您好，中兴通讯！", "zte"), ("dev-012", "您好，中兴通讯！", "zte")]


def noisy_opening(x: np.ndarray, snr_db: float, seed: int, seconds: float = 0.75) -> np.ndarray:
    """A burst of line noise over the first `seconds` (where the hello is)."""
    head = int(seconds * SR)
    n = np.random.default_rng(seed).standard_normal(head).astype(np.float32)
    y = x.copy()
    y[:head] += n * np.sqrt(np.mean(x[:head] ** 2) / np.mean(n ** 2)) * 10 ** (-snr_db / 20)
    return y


def greeting_findings(profile, *lines: Transcript) -> list[str]:
    rule = GreetingRule(CallFacts(profile, "inbound", ("agent", "caller")))
    out = [v for tr in lines for v in rule.on_transcript(tr)] + rule.end(30.0)
    return [v.rule for v in out]


def said(text: str, may_open_with: tuple[str, ...] = ()) -> Transcript:
    return Transcript(role="agent", start=0.6, end=3.0, text=text, speech=True, may_open_with=may_open_with)


@pytest.mark.parametrize("text", ["宇航，这里是家庭宽带报修，请讲。", "家庭宽带维护，请问有什么需要？"])
def test_a_hello_the_recogniser_scored_before_the_company_is_the_greeting(text):
    broadband = load_profile("broadband")
    assert greeting_findings(broadband, said(text, ("您好",))) == []
    # without the recogniser's word for it, nothing says the agent greeted
    assert greeting_findings(broadband, said(text)) == ["greeting"]


@pytest.mark.parametrize("text", ["宇航，请问有什么事？", "你找家庭宽带干嘛？", "喂，家庭宽带，说吧。",
                                  "我早就说过了，家庭宽带不管这个。"])
def test_a_scored_hello_without_the_company_right_after_it_is_no_greeting(text):
    assert "greeting" in greeting_findings(load_profile("broadband"), said(text, ("您好",)))


def test_the_noise_took_the_hello_and_the_recogniser_still_scores_it(whisper_factory, corpus_dir):
    lost, rescued = [], []
    for call, text, name in OPENINGS:
        profile = load_profile(name)
        model = whisper_factory().for_profile(profile)
        for snr in (0, -3, -6):
            for seed in (1, 2):
                x = noisy_opening(agent_words(corpus_dir, call, text), snr, seed)
                tr = model.transcribe([Utterance("agent", 0.5, 0.5 + len(x) / SR, x)])[0]
                if not tr.speech or not profile.greeting_company.first(tr.text):
                    continue
                without_word = dataclasses.replace(tr, may_open_with=())
                if greeting_findings(profile, without_word):  # the reading alone fails the greeting
                    lost.append(tr.text)
                    if not greeting_findings(profile, tr):
                        rescued.append(tr.text)
    # The premise: some noisy openings lost the hello but kept the company.
    assert lost
    assert len(rescued) >= len(lost) / 2, (lost, rescued)


@pytest.mark.parametrize("call, text, name", [("dev-001", "喂，说吧。", "zte"), ("dev-011", "喂，什么事？", "jingyi"),
                                              ("dev-016", "嗯，你讲。", "zte")])
def test_rude_openings_stay_rude_under_the_same_noise(whisper_factory, corpus_dir, call, text, name):
    profile = load_profile(name)
    model = whisper_factory().for_profile(profile)
    for snr, seed in [(0, 1), (-3, 2)]:
        x = noisy_opening(agent_words(corpus_dir, call, text), snr, seed, seconds=0.4)
        tr = model.transcribe([Utterance("agent", 0.5, 0.5 + len(x) / SR, x)])[0]
        assert "greeting" in greeting_findings(profile, tr), (tr.text, tr.may_open_with)
