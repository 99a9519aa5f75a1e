"""A short piece the VAD cut off a sentence, heard as the sentence's continuation.

A goodbye said after a breath ("…随时拨打我们的热线，| 再见") is often closed by the VAD as
an utterance of its own, 0.6-1.4 s long. Decoded alone, inside the model's 6 s minimum window,
Whisper garbles it or calls it silence ("在这", "赞金", "中国联通" as prompt echo; "再见 您可以…"
dropped at no-speech 0.61). Decoded glued behind the same side's sentence, with that sentence's
words forced as the decoder's prefix, the model hears what follows them: "再见".

Measured on the agent fragments (at most 1.5 s, at most 0.6 s after the same side's previous
utterance) of the dev calls and five 40-call field-style sets (scripts/make_synth_corpus.py
--field): of 37, the continuation recovered the goodbye in 8 of 9 that held one, and on the
fragments holding none of the agent's words (noise, a neighbour, echo) it made up text at an
average log-prob of -2.0 to -2.7 per token, fell back on its prompt ("这些东西是普通话的" at -1.19),
or at -1.03 made up a text too long for the fragment (11 characters in 1.3 s); real
continuations were at -0.04 to -1.18 (a mono goodbye at -1.15).

A breath of 0.8 s before the goodbye leaves a VAD gap of 0.6-0.7 s, so a piece is taken up to
1.0 s after the sentence (0.6 before): on dev calls mixed to mono with 0.8 s of quiet put before
the agent's last 再见 (12 calls), the lone goodbye was read "再见景" and dropped, or went to the
caller, in 2 (a false `closing`); glued, it reads 再见 (-0.96) and neither happens. On the dev,
two held-out-style and five field-style sets (stereo), 3 more pieces are decoded so, none of
their findings changed; mono dev and held-out-style sets score the same (attribution 0.935,
0.882, 0.892).

Plain functions here; the transcriber decodes (monitor.asr.whisper), in batch and live alike.
"""
from __future__ import annotations

from dataclasses import dataclass

from monitor.events import Utterance
from monitor.text import normalize


@dataclass(frozen=True)
class FragmentOptions:
    """Which utterances are decoded again behind the sentence before them, and what is kept."""

    max_s: float = 1.5  # longer utterances are decoded well alone
    max_gap_s: float = 1.0  # after more silence than this (a breath: a VAD gap up to 0.7 s) a new sentence
    roles: tuple[str, ...] = ("agent",)  # the agent's words are what the rules judge
    # The continuation is steered by the forced prefix, so it needs more support from the audio
    # than a reading of its own (monitor.asr.filters.SpeechFilter.min_avg_logprob -1.3).
    min_avg_logprob: float = -1.2
    # Mandarin runs at 3-6 characters a second, fast talkers at 7. A continuation longer than this
    # (and one more) for its fragment came from the prefix's momentum, or holds words of the sentence
    # its own reading lost: either way not the fragment's own, which is then read as it was alone.
    max_chars_per_s: float = 7.0
    # Sentence, gap and fragment, at most: the encoder's time grows with its window (up to 6 s
    # costs what decoding the fragment alone does; the goodbyes above followed 4-5 s sentences).
    max_glued_s: float = 12.0


def follows(prev: Utterance, u: Utterance, options: FragmentOptions = FragmentOptions()) -> bool:
    """Is `u` a short piece right after `prev` on the same side?"""
    gap = u.start - prev.end
    return (u.role == prev.role and u.role in options.roles and u.end - u.start <= options.max_s
            and 0.0 <= gap <= options.max_gap_s and u.end - prev.start <= options.max_glued_s)


def plausible(text: str, seconds: float, avg_logprob: float, options: FragmentOptions = FragmentOptions()) -> bool:
    """Is this continuation heard in the fragment's audio rather than made up from the prefix?"""
    n = len(normalize(text))
    return 0 < n <= options.max_chars_per_s * seconds + 1 and avg_logprob >= options.min_avg_logprob
