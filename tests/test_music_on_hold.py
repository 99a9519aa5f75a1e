"""Music on hold gives no words and does not hide a hold.

The music here is made in the test (a tune of plucked notes, a chord pad), not taken
from the field-style generator; the speech is the dev corpus's real audio.
"""
import numpy as np
import pytest

from monitor.audio.files import load_call
from monitor.events import SAMPLE_RATE, Utterance
from monitor.music import MusicOptions, music_spans, split_music, without_music
from monitor.phrasebook import load_profile
from monitor.pipeline import ScoreOptions, score_call
from monitor.vad import segment
from tests.conftest import load_labels

SR = SAMPLE_RATE


def tune(seconds: float, seed: int = 3, kind: str = "pluck") -> np.ndarray:
    """A melody in C major, quarter notes at 100-150 bpm, unit RMS."""
    rng = np.random.default_rng(seed)
    notes = 261.6 * 2 ** (np.array([0, 2, 4, 5, 7, 9, 11, 12]) / 12)
    out: list[np.ndarray] = []
    total = int(seconds * SR)
    n = 0
    while n < total:
        length = int(rng.uniform(0.4, 0.6) * SR)
        t = np.arange(length) / SR
        f = notes[rng.integers(len(notes))]
        if kind == "pluck":
            y = sum(np.sin(2 * np.pi * f * h * t) / h for h in (1, 2, 3)) * np.exp(-t / 0.35)
        else:  # a sustained chord: root, third, fifth
            y = sum(np.sin(2 * np.pi * f * r * t) for r in (1, 1.26, 1.5)) * np.minimum(1, t / 0.05)
        out.append(y)
        n += length
    x = np.concatenate(out)[:total]
    return (x / np.sqrt(np.mean(x**2))).astype(np.float32)


def dev_call(corpus_dir, call: str):
    labels = load_labels(corpus_dir / f"{call}.json")
    return labels, load_call(corpus_dir / labels["audio"])


@pytest.mark.parametrize("kind", ["pluck", "chord"])
def test_a_melody_is_music_from_end_to_end(kind):
    x = 0.1 * tune(8.0, kind=kind)
    spans = music_spans(x)
    assert spans and spans[0][0] < 0.6 and spans[-1][1] > 7.4
    assert sum(b - a for a, b in spans) > 6.5


def test_no_labelled_speech_of_the_dev_corpus_is_music(corpus_dir):
    """Every labelled utterance of every dev call, agent and caller: none is cut as music."""
    found = []
    for path in sorted(corpus_dir.glob("dev-*.json")):
        labels = load_labels(path)
        call = load_call(corpus_dir / labels["audio"])
        for u in labels["utterances"]:
            x = call.channels[u["channel"]][int(u["start"] * SR):int(u["end"] * SR)]
            if music_spans(x):
                found.append((path.stem, u["start"], u["text"]))
    assert found == []


def test_the_words_before_the_music_stay_and_the_music_goes(corpus_dir):
    labels, call = dev_call(corpus_dir, "dev-006")
    u = next(u for u in labels["utterances"] if u["channel"] == "agent" and "客户经理" in u["text"])
    words = call.channels["agent"][int(u["start"] * SR):int(u["end"] * SR)]
    rms = float(np.sqrt(np.mean(words**2)))
    glued = np.concatenate([words, np.zeros(int(0.2 * SR), np.float32), 0.3 * rms * tune(6.0)])
    speech, music = without_music(Utterance("agent", 20.0, 20.0 + len(glued) / SR, glued))
    assert len(speech) == 1 and len(music) == 1
    cut = len(words) / SR + 20.0
    assert abs(speech[0].end - cut) < 0.5 and abs(music[0].start - cut) < 0.5
    assert music[0].end > 20.0 + len(glued) / SR - 0.3


def test_the_vad_would_glue_music_to_speech_and_the_split_undoes_it(corpus_dir):
    labels, call = dev_call(corpus_dir, "dev-006")
    x = call.channels["agent"][: int(12 * SR)].copy()
    rms = float(np.sqrt(np.mean(x[np.abs(x) > 1e-3] ** 2)))
    last_end = max(u["end"] for u in labels["utterances"] if u["channel"] == "agent" and u["end"] < 11.0)
    start = int((last_end + 0.3) * SR)
    x[start:] += 0.25 * rms * tune((len(x) - start) / SR)
    utts = segment(x, "agent")
    assert any(u.end > 11.5 for u in utts)  # the VAD hears the music as speech
    speech, music = split_music(utts)
    assert music and all(u.end <= last_end + 0.8 for u in speech)


@pytest.fixture(scope="module")
def hold_with_music(corpus_dir, tmp_path_factory):
    """A dev call with a hold and no ask, music played into the hold on both channels."""
    import soundfile as sf

    for path in sorted(corpus_dir.glob("dev-*.json")):
        labels = load_labels(path)
        holds = [v for v in labels.get("violations", []) if v["rule"] == "hold"]
        if holds:
            break
    else:
        pytest.fail("no dev call with a hold violation")
    call = load_call(corpus_dir / labels["audio"])
    hold = holds[0]
    a, b = int((hold["start"] + 0.4) * SR), int((hold["end"] - 0.3) * SR)
    stereo = np.stack([call.channels["agent"], call.channels["caller"]], axis=1).copy()
    for c in (0, 1):
        voiced = stereo[:, c][np.abs(stereo[:, c]) > 1e-3]
        stereo[a:b, c] += 0.3 * float(np.sqrt(np.mean(voiced**2))) * tune((b - a) / SR, seed=c + 7)
    out = tmp_path_factory.mktemp("moh") / f"{path.stem}-moh.wav"
    sf.write(out, stereo, SR, subtype="FLOAT")
    return out, labels, hold


def test_music_on_hold_still_raises_the_hold_violation_and_gives_no_words(whisper_factory, hold_with_music):
    path, labels, hold = hold_with_music
    profile = load_profile(labels["profile"])
    report = score_call(path, profile, whisper_factory(profile.hotwords))
    holds = [v for v in report.violations if v.rule == "hold"]
    assert holds and abs(holds[0].start - hold["start"]) < 3.0, report.violations
    inside = [t for t in report.transcript if t.speech and hold["start"] + 0.5 < t.start < hold["end"] - 0.5]
    assert inside == [], inside
    said = report.to_dict()["not_their_words"]
    assert any(w["why"].startswith("music") for w in said)


def test_without_the_music_step_the_hold_is_missed(whisper_factory, hold_with_music):
    """Why the step exists: the same call with music taken for speech hides the hold."""
    path, labels, _ = hold_with_music
    profile = load_profile(labels["profile"])
    report = score_call(path, profile, whisper_factory(profile.hotwords),
                        ScoreOptions(music=MusicOptions(enabled=False)))
    assert not [v for v in report.violations if v.rule == "hold"]
