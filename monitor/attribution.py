"""Whose voice is an utterance: this side's own speaker, the other side leaking in, or a neighbour.

Real lines leak: a headset's sidetone and line echo put each side on the other's
channel 15-25 dB down, and other agents on the floor talk 10-15 dB below the desk's
own agent. Both pass the VAD and give fluent words, so they are judged by level:

- echo: the utterance is much weaker than the other channel over the same span
  (what is heard is the other side);
- background: the utterance is much weaker than this channel's own main speaker
  (the level most of its utterances so far have had).

Thresholds were measured on the dev corpus and a field-style set (echo, neighbours,
music on hold, packet loss, AGC; scripts/field_conditions.py): no labelled utterance of
either side was below -6.3 dB of its channel's main level or below -10.1 dB of the other
channel, while 84 of 159 leaked/background segments were at -9 dB or lower and 69 at
-12 dB or lower vs the other channel. Batch and live use this same object, fed each
channel's utterances in time order, so `monitor replay` equals `monitor score`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitor.events import Role, Transcript, Utterance


@dataclass(frozen=True)
class AttributionOptions:
    background_db: float = 9.0  # this far below the channel's main speaker: someone else's voice
    echo_db: float = 12.0  # this far below the other channel over the same span: the other side
    main_percentile: float = 75.0  # "main speaker" level: this percentile of the channel's utterances
    min_known: int = 3  # utterances a channel needs before its main level means anything


def level_db(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(10.0 * np.log10(np.mean(x * x) + 1e-12)) if len(x) else -120.0


class Attributor:
    """Decides, utterance by utterance and per channel in time order, what to keep."""

    def __init__(self, options: AttributionOptions = AttributionOptions()) -> None:
        self.opt = options
        self._levels: dict[Role, list[float]] = {}

    def judge(self, role: Role, own: np.ndarray, other: np.ndarray | None, remember: bool = True) -> str | None:
        """Why an utterance (its samples `own`, the other channel's over the same span) is not
        this side speaking; None to keep it. Remembers kept levels for the channel's main level."""
        level = level_db(own)
        if other is not None and len(other):
            below = level_db(other) - level
            if below >= self.opt.echo_db:
                return f"echo of the other side ({-below:.0f} dB)"
        known = self._levels.setdefault(role, [])
        if len(known) >= self.opt.min_known:
            main = float(np.percentile(known, self.opt.main_percentile))
            if main - level >= self.opt.background_db:
                return f"background voice ({level - main:.0f} dB below this side's speaker)"
        if remember:
            known.append(level)
        return None


def dropped(u: Utterance, why: str) -> Transcript:
    """The transcript of an utterance that is not this side speaking (not sent to the recogniser)."""
    return Transcript(role=u.role, start=u.start, end=u.end, text="", speech=False, dropped_because=why)


def is_leak(tr: Transcript) -> bool:
    """Heard on the channel but not this side's words: an echo, a neighbour, music on hold."""
    return tr.dropped_because.startswith(("echo of", "background voice", "music"))
