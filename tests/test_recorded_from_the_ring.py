"""Recordings that start at the ring, and quiet headsets: what a real recorder hands the QA team."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from monitor.asr.scripted import Line, ScriptedTranscriber
from monitor.audio.files import load_call
from monitor.events import SAMPLE_RATE as SR
from monitor.labels import evidence
from monitor.phrasebook import load_profile
from monitor.pipeline import score_call
from monitor.vad import channel_lift_db, segment


def ringback(seconds: float, level_db: float = -20.0) -> np.ndarray:
    """China's ringback (回铃音): 450 Hz, 1 s on / 4 s off."""
    t = np.arange(int(seconds * SR)) / SR
    on = (t % 5.0) < 1.0
    return (10 ** (level_db / 20) * np.sin(2 * np.pi * 450.0 * t) * on).astype(np.float32)


def from_the_ring(corpus_dir, call_id: str, ring_s: float, out, tone: bool = True):
    """The dev call with `ring_s` seconds before its pick-up: the caller hearing the ringback (or
    quiet line noise), the agent's side silent; its labelled words, shifted."""
    labels = json.loads((corpus_dir / f"{call_id}.json").read_text())
    call = load_call(corpus_dir / labels["audio"])
    noise = (10 ** (-60 / 20) * np.random.default_rng(7).standard_normal((2, int(ring_s * SR)))).astype(np.float32)
    before = noise.copy()
    if tone:
        before[1] += ringback(ring_s)
    x = np.stack([np.concatenate([before[0], call.channels["agent"]]),
                  np.concatenate([before[1], call.channels["caller"]])], axis=1)
    sf.write(out / "call.wav", x, SR)
    lines = [Line(u["channel"], u["start"] + ring_s, u["end"] + ring_s, u["text"]) for u in labels["utterances"]]
    return out / "call.wav", load_profile(labels["profile"]), lines


@pytest.mark.parametrize("ring_s, rang_until", [(6.5, 6.0), (5.3, 5.3), (10.5, 10.5)])
def test_a_call_recorded_from_the_ring_times_the_greeting_from_the_pick_up(corpus_dir, tmp_path, ring_s, rang_until):
    """dev-017 (您好，中兴通讯 at 0.4 s) with 5.3-10.5 s of ringing before it: the greeting comes 5.7-10.9 s
    into the file, in time for a call picked up when the ringing stopped (a pick-up cuts the last
    ring short: 0.3 s into the second, 0.5 s into the third)."""
    path, profile, lines = from_the_ring(corpus_dir, "dev-017", ring_s, tmp_path)
    report = score_call(path, profile, ScriptedTranscriber(lines)).to_dict()
    assert not [v for v in report["violations"] if v["rule"].startswith("greeting")]
    (ring,) = [t for t in report["tones"] if t["kind"].startswith("ringback")]
    assert ring["channel"] == "caller" and ring["start"] < 0.5 and abs(ring["end"] - rang_until) < 0.1
    (warning,) = [w for w in report["warnings"] if "ring" in w]
    assert "pick-up" in warning and "回铃音" in evidence(warning)
    # the same 6.5 s of silence without a ringback: the agent answered and said nothing for 6.9 s
    path, profile, lines = from_the_ring(corpus_dir, "dev-017", 6.5, tmp_path, tone=False)
    report = score_call(path, profile, ScriptedTranscriber(lines)).to_dict()
    assert [v["rule"] for v in report["violations"] if v["rule"] == "greeting"] == ["greeting"]
    assert not report.get("warnings")


def test_a_headset_18_db_too_quiet_keeps_the_agents_greeting(corpus_dir):
    """webrtcvad turns down voiced speech under about -37 dBFS; a channel that quiet is lifted for it."""
    for call_id in ("dev-003", "dev-014", "dev-017"):
        labels = json.loads((corpus_dir / f"{call_id}.json").read_text())
        agent = load_call(corpus_dir / labels["audio"]).channels["agent"]
        assert channel_lift_db(agent) == 0.0  # a normal line is heard as it is
        quiet = agent * 10 ** (-18 / 20)
        assert channel_lift_db(quiet) > 10.0
        greeting = next(u for u in labels["utterances"] if u["channel"] == "agent")
        kept = sum(max(0.0, min(u.end, greeting["end"]) - max(u.start, greeting["start"]))
                   for u in segment(quiet, "agent"))
        assert kept >= 0.8 * (greeting["end"] - greeting["start"]), call_id


def keys(digits: str, at: float, total: float) -> np.ndarray:
    """Telephone key presses (DTMF): 80 ms each, 80 ms apart, from `at`."""
    rows, cols = (697, 770, 852, 941), (1209, 1336, 1477)
    pad = {"1": (0, 0), "2": (0, 1), "3": (0, 2), "4": (1, 0), "5": (1, 1), "6": (1, 2), "7": (2, 0),
           "8": (2, 1), "9": (2, 2), "*": (3, 0), "0": (3, 1), "#": (3, 2)}
    x = np.zeros(int(total * SR), np.float32)
    t = np.arange(int(0.08 * SR)) / SR
    for i, d in enumerate(digits):
        r, c = pad[d]
        k = int((at + 0.16 * i) * SR)
        x[k:k + len(t)] += (0.1 * (np.sin(2 * np.pi * rows[r] * t) + np.sin(2 * np.pi * cols[c] * t))).astype(np.float32)
    return x


def test_key_presses_in_a_silence_are_no_ones_words_and_leave_it_a_hold(corpus_dir, tmp_path):
    """dev-016 leaves the caller 16 s in silence unasked; the caller keys in numbers three times
    meanwhile. Key presses open no utterance, so the hold is still found."""
    labels = json.loads((corpus_dir / "dev-016.json").read_text())
    call = load_call(corpus_dir / labels["audio"])
    (hold,) = [v for v in labels["violations"] if v["rule"] == "hold"]
    caller = call.channels["caller"].copy()
    for i, digits in enumerate(("8021", "8021#", "0")):
        caller += keys(digits, hold["start"] + 2.0 + 4.0 * i, call.duration)[:len(caller)]
    assert not segment(caller[int(hold["start"] * SR) + SR:int(hold["end"] * SR) - SR // 2], "caller")
    sf.write(tmp_path / "call.flac", np.stack([call.channels["agent"], caller], axis=1), SR)
    lines = [Line(u["channel"], u["start"], u["end"], u["text"]) for u in labels["utterances"]]
    report = score_call(tmp_path / "call.flac", load_profile(labels["profile"]), ScriptedTranscriber(lines)).to_dict()
    assert [round(v["start"]) for v in report["violations"] if v["rule"] == "hold"] == [round(hold["start"])]
