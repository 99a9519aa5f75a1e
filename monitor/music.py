"""Music on hold inside the VAD's utterances: found by its steady pitch and cut out.

Music on hold is periodic and loud enough to pass the VAD, so it opens utterances,
runs them on to the 14 s cut and glues itself to the agent's "请您稍等" and to the
words after the hold. Then the hold never looks like a hold, and the recogniser turns
the melody into words ("警察", "这位").

What tells it from speech, cheaply: a musical note holds one pitch for its whole
length and jumps to the next note, while speech (Mandarin tones above all) glides.
Per 10 ms hop the pitch period is taken from the autocorrelation; a hop is "steady"
when the period moved by less than 1 % since the previous hop. Over half a second,
music is steady in 75-96 % of the hops, speech in about 30 % (measured: max over every
labelled utterance of the dev corpus and a field-style set, p50 0.30, p99 0.64, max
0.86; hold music at 6-15 dB below speech, median 0.86-0.96 where it is louder than the
line noise). A run of at least 1 s at 0.7 or more is music; shorter steady stretches
(a long level-tone syllable, a held 嗯) are left to the recogniser.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitor.events import SAMPLE_RATE, Utterance

HOP = SAMPLE_RATE // 100  # 10 ms
WIN = 4 * HOP  # 40 ms analysis window: two periods of an 80 Hz voice
MIN_LAG = SAMPLE_RATE // 1000  # 1 kHz: a higher note is found at a multiple of its period
MAX_LAG = SAMPLE_RATE // 70


@dataclass(frozen=True)
class MusicOptions:
    """How music is told from speech (see the module's measurements)."""

    window_s: float = 0.5  # steadiness is the share of steady hops over this window
    steady_change: float = 0.01  # a hop whose period moved less than this (relative) is steady
    min_share: float = 0.7  # a window this steady is music
    min_run_s: float = 1.0  # music only if it lasts this long
    min_peak: float = 0.5  # autocorrelation peak a hop needs to have a pitch at all
    relative_db: float = 25.0  # hops this far below the utterance's loud part have no pitch
    min_piece_s: float = 0.3  # speech left beside the music shorter than this is dropped
    enabled: bool = True


def _pitch_track(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(period in samples, autocorrelation peak, level dB) per 10 ms hop."""
    n = (len(x) - WIN) // HOP + 1
    if n <= 0:
        empty = np.zeros(0)
        return empty, empty, empty
    idx = np.arange(WIN)[None, :] + HOP * np.arange(n)[:, None]
    frames = x[idx].astype(np.float64)
    level = 10.0 * np.log10(np.mean(frames * frames, axis=1) + 1e-12)
    frames = (frames - frames.mean(axis=1, keepdims=True)) * np.hanning(WIN)
    spec = np.fft.rfft(frames, 2 * WIN)
    ac = np.fft.irfft(np.abs(spec) ** 2)[:, :WIN]
    ac = ac / np.maximum(ac[:, :1], 1e-12)
    band = ac[:, MIN_LAG:MAX_LAG]
    k = np.argmax(band, axis=1)
    peak = band[np.arange(n), k]
    # A peak at either end of the searched band is no pitch (a hum, hiss), not a note.
    inside = (k > 0) & (k < band.shape[1] - 1)
    peak = np.where(inside, peak, 0.0)
    return (k + MIN_LAG).astype(np.float64), peak, level


def steadiness(x: np.ndarray, options: MusicOptions = MusicOptions()) -> np.ndarray:
    """Per 10 ms hop: the share of steady-pitch hops in the window around it (0..1)."""
    lag, peak, level = _pitch_track(np.asarray(x, dtype=np.float32))
    if len(lag) < 2:
        return np.zeros(len(lag))
    pitched = (peak >= options.min_peak) & (level >= np.percentile(level, 95) - options.relative_db)
    change = np.r_[1.0, np.abs(np.diff(lag)) / lag[1:]]
    steady = (change < options.steady_change) & pitched & np.r_[False, pitched[:-1]]
    w = max(1, round(options.window_s * 100))
    return np.convolve(steady.astype(np.float64), np.ones(w) / w, mode="same")


def music_spans(x: np.ndarray, options: MusicOptions = MusicOptions()) -> list[tuple[float, float]]:
    """Stretches of music in `x`, in seconds from its start."""
    if not options.enabled:
        return []
    music = steadiness(x, options) >= options.min_share
    spans: list[tuple[float, float]] = []
    i, n = 0, len(music)
    while i < n:
        if not music[i]:
            i += 1
            continue
        j = i
        while j < n and music[j]:
            j += 1
        # The window smears a run by half its length each side: give that back.
        a = max(0.0, (i * HOP + WIN / 2) / SAMPLE_RATE - options.window_s / 2)
        b = min(len(x) / SAMPLE_RATE, (j * HOP + WIN / 2) / SAMPLE_RATE + options.window_s / 2)
        if (j - i) / 100 >= options.min_run_s:
            spans.append((a, b))
        i = j
    return spans


def without_music(u: Utterance, options: MusicOptions = MusicOptions()) -> tuple[list[Utterance], list[Utterance]]:
    """(the speech pieces of an utterance, its music pieces)."""
    spans = music_spans(u.samples, options)
    if not spans:
        return [u], []
    speech: list[Utterance] = []
    cuts = [0.0] + [t for s in spans for t in s] + [len(u.samples) / SAMPLE_RATE]
    for a, b in zip(cuts[0::2], cuts[1::2], strict=True):
        if b - a >= options.min_piece_s:
            speech.append(u.piece(int(a * SAMPLE_RATE), int(b * SAMPLE_RATE)))
    return speech, [u.piece(int(a * SAMPLE_RATE), int(b * SAMPLE_RATE)) for a, b in spans]


MUSIC = "music (steady pitch: a melody, not speech)"


def split_music(utts: list[Utterance], options: MusicOptions = MusicOptions()) -> tuple[list[Utterance], list[Utterance]]:
    """(speech pieces, music pieces) of a list of utterances, in the order given."""
    speech: list[Utterance] = []
    music: list[Utterance] = []
    for u in utts:
        s, m = without_music(u, options)
        speech += s
        music += m
    return speech, music
