"""Whose voice is an utterance: this side's own speaker, the other side leaking in, or a neighbour.

Real lines leak: a headset's sidetone and line echo put each side on the other's
channel 15-25 dB down, and other agents on the floor talk 10-15 dB below the desk's
own agent. Both pass the VAD and give fluent words, so they are judged by level:

- echo: where the utterance is loudest it is much weaker than the other channel, and the
  other side is talking then (its level comes and goes; a line noise an AGC lifts is level);
- background: the utterance is much weaker than this channel's own main speaker
  (the level most of its utterances so far have had).

Thresholds were measured on the dev corpus and two 40-call field-style sets (echo,
neighbours, music on hold, packet loss, AGC, speakerphones; scripts/make_synth_corpus.py
--field with two seeds), see `AttributionOptions`. Batch and live use this same object, fed each
channel's utterances in time order, so `monitor replay` equals `monitor score`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitor.audio.levels import frame_levels, level_db
from monitor.events import SAMPLE_RATE, Role, Transcript, Utterance
from monitor.voices import median_log_pitch

FRAME = 480  # 30 ms: levels are compared frame by frame at this size


@dataclass(frozen=True)
class AttributionOptions:
    # this far below the channel's main speaker: someone else's voice. Own speech was never
    # below -6.3 dB of it (dev, and two 40-call field-style sets: 824 utterances); an AGC
    # squeezes neighbours up to -7..-9 dB: of 87 other voices the recogniser heard, 10 were
    # 8-9 dB below and 27 were 7-9 dB below.
    background_db: float = 7.5
    # This far below the other channel where the utterance is loudest: the other side. Compared
    # frame by frame (30 ms) at the utterance's loudest 30 % of frames, against the other
    # channel's loudest frame of the `echo_reach_frames` up to then (an echo comes 50-100 ms
    # after its source): the median gap. Over whole spans a short back-channel or a pause made
    # the levels lie. Measured on every VAD utterance of the dev and two field-style sets (1,362
    # own speech, 330 other): at 12 dB 3 own and 180 others are below it (whole-span levels: 7
    # and 174).
    echo_db: float = 12.0
    echo_reach_frames: int = 5
    # ... and only while the other side is talking: its loud frames (90th percentile of 30 ms
    # frame levels) this far above its quiet ones (20th). A line whose noise an AGC lifts to
    # -10 dBFS is louder than a quiet agent, but flat; it echoes no one. Measured on the dev and
    # two field-style sets: 15 of 20 own-speech utterances dropped as echo had the other channel
    # flat (0.9-4.5 dB), against 5 of 179 true echoes (tones, 0.9-1.4 dB; the next at 5.3 dB).
    other_active_db: float = 5.0
    main_percentile: float = 75.0  # "main speaker" level: this percentile of the channel's utterances
    # Utterances a channel needs before its main level means anything. From the first on: the
    # agent's greeting sets it, so a neighbour's words early in the call are caught too. Simulated
    # over the dev and three field-style sets, 1 instead of 3 dropped 29 more utterances, none of
    # them a side's own words (neighbours' sentences, hallucinated hot words); micro-F1 equal or
    # up 0.01.
    min_known: int = 1
    # A neighbour an AGC lifts to within a few dB of the agent: this far below the main speaker
    # and another voice, its median pitch this far (log, 0.1 = 10.5 %) from the main speaker's:
    # the median over the kept lines of `voice_min_s` or more within `voice_near_db` of the
    # loudest such line so far (the loudest, not the first: a neighbour may talk before the
    # agent does). Simulated over every VAD utterance of the agent channels of the dev and three
    # field-style sets (760 own, 77 others kept by level): 31 more others dropped, no own line
    # and no line partly own; at 4 dB an own line 4.5 dB below went. A level cue alone at 5 dB
    # dropped 24 but left an own line 4.9 dB below; on the caller side (a caller's level varies
    # with emotion and distance) the two cues together still dropped 4-6 own lines, so only
    # `voice_roles` use it.
    voice_gap_db: float = 4.5
    voice_pitch_diff: float = 0.1
    voice_min_s: float = 1.0
    voice_near_db: float = 3.0
    voice_roles: tuple[Role, ...] = ("agent",)


def _spread_db(db: np.ndarray) -> float:
    """How far a span's loud frames (levels `db`) are above its quiet ones: speech comes and goes
    in syllables, noise stays level."""
    if len(db) < 2:
        return float("inf")  # too short to tell: as before, by level alone
    return float(np.percentile(db, 90) - np.percentile(db, 20))


def _below_other_db(o: np.ndarray, t: np.ndarray, reach: int) -> float:
    """How far the utterance's loud frames (levels `o`) are below the other channel's (`t`, over
    the same span); at least 4 frames of each."""
    n = min(len(o), len(t))
    o, t = o[:n], t[:n]
    recent = np.max([np.concatenate([np.full(k, -120.0), t[:n - k]]) for k in range(reach)], axis=0)
    loud = o >= np.percentile(o, 70)
    return float(np.median((recent - o)[loud]))


class Attributor:
    """Decides, utterance by utterance and per channel in time order, what to keep."""

    def __init__(self, options: AttributionOptions = AttributionOptions()) -> None:
        self.opt = options
        self._levels: dict[Role, list[float]] = {}
        self._voices: dict[Role, list[tuple[float, float]]] = {}  # (level, median log pitch) of kept lines

    def _main_pitch(self, voices: list[tuple[float, float]]) -> float:
        top = max(level for level, _ in voices)
        return float(np.median([p for level, p in voices if level >= top - self.opt.voice_near_db]))

    def judge(self, role: Role, own: np.ndarray, other: np.ndarray | None, remember: bool = True) -> str | None:
        """Why an utterance (its samples `own`, the other channel's over the same span) is not
        this side speaking; None to keep it. Remembers kept levels for the channel's main level."""
        level = level_db(own)
        if other is not None and len(other):
            o, t = frame_levels(own, FRAME), frame_levels(other, FRAME)
            below = _below_other_db(o, t, self.opt.echo_reach_frames) if min(len(o), len(t)) >= 4 \
                else level_db(other) - level
            if below >= self.opt.echo_db and _spread_db(t) >= self.opt.other_active_db:
                return f"echo of the other side ({-below:.0f} dB)"
        known = self._levels.setdefault(role, [])
        main = float(np.percentile(known, self.opt.main_percentile)) if len(known) >= self.opt.min_known else None
        if main is not None and main - level >= self.opt.background_db:
            return f"background voice ({level - main:.0f} dB below this side's speaker)"
        voices = self._voices.setdefault(role, [])
        by_voice = role in self.opt.voice_roles
        pitch = float("nan")
        if by_voice and main is not None and voices and main - level >= self.opt.voice_gap_db:
            pitch = median_log_pitch(own)
            if abs(pitch - self._main_pitch(voices)) >= self.opt.voice_pitch_diff:
                return f"background voice ({level - main:.0f} dB below this side's speaker, another voice)"
        if remember:
            known.append(level)
            if by_voice and len(own) >= self.opt.voice_min_s * SAMPLE_RATE:
                pitch = median_log_pitch(own) if np.isnan(pitch) else pitch
                if not np.isnan(pitch):
                    voices.append((level, pitch))
        return None


def dropped(u: Utterance, why: str) -> Transcript:
    """The transcript of an utterance that is not this side speaking (not sent to the recogniser)."""
    return Transcript(role=u.role, start=u.start, end=u.end, text="", speech=False, dropped_because=why)


def is_leak(tr: Transcript) -> bool:
    """Heard on the channel but not this side's words: an echo, a neighbour, music on hold."""
    return tr.dropped_because.startswith(("echo of", "background voice", "music"))
