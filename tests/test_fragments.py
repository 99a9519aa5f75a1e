"""A goodbye the VAD closed as an utterance of its own is heard as the end of the sentence before it.

"…我们的热线，| 再见": after a breath the VAD closes the last word alone. Decoded alone in the
model's 6 s window it comes back garbled or as silence, and `closing` fired although the agent
said 再见. Decoded behind the sentence, with the sentence's words forced first, it is heard.
"""
import dataclasses

import numpy as np
import pytest

from monitor.asr.coverage import CoverageOptions, last_clause_start
from monitor.asr.fragments import FragmentOptions, follows, plausible
from monitor.audio.files import load_call
from monitor.events import SAMPLE_RATE, Heard, Utterance
from monitor.vad import segment
from tests.conftest import load_labels
from tests.live_support import replay_in_process
from tests.test_long_utterances import agent_words

SR = SAMPLE_RATE


def utt(start: float, seconds: float, role="agent") -> Utterance:
    return Utterance(role=role, start=start, end=start + seconds, samples=np.zeros(int(seconds * SR), np.float32))


def test_a_short_piece_right_after_the_same_sides_sentence_follows_it():
    sentence = utt(10.0, 4.0)
    assert follows(sentence, utt(14.3, 0.8))
    assert not follows(sentence, utt(14.3, 2.5))  # long enough to be decoded alone
    assert not follows(sentence, utt(15.5, 0.8))  # after a real pause: a new sentence
    assert not follows(sentence, utt(14.3, 0.8, role="caller"))  # the other side
    assert not follows(utt(10.0, 4.0, role="caller"), utt(14.3, 0.8, role="caller"))  # only the agent's words are judged
    assert not follows(utt(0.0, 12.0), utt(12.2, 0.8))  # a long sentence: too costly to decode again


def test_a_continuation_must_be_likely_and_fit_its_piece():
    assert plausible("再见", 0.7, -0.4)
    assert not plausible("再见", 0.7, -1.3)  # a guess steered by the sentence before
    assert not plausible("您的弟弟之身幸福母八后", 1.3, -1.03)  # more than anyone says in 1.3 s
    # the sentence's own words its reading lost, then the goodbye: not the piece's alone
    assert not plausible("好的，还有其他需要吗？没有的话，再见", 0.7, -0.29)
    assert not plausible("", 0.7, -0.1)


def without_fragments(model):
    """The same loaded model with short pieces decoded alone only."""
    off = model.__class__.__new__(model.__class__)
    off.__dict__.update(model.__dict__, opt=dataclasses.replace(model.opt, fragments=FragmentOptions(max_s=0.0)))
    return off


@pytest.fixture(scope="module")
def closing_turn(corpus_dir):
    """A real agent sentence of a noisy 8 kHz call, then its goodbye closed by the VAD 0.3 s later
    as a piece of its own."""
    line = agent_words(corpus_dir, "dev-012", "好的，还有其他需要吗？没有的话，再见。")
    at = last_clause_start(line, CoverageOptions(min_utterance_s=0.5, min_tail_s=0.2))
    assert at is not None and 0.5 * SR < len(line) - at < 1.2 * SR  # the last clause is 再见
    sentence = Utterance("agent", 10.0, 10.0 + at / SR, line[:at])
    goodbye = Utterance("agent", sentence.end + 0.3, sentence.end + 0.3 + (len(line) - at) / SR, line[at:])
    return sentence, goodbye


def line_noise(corpus_dir, call: str, seconds: float) -> np.ndarray:
    """The agent channel of a noisy dev call where nobody speaks on it."""
    labels = load_labels(corpus_dir / f"{call}.json")
    audio = load_call(corpus_dir / labels["audio"]).channels["agent"]
    spoken = sorted((u["start"], u["end"]) for u in labels["utterances"] if u["channel"] == "agent")
    for (_, a), (b, _) in zip(spoken, spoken[1:], strict=False):
        if b - a >= seconds + 1.0:
            return audio[int((a + 0.5) * SR):int((a + 0.5 + seconds) * SR)]
    raise AssertionError(f"{call}: no {seconds} s without the agent")


def test_the_goodbye_closed_on_its_own_is_heard_behind_its_sentence(whisper_factory, closing_turn):
    sentence, goodbye = closing_turn
    model = whisper_factory()
    alone = model.transcribe([goodbye])[0]
    assert "再见" not in alone.text, alone.text  # the premise: alone the model garbles it

    heard_sentence, heard_goodbye = model.transcribe([sentence, goodbye])
    assert "再见" in heard_goodbye.text and heard_goodbye.speech, heard_goodbye.text
    assert (heard_goodbye.start, heard_goodbye.end) == (goodbye.start, goodbye.end)
    assert "再见" not in heard_sentence.text  # the sentence's own reading is left as it was

    # The live desk decodes one utterance at a time and passes the sentence heard before: same words.
    (live,) = model.transcribe([goodbye], before=Heard(sentence, heard_sentence))
    assert live.text == heard_goodbye.text


@pytest.mark.parametrize("call", ["dev-012", "dev-004"])
def test_line_noise_after_the_sentence_gets_no_words_from_it(whisper_factory, corpus_dir, closing_turn, call):
    """A piece with no one speaking in it (a noisy line's hiss, 8 kHz and 16 kHz): the sentence's
    momentum must not make a goodbye of it; it is read as it would be alone."""
    sentence, _ = closing_turn
    piece = Utterance("agent", sentence.end + 0.3, sentence.end + 1.2, line_noise(corpus_dir, call, 0.9))
    model = whisper_factory()
    _, heard_piece = model.transcribe([sentence, piece])
    assert "再见" not in heard_piece.text
    assert heard_piece == model.transcribe([piece])[0]


def test_the_options_can_turn_it_off(whisper_factory, closing_turn):
    sentence, goodbye = closing_turn
    model = whisper_factory()
    assert "再见" not in without_fragments(model).transcribe([sentence, goodbye])[1].text


@pytest.fixture(scope="module")
def call_with_goodbye_apart(corpus_dir, tmp_path_factory):
    """dev-012 with 0.35 s more of its line's quiet before the agent's last 再见: the VAD now closes
    the goodbye as an utterance of its own (the agent says goodbye after a breath)."""
    import soundfile as sf

    x, rate = sf.read(corpus_dir / "dev-012.wav", dtype="float32")
    line = agent_words(corpus_dir, "dev-012", "好的，还有其他需要吗？没有的话，再见。")
    at = last_clause_start(line, CoverageOptions(min_utterance_s=0.5, min_tail_s=0.2))
    assert at is not None
    labels = load_labels(corpus_dir / "dev-012.json")
    said = next(u for u in labels["utterances"] if u["text"] == "好的，还有其他需要吗？没有的话，再见。")
    cut = int((said["start"] - 0.05 + at / SR) * rate)
    quiet_at = int(19.92 * rate)  # after the agent's line before, before the caller's next: both sides quiet
    breath = x[quiet_at:quiet_at + int(0.35 * rate)]
    path = tmp_path_factory.mktemp("breath") / "dev-012-goodbye-apart.wav"
    sf.write(path, np.concatenate([x[:cut], breath, x[cut:]]), rate)
    return path


def test_a_goodbye_said_after_a_breath_passes_closing_in_batch_and_live(call_with_goodbye_apart, whisper_factory):
    from monitor.phrasebook import load_profile
    from monitor.pipeline import score_call

    profile = load_profile("zte")
    model = whisper_factory(profile.hotwords)
    agent = [u for u in segment(load_call(call_with_goodbye_apart).channels["agent"], "agent") if u.start > 20]
    assert len(agent) == 2 and agent[1].end - agent[1].start < 1.0  # the premise: the goodbye closed alone

    batch = score_call(call_with_goodbye_apart, profile, model)
    assert [v.rule for v in batch.violations] == ["forbidden"]  # the call's one real violation (与我无关)

    off = without_fragments(model)
    assert "closing" in {v.rule for v in score_call(call_with_goodbye_apart, profile, off).violations}

    live = replay_in_process(call_with_goodbye_apart, profile, model)
    assert [v.rule for v in live.violations] == ["forbidden"]
