"""Every part of a long utterance is transcribed: its last clause and its middle.

Whisper decoding one long stretch can stop after the first sentence; the goodbye at
the end of a closing turn is then lost and `closing` fires although the agent said 再见.
"""
import dataclasses

import numpy as np
import pytest

from monitor.asr.coverage import CoverageOptions, covered, last_clause_start, too_little_text, with_tail
from monitor.audio.files import load_call
from monitor.events import SAMPLE_RATE, Utterance
from monitor.vad import segment
from tests.conftest import load_labels

SR = SAMPLE_RATE


def agent_words(corpus_dir, call: str, text: str) -> np.ndarray:
    """The agent's audio of one labelled utterance of a dev call."""
    labels = load_labels(corpus_dir / f"{call}.json")
    u = next(u for u in labels["utterances"] if u["channel"] == "agent" and u["text"] == text)
    audio = load_call(corpus_dir / labels["audio"]).channels["agent"]
    return audio[int((u["start"] - 0.05) * SR):int((u["end"] + 0.05) * SR)]


def one_breath(*parts: np.ndarray) -> Utterance:
    """Real agent sentences with only a comma's pause between them, as one utterance."""
    pause = np.zeros(int(0.12 * SR), np.float32)
    x = np.concatenate([p for part in parts for p in (part, pause)])
    return Utterance(role="agent", start=10.0, end=10.0 + len(x) / SR, samples=x)


@pytest.mark.parametrize("closing_call", ["dev-022", "dev-007"])
def test_a_closing_sentence_after_a_long_one_keeps_its_goodbye(whisper_factory, corpus_dir, closing_call):
    utt = one_breath(agent_words(corpus_dir, "dev-006", "对不起，这方面的问题将由我们的客户经理向您解答。"),
                     agent_words(corpus_dir, closing_call, "好的，还有其他需要吗？没有的话，再见。"))
    model = whisper_factory()
    whole_only = model.__class__.__new__(model.__class__)
    whole_only.__dict__.update(model.__dict__, opt=dataclasses.replace(
        model.opt, coverage=CoverageOptions(min_utterance_s=1e9, min_split_s=1e9)))
    # The premise: decoded as one piece, the model stops after the first sentence.
    lost = whole_only.transcribe([utt])[0].text
    assert "再见" not in lost and "解答" in lost, lost

    heard = model.transcribe([utt])[0]
    assert "解答" in heard.text and "其他需要" in heard.text and "再见" in heard.text, heard.text
    assert (heard.start, heard.end) == (utt.start, utt.end)


def test_the_vad_cuts_a_long_turn_between_clauses(corpus_dir):
    """A turn of three sentences with comma pauses becomes pieces cut at pauses, not one 14 s block."""
    sentences = [agent_words(corpus_dir, "dev-006", "对不起，这方面的问题将由我们的客户经理向您解答。"),
                 agent_words(corpus_dir, "dev-022", "好的，还有其他需要吗？没有的话，再见。"),
                 agent_words(corpus_dir, "dev-019", "您好，警翼数码客服部，请问有什么可以帮您？")]
    pause = np.zeros(int(0.25 * SR), np.float32)
    x = np.concatenate([np.zeros(SR, np.float32)] + [p for s in sentences for p in (s, pause)] + [np.zeros(SR, np.float32)])
    utts = segment(x, "agent")
    assert len(utts) >= 2
    assert max(u.end - u.start for u in utts) < 10.0
    # together they still hold all the speech
    assert utts[0].start < 1.3 and utts[-1].end > len(x) / SR - 1.5


def bursts(spec: list[tuple[float, float]], noise_db: float = -50.0) -> np.ndarray:
    """Voice-like bursts (start, length) in light noise, 10 s long."""
    rng = np.random.default_rng(0)
    x = rng.normal(0, 10 ** (noise_db / 20), 10 * SR).astype(np.float32)
    for a, n in spec:
        t = np.arange(int(n * SR)) / SR
        x[int(a * SR):int(a * SR) + len(t)] += (0.3 * np.sin(2 * np.pi * 180 * t) * np.sin(np.pi * t / n)).astype(np.float32)
    return x


def test_the_last_clause_starts_in_the_last_pause():
    x = bursts([(0.2, 1.5), (1.8, 1.6), (3.6, 1.0)])[: int(4.9 * SR)]
    at = last_clause_start(x)
    assert at is not None and 3.4 * SR <= at <= 3.65 * SR
    assert last_clause_start(x[: int(2.5 * SR)]) is None  # short: comes back whole
    # one unbroken stretch has no last clause, however much quiet comes before it
    assert last_clause_start(bursts([(0.2, 4.5)])[: int(4.9 * SR)]) is None
    assert last_clause_start(bursts([(2.0, 2.8)])[: int(4.9 * SR)]) is None
    assert last_clause_start(bursts([(3.8, 1.0)])[: int(4.9 * SR)]) is None


def test_a_last_clause_already_heard_is_not_added_twice():
    assert covered("那就先这样，有任何进展我们会短信通知您的，再见。", "再见")
    assert covered("好的，感谢您的来电，再见", "来电再见")  # at the end, punctuation aside
    assert covered("好的，感谢您的来电，再见", "感谢您的来变再见")  # one syllable misheard
    assert not covered("那就先这样，有任何进展我们会短信通知您的", "再见")
    assert with_tail("对不起，这方面的问题将由我们的客户经理向您解答。", "再见") == \
        "对不起，这方面的问题将由我们的客户经理向您解答，再见"
    assert with_tail("", "再见") == "再见"


def test_too_little_text_for_the_time_is_decoded_again():
    assert too_little_text("就", 9.3, no_speech_prob=0.36)
    # the two sentences of which the model kept only the first: 22 characters in 9.4 s
    assert too_little_text("对不起，这方面的问题将由我们的客户经理向您解答", 9.4, no_speech_prob=0.05)
    assert not too_little_text("对不起，这方面的问题将由我们的客户经理向您解答", 4.8, no_speech_prob=0.05)
    assert not too_little_text("", 9.3, no_speech_prob=0.9)  # the model says: no one speaks
    assert not too_little_text("嗯", 1.0, no_speech_prob=0.1)  # short: a back-channel
