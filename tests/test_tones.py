"""Call-progress tone detection: generated ITU tones, look-alikes, and the dev corpus."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from monitor.events import ToneEvent
from monitor.tones import ToneDetector, ToneOptions, detect_tones

SR = 16000
ONSET = 1.0  # the generated tones start one second into the clip
LATENCY_S = 1.5  # live use must know within this of the tone's onset


# ---- signal makers --------------------------------------------------------

def cadenced(freqs: tuple[float, ...], on: float, off: float, seconds: float,
             level: float = 0.3, lead: float = ONSET, tail: float = 0.0) -> np.ndarray:
    """`freqs` together, on/off, starting at `lead`; `seconds` of cadence."""
    t = np.arange(int(seconds * SR)) / SR
    tone = sum(np.sin(2 * np.pi * f * t + k) for k, f in enumerate(freqs)) * level / len(freqs)
    tone *= (t % (on + off)) < on
    return np.concatenate([np.zeros(int(lead * SR)), tone, np.zeros(int(tail * SR))])


def china_busy(seconds: float = 3.0, **kw) -> np.ndarray:
    return cadenced((450.0,), 0.35, 0.35, seconds, **kw)


def with_noise(x: np.ndarray, snr_db: float, colour: str, seed: int = 0) -> np.ndarray:
    """Add white or pink noise at `snr_db` below the tone's on-power."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(len(x))
    if colour == "pink":
        spec = np.fft.rfft(noise)
        spec[1:] /= np.sqrt(np.fft.rfftfreq(len(x), 1 / SR)[1:])
        spec[0] = 0
        noise = np.fft.irfft(spec, len(x))
    power = np.mean(x[x != 0] ** 2)
    return x + noise * np.sqrt(power / 10 ** (snr_db / 10) / np.mean(noise**2))


def through_mulaw_8k(x: np.ndarray, tmp_path: Path) -> np.ndarray:
    """What a G.711 telephone leg does: 8 kHz mu-law, then back to 16 kHz."""
    path = tmp_path / "leg.wav"
    sf.write(path, soxr.resample(x, SR, 8000), 8000, subtype="ULAW")
    y, sr = sf.read(path, dtype="float32")
    return soxr.resample(y, sr, SR)


def vowel(seconds: float, f0: tuple[float, float], formants: list[tuple[float, float]],
          rng: np.random.Generator, jitter: float = 0.005) -> np.ndarray:
    """A voiced vowel: harmonics of a (gliding, jittered) F0 shaped by formant resonances."""
    n = int(seconds * SR)
    wobble = np.convolve(rng.standard_normal(n), np.ones(400) / 20, "same")
    pitch = np.linspace(*f0, n) * (1 + jitter * wobble)
    phase = 2 * np.pi * np.cumsum(pitch) / SR
    y = np.zeros(n)
    for k in range(1, int(3800 / max(f0))):
        gain = np.ones(n)
        for f, bw in formants:
            h = k * pitch
            gain /= np.sqrt((1 - (h / f) ** 2) ** 2 + (h * bw / f**2) ** 2)
        y += np.sin(k * phase) * gain / np.sqrt(k)
    t = np.arange(n) / SR
    y *= np.minimum(1, np.minimum(t, t[::-1]) / 0.03)
    return 0.3 * y / np.max(np.abs(y))


def rhythm(parts: list[np.ndarray], gap: float) -> np.ndarray:
    silence = np.zeros(int(gap * SR))
    return np.concatenate([np.zeros(int(ONSET * SR))] + [p for x in parts for p in (x, silence)])


def stream(x: np.ndarray, block: int, role="caller", options: ToneOptions = ToneOptions()
           ) -> tuple[list[ToneEvent], list[ToneEvent], ToneDetector]:
    """Feed in `block`-sample pieces; (confirmations, final episodes, detector)."""
    det = ToneDetector(role, options)
    confirmed = [e for i in range(0, len(x), block) for e in det.feed(x[i:i + block])]
    return confirmed, det.flush(), det


def one_episode(events: list[ToneEvent], kind: str) -> ToneEvent:
    assert [e.kind for e in events] == [kind], events
    return events[0]


# ---- generated ITU tones ---------------------------------------------------

def test_china_busy_tone_is_confirmed_within_two_cycles():
    x = china_busy(3.0).astype(np.float32)
    confirmed, final, _ = stream(x, SR // 100)
    first = one_episode(confirmed, "busy_450")
    assert first.start == pytest.approx(ONSET, abs=0.03)
    # Needs on, off, on (1.05 s) to see a cadence; must not wait much longer.
    assert 1.05 <= first.end - ONSET <= LATENCY_S
    last = one_episode(final, "busy_450")
    assert last.start == first.start
    assert last.end == pytest.approx(ONSET + 2.8 + 0.2, abs=0.05)  # end of the 5th burst


@pytest.mark.parametrize("colour", ["white", "pink"])
def test_china_busy_tone_is_heard_through_noise_at_10_db_snr(colour):
    x = with_noise(china_busy(2.5), 10, colour)
    confirmed, final, _ = stream(x.astype(np.float32), SR)
    assert one_episode(confirmed, "busy_450").end - ONSET <= LATENCY_S
    assert one_episode(final, "busy_450").start == pytest.approx(ONSET, abs=0.06)


def test_china_busy_tone_survives_8khz_mulaw_coding(tmp_path):
    x = through_mulaw_8k(china_busy(2.5), tmp_path)
    episode = one_episode(detect_tones(x, "caller"), "busy_450")
    assert episode.start == pytest.approx(ONSET, abs=0.03)


def test_noisy_china_busy_tone_survives_8khz_mulaw_coding(tmp_path):
    x = through_mulaw_8k(with_noise(china_busy(2.5), 10, "pink", seed=3), tmp_path)
    episode = one_episode(detect_tones(x, "caller"), "busy_450")
    assert episode.start == pytest.approx(ONSET, abs=0.06)


def test_busy_tone_cut_short_by_the_end_of_the_recording_still_counts():
    # As in the corpus: the agent hangs up ~1.6 s into the caller's busy tone.
    episode = one_episode(detect_tones(china_busy(1.58), "caller"), "busy_450")
    assert episode.end == pytest.approx(ONSET + 1.58, abs=0.03)


def test_china_congestion_tone_is_told_apart_from_busy():
    one_episode(detect_tones(cadenced((450.0,), 0.7, 0.7, 4.0), "caller"), "congestion_450")


@pytest.mark.parametrize("on_off, kind", [(0.5, "busy_480_620"), (0.25, "reorder_480_620")])
def test_north_american_busy_and_reorder_are_told_apart(on_off, kind, tmp_path):
    x = cadenced((480.0, 620.0), on_off, on_off, 3.0)
    confirmed, final, _ = stream(x.astype(np.float32), SR // 100)
    # Confirmed once the second burst has ended: 1.5 s + a frame for the 0.5 s busy.
    assert one_episode(confirmed, kind).end - ONSET <= 3 * on_off + 0.15
    assert one_episode(final, kind).start == pytest.approx(ONSET, abs=0.03)
    noisy = through_mulaw_8k(with_noise(x, 10, "white"), tmp_path)
    one_episode(detect_tones(noisy, "caller"), kind)


def with_lost_packets(x: np.ndarray, seed: int, every_s: float = 0.3) -> np.ndarray:
    """A lossy leg: now and then a 20-40 ms packet lost (silence in its place)."""
    rng = np.random.default_rng(seed)
    y = x.copy()
    at = rng.uniform(0.0, every_s)
    while at < len(y) / SR:
        lost = int(rng.choice([0.02, 0.04]) * SR)
        y[int(at * SR):int(at * SR) + lost] = 0.0
        at += rng.uniform(0.5, 1.5) * every_s
    return y


@pytest.mark.parametrize("seed", range(4))
def test_a_busy_tone_on_a_lossy_8k_leg_is_still_busy(seed, tmp_path):
    # After the caller's hang-up on a telephone leg that loses packets, the exchange's busy tone
    # has gaps inside its bursts; it is still the caller's hang-up.
    x = through_mulaw_8k(with_lost_packets(china_busy(4.0), seed), tmp_path)
    one_episode(detect_tones(x, "caller"), "busy_450")


def test_continuous_dial_tone_is_not_busy():
    dial = cadenced((450.0,), 5.0, 0.0, 5.0)
    assert detect_tones(dial, "caller") == []


def test_china_ringback_tone_is_not_busy():
    ringback = cadenced((450.0,), 1.0, 4.0, 11.0)
    assert detect_tones(ringback, "caller") == []


@pytest.mark.parametrize("on_off", [0.25, 0.35, 0.5])
def test_single_480_hz_is_not_480_620_nor_450(on_off):
    assert detect_tones(cadenced((480.0,), on_off, on_off, 4.0), "caller") == []


@pytest.mark.parametrize("hz", [445.0, 455.0])
def test_tone_off_frequency_by_one_percent_is_still_busy(hz):
    one_episode(detect_tones(cadenced((hz,), 0.35, 0.35, 3.0), "caller"), "busy_450")


@pytest.mark.parametrize("f0", [(225.0, 225.0), (150.0, 150.0), (232.0, 220.0), (190.0, 260.0)])
def test_mandarin_vowels_on_450_hz_in_busy_rhythm_are_not_a_tone(f0):
    # Worst case: /o/-like vowels with F1 right on 450 Hz, a steady (tone 1) or
    # gliding pitch whose harmonic sits on 450 Hz, spoken 0.35 s on / 0.35 s off.
    # Most of the energy is on 450 Hz; the other harmonics give it away.
    rng = np.random.default_rng(7)
    formants = [(450.0, 80.0), (800.0, 90.0), (2800.0, 150.0)]
    x = rhythm([vowel(0.35, f0, formants, rng) for _ in range(6)], gap=0.35)
    assert detect_tones(x, "caller") == []


@pytest.mark.parametrize("rolloff", [1.5, 3.0])  # piano-like, then almost pure (flute, ocarina)
def test_music_with_a4_notes_at_the_busy_cadence_is_not_a_tone(rolloff):
    # Staccato A4 (440 Hz, only 2.2 % below 450) alternating with C5 and E5.
    notes = [440.0, 523.25, 440.0, 659.26, 440.0, 523.25, 440.0, 659.26, 440.0]
    t = np.arange(int(0.35 * SR)) / SR
    decay = np.exp(-t / 0.4)
    parts = [sum(np.sin(2 * np.pi * f * k * t) / k**rolloff for k in range(1, 7)) * decay * 0.2
             for f in notes]
    assert detect_tones(rhythm(parts, gap=0.35), "caller") == []
    a4_at_busy_cadence = rhythm(parts[:1] * 6, gap=0.35)
    assert detect_tones(a4_at_busy_cadence, "caller") == []


@pytest.mark.parametrize("colour", ["white", "pink"])
def test_noise_alone_is_not_a_tone(colour):
    x = with_noise(np.full(20 * SR, 0.1), 0, colour, seed=11) - 0.1
    assert detect_tones(x, "caller") == []


def test_streaming_in_10ms_blocks_equals_one_block():
    rng = np.random.default_rng(5)
    speech_like = rhythm([vowel(0.3, (220.0, 180.0), [(700.0, 90.0), (1200.0, 100.0)], rng)
                          for _ in range(4)], gap=0.2)
    x = np.concatenate([speech_like, with_noise(china_busy(3.0, tail=1.0), 10, "pink"),
                        cadenced((480.0, 620.0), 0.25, 0.25, 2.0)]).astype(np.float32)
    confirmed_big, final_big, det_big = stream(x, len(x))
    confirmed_small, final_small, det_small = stream(x, SR // 100)
    assert [e.kind for e in final_big] == ["busy_450", "reorder_480_620"]
    assert confirmed_small == confirmed_big
    assert final_small == final_big
    assert det_small.tone_spans() == det_big.tone_spans()
    odd = stream(x, 337)  # block sizes unrelated to the frame hop
    assert (odd[0], odd[1]) == (confirmed_big, final_big)


def test_active_episode_and_tone_spans_follow_the_tone():
    x = china_busy(2.5, tail=2.0)
    det = ToneDetector("caller")
    det.feed(x[: int((ONSET + 0.9) * SR)])
    assert det.active is None and det.tone_spans() == []  # one burst is not yet a tone
    det.feed(x[int((ONSET + 0.9) * SR): int((ONSET + 1.6) * SR)])
    active = det.active
    assert active is not None and active.kind == "busy_450"
    assert active.start == pytest.approx(ONSET, abs=0.03)
    spans = det.tone_spans()
    assert spans[0] == pytest.approx((ONSET, ONSET + 0.35), abs=0.03)  # the first, single burst
    assert spans[1] == pytest.approx((ONSET + 0.7, ONSET + 1.05), abs=0.03)
    det.feed(x[int((ONSET + 1.6) * SR):])
    assert det.active is None  # silence after the tone ends the episode
    assert len(det.tone_spans()) == 4  # bursts at 0, 0.7, 1.4, 2.1 s
    final = one_episode(det.flush(), "busy_450")
    assert final.end == pytest.approx(ONSET + 2.45, abs=0.03)


def test_detector_wants_mono_and_no_audio_after_flush():
    det = ToneDetector("agent")
    with pytest.raises(ValueError):
        det.feed(np.zeros((160, 2), dtype=np.float32))
    det.flush()
    with pytest.raises(RuntimeError):
        det.feed(np.zeros(160, dtype=np.float32))


# ---- the dev corpus --------------------------------------------------------

@dataclass
class CallResult:
    call_id: str
    hangup_by: str
    hangup_t: float
    confirmed: dict[str, list[ToneEvent]]  # by role, as fed live
    episodes: dict[str, list[ToneEvent]]  # by role, after flush


@dataclass
class Corpus:
    calls: list[CallResult]
    speech: np.ndarray  # every labelled utterance of every call, back to back


@pytest.fixture(scope="module")
def corpus(corpus_dir: Path) -> Corpus:
    calls: list[CallResult] = []
    speech: list[np.ndarray] = []
    for line in (corpus_dir / "manifest.jsonl").read_text().splitlines():
        entry = json.loads(line)
        labels = json.loads((corpus_dir / entry["labels"]).read_text())
        audio, sr = sf.read(corpus_dir / entry["audio"], dtype="float32", always_2d=True)
        if sr != SR:
            audio = soxr.resample(audio, sr, SR)
        confirmed, episodes = {}, {}
        for role, column in labels["channels"].items():
            det = ToneDetector(role)
            confirmed[role] = det.feed(audio[:, column])
            episodes[role] = det.flush()
        hangup = labels["hangup"]
        calls.append(CallResult(labels["call_id"], hangup["by"], hangup["t"], confirmed, episodes))
        for u in labels["utterances"]:
            column = labels["channels"][u["channel"]]
            speech.append(audio[int(u["start"] * SR): int(u["end"] * SR), column])
    return Corpus(calls, np.concatenate(speech))


@pytest.mark.corpus
def test_corpus_caller_hangup_is_heard_as_busy_tone_on_caller_channel(corpus):
    by_caller = [c for c in corpus.calls if c.hangup_by == "caller"]
    assert len(by_caller) >= 10
    misses = [(c.call_id, c.hangup_t, c.episodes["caller"]) for c in by_caller
              if not any(abs(e.start - c.hangup_t) <= 0.5 for e in c.episodes["caller"])]
    assert misses == []


@pytest.mark.corpus
def test_corpus_busy_tone_is_confirmed_live_within_latency(corpus):
    late = [(c.call_id, c.hangup_t, c.confirmed["caller"]) for c in corpus.calls
            if c.hangup_by == "caller"
            and not any(e.end - c.hangup_t <= LATENCY_S for e in c.confirmed["caller"])]
    assert late == []


@pytest.mark.corpus
def test_corpus_has_no_tone_on_agent_channel_or_before_caller_hangs_up(corpus):
    false_alarms = []
    for c in corpus.calls:
        false_alarms += [(c.call_id, e) for e in c.episodes["agent"]]
        for e in c.episodes["caller"]:
            if c.hangup_by != "caller" or abs(e.start - c.hangup_t) > 0.5:
                false_alarms.append((c.call_id, e))
    assert false_alarms == []


@pytest.mark.corpus
def test_corpus_speech_back_to_back_never_sounds_like_a_tone(corpus):
    # Every utterance (synthetic and real Mandarin, clean, noisy and mu-law),
    # joined without pauses, and again 12 % faster to move the voices'
    # harmonics across 450 Hz.
    assert len(corpus.speech) > 600 * SR
    for speed in (1.0, 1.12):
        x = corpus.speech if speed == 1.0 else soxr.resample(corpus.speech, SR, SR / speed)
        assert detect_tones(x, "caller") == [], speed
