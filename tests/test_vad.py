"""The VAD segmenter cuts each channel into utterances, in batch or fed live in pieces."""
import itertools
import json

import numpy as np
import pytest

from monitor.audio.files import load_call
from monitor.vad import VadOptions, VadSegmenter, periodicity, segment

SR = 16000
rng = np.random.default_rng(7)


def voiced(seconds: float, f0: float = 180.0, level: float = 0.2) -> np.ndarray:
    """A vowel-like sound: harmonics of a gliding pitch under a 4 Hz syllable envelope."""
    t = np.arange(int(seconds * SR)) / SR
    pitch = f0 * (1 + 0.08 * np.sin(2 * np.pi * 1.3 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / SR
    x = sum((0.8 ** k) * np.sin(k * phase) for k in range(1, 12))
    env = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t) ** 2
    return (level * x * env / np.abs(x).max()).astype(np.float32)


def quiet(seconds: float, level: float = 0.002) -> np.ndarray:
    return (level * rng.standard_normal(int(seconds * SR))).astype(np.float32)


def test_silence_has_no_utterances():
    assert segment(quiet(5.0), "agent") == []


def test_one_stretch_of_speech_is_one_utterance_with_its_times():
    x = np.concatenate([quiet(1.5), voiced(2.0), quiet(1.5), voiced(2.0), quiet(1.0)])
    first, second = segment(x, "agent")
    assert first.role == "agent"
    # the pre-roll reaches back before the detected onset; for the agent's first words (the
    # greeting) further, up to 1 s
    assert 0.5 <= first.start <= 0.8
    assert 3.5 <= first.end <= 3.9
    assert 4.6 <= second.start <= 5.0
    assert 7.0 <= second.end <= 7.4
    for u in (first, second):
        assert len(u.samples) == pytest.approx((u.end - u.start) * SR, abs=SR * 0.03)
    # the caller's first words answer the greeting: the usual pre-roll
    (reply, _) = segment(x, "caller")
    assert 0.8 <= reply.start <= 1.2


def test_a_pause_longer_than_the_stop_window_splits_two_sentences():
    x = np.concatenate([quiet(0.5), voiced(1.5), quiet(1.2), voiced(1.5), quiet(1.0)])
    assert len(segment(x, "caller")) == 2


def test_a_short_pause_inside_a_sentence_does_not_split_it():
    x = np.concatenate([quiet(0.5), voiced(1.5), quiet(0.25), voiced(1.5), quiet(1.0)])
    assert len(segment(x, "caller")) == 1


def test_clicks_shorter_than_the_minimum_are_not_utterances():
    x = np.concatenate([quiet(1.0), voiced(0.12), quiet(1.0)])
    assert segment(x, "agent") == []


def test_white_noise_even_loud_is_not_speech():
    assert segment((0.1 * rng.standard_normal(SR * 4)).astype(np.float32), "agent") == []


def test_very_long_speech_is_cut_so_one_model_window_holds_each_piece():
    opts = VadOptions(max_utterance_s=5.0)
    utts = segment(np.concatenate([quiet(0.5), voiced(12.0), quiet(1.0)]), "agent", opts)
    assert len(utts) >= 3
    assert all(u.end - u.start <= 5.0 + 0.31 for u in utts)
    # The pieces follow each other without losing audio.
    assert all(abs(b.start - a.end) < 0.35 for a, b in itertools.pairwise(utts))


def test_masked_span_is_never_speech():
    x = np.concatenate([quiet(0.5), voiced(2.0), quiet(1.0), voiced(2.0), quiet(0.5)])
    utts = segment(x, "caller", masked=[(3.0, 10.0)])
    assert len(utts) == 1 and utts[0].end < 3.0


def test_feeding_in_live_sized_pieces_gives_the_same_utterances_as_one_block():
    x = np.concatenate([quiet(0.7), voiced(1.8), quiet(1.0), voiced(2.5), quiet(0.8)])
    whole = segment(x, "agent")
    seg = VadSegmenter("agent")
    pieces = []
    for i in range(0, len(x), 337):
        pieces += seg.feed(x[i:i + 337])
    pieces += seg.flush()
    assert [(u.start, u.end) for u in pieces] == [(u.start, u.end) for u in whole]


def test_open_utterance_is_visible_while_it_goes_on():
    seg = VadSegmenter("agent")
    seg.feed(np.concatenate([quiet(0.5), voiced(1.5)]))
    assert seg.in_speech and seg.open_since is not None
    assert len(seg.open_samples()) > SR


def test_periodicity_separates_voiced_frames_from_noise():
    assert periodicity(voiced(0.03)) > 0.8
    assert periodicity((rng.standard_normal(480)).astype(np.float32)) < 0.4


def test_options_are_validated():
    with pytest.raises(ValueError):
        VadOptions(frame_ms=25)
    with pytest.raises(ValueError):
        VadOptions(aggressiveness=5)


def test_sample_call_agent_turns_are_found(samples_dir):
    labels = json.loads((samples_dir / "demo-zte.json").read_text())
    call = load_call(samples_dir / "demo-zte.flac")
    utts = segment(call.channels["agent"], "agent")
    for turn in (u for u in labels["utterances"] if u["channel"] == "agent"):
        covering = [u for u in utts if u.start - 0.3 <= turn["start"] and turn["end"] <= u.end + 0.3]
        assert covering, f"agent turn at {turn['start']} s not found in {[(u.start, u.end) for u in utts]}"
