"""Every part of a long utterance transcribed: the last clause, and too little text.

Whisper decoding a 4-5 s sentence often stops early or garbles the last clause
("…有任何进展我们会短信通知您的，再见" came back without 再见), and that clause is
where goodbyes live. So for a long utterance the recogniser also decodes the audio
after its last pause on its own and, when those words are not already at the end of
the whole utterance's text, appends them. And when a long utterance that the model
itself calls speech comes back with far fewer characters than anyone speaks in that
time (Mandarin runs at 3-6 characters a second; a 9 s stretch came back as "就"),
it is split at its deepest pause and each half decoded on its own.

These are plain functions on samples and text; the transcriber calls them, in batch
and live alike, so both get the same text.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitor.audio.levels import frame_levels
from monitor.events import SAMPLE_RATE
from monitor.text import normalize

HOP = SAMPLE_RATE // 100  # 10 ms


@dataclass(frozen=True)
class CoverageOptions:
    """When a long utterance's last clause, or its halves, are decoded again."""

    min_utterance_s: float = 3.0  # shorter utterances come back whole
    min_pause_s: float = 0.08  # a dip this long between clauses (a comma's pause)
    min_tail_s: float = 0.5  # the last clause must be at least this long ...
    max_tail_s: float = 3.0  # ... and at most this (else it is no "last clause")
    # A pause is quieter than this share of the way from the utterance's quiet hops
    # (10th percentile level) to its loud ones (90th).
    pause_depth: float = 0.35
    # Whose utterances are checked: the agent's words are what the rules judge (goodbye,
    # forbidden words); checking the caller's too cost 16 % more decoding on the dev corpus.
    roles: tuple[str, ...] = ("agent",)
    # A last clause this far below the rest of the utterance is someone else (the other
    # side leaking in, a neighbour): decoded alone, the model would make words of it.
    max_tail_drop_db: float = 6.0
    # Too little text: fewer characters a second than this over an utterance at least
    # min_split_s long that the model does not call silence (no-speech probability).
    # Mandarin runs at 3-6 characters a second; on the field-style set the garbled closings
    # whose halves gave back the goodbye came back at about 2 a second.
    min_chars_per_s: float = 2.5
    min_split_s: float = 3.0
    # The agent's last clause is decoded again unless the utterance has at least this many
    # characters per second of its whole length: a garbled ending ("…有任何经济种选举")
    # is not short, but its goodbye is only found in the clause decoded alone. Dev: 3.5
    # leaves about one long agent utterance in four to check.
    whole_chars_per_s: float = 3.5
    max_no_speech_prob: float = 0.5


def _levels(x: np.ndarray) -> np.ndarray:
    return _smooth(frame_levels(x, HOP), 3)  # 30 ms


def _smooth(db: np.ndarray, k: int) -> np.ndarray:
    """Moving average that repeats the edge values (padding with zeros would fake loud ends)."""
    if not len(db):
        return db
    padded = np.pad(db, (k // 2, k - 1 - k // 2), mode="edge")
    return np.convolve(padded, np.ones(k) / k, mode="valid")


def last_clause_start(x: np.ndarray, options: CoverageOptions = CoverageOptions()) -> int | None:
    """Sample where the utterance's last clause begins (the middle of its last pause), or None."""
    if len(x) < options.min_utterance_s * SAMPLE_RATE:
        return None
    db = _levels(x)
    lo, hi = np.percentile(db, 10), np.percentile(db, 90)
    if hi - lo < 10.0:  # no clear speech over the noise: nothing to cut at
        return None
    quiet = db < lo + options.pause_depth * (hi - lo)
    # Ignore the trailing silence the VAD kept after the last word.
    loud = np.nonzero(~quiet)[0]
    if not len(loud):
        return None
    end = loud[-1]
    need = round(options.min_pause_s * 100)
    i = end
    while i > 0:
        if quiet[i]:
            j = i
            while j > 0 and quiet[j - 1]:
                j -= 1
            tail_s = (end - i) / 100
            if j == 0:
                return None  # the quiet before the first word: one clause only
            if i - j + 1 >= need and tail_s >= options.min_tail_s:
                if tail_s > options.max_tail_s:
                    return None
                head, tail = db[:j], db[i:end + 1]
                if np.percentile(tail, 90) < np.percentile(head, 90) - options.max_tail_drop_db:
                    return None
                return ((i + j) // 2) * HOP
            i = j
        i -= 1
    return None


def covered(text: str, tail: str) -> bool:
    """Are the tail's words already at the end of the text (allowing a misheard syllable)?"""
    from monitor.matcher import Pattern, PhraseMatcher

    t, full = normalize(tail), normalize(text)
    if not t:
        return True
    if t in full:
        return True
    end = full[-(len(t) + 4):]
    return bool(PhraseMatcher([Pattern(t, t)], lenient=True).find(end))


def with_tail(text: str, tail: str) -> str:
    """The utterance's text with its last clause added when it was missing."""
    if covered(text, tail):
        return text
    return f"{text.rstrip('。.!！?？ ')}，{tail}" if text else tail


def halves(x: np.ndarray, options: CoverageOptions = CoverageOptions()) -> list[tuple[int, int]]:
    """The utterance cut at the quietest 100 ms of its middle half: the halves that carry its
    speaker (a half far below the other is someone else, whom the model would give words)."""
    db = _smooth(_levels(x), 10)
    n = len(db)
    mid = db[n // 4: 3 * n // 4]
    if n < 8:
        return [(0, len(x))]
    at = n // 4 + int(np.argmin(mid))
    loud = [float(np.percentile(part, 90)) for part in (db[:at], db[at:])]
    pieces = [(0, at * HOP), (at * HOP, len(x))]
    return [p for p, level in zip(pieces, loud, strict=True) if level >= max(loud) - options.max_tail_drop_db]


def looks_whole(text: str, seconds: float, options: CoverageOptions = CoverageOptions()) -> bool:
    return len(normalize(text)) >= options.whole_chars_per_s * seconds


def too_little_text(text: str, seconds: float, no_speech_prob: float,
                    options: CoverageOptions = CoverageOptions()) -> bool:
    """Did a long utterance come back with too few words for its length?"""
    return (seconds >= options.min_split_s and no_speech_prob <= options.max_no_speech_prob
            and len(normalize(text)) < options.min_chars_per_s * seconds)
