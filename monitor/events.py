"""Typed events that cross stage boundaries.

audio source -> AudioFrame -> VadSegmenter -> Utterance -> Transcriber -> Transcript
-> RuleEngine -> Violation -> Alert (monitor.hub.protocol: it crosses the wire) -> sinks.  Every stream ends with EndOfStream.
Times are seconds from pick-up (t = 0 at the start of the call).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

Role = Literal["agent", "caller"]

SAMPLE_RATE = 16000  # every stage after the audio reader works on 16 kHz mono float32
# The rules a call is scored on (the corpus labels); others are minor findings.
SCORED_RULES = ("greeting", "forbidden", "closing", "hangup", "hold")
# Findings for a person to check, not violations (a forbidden phrase in a mixed-mono line whose
# speaker is unsure): no points, and not counted among a call's violations.
REVIEW_RULES = ("forbidden_unsure",)


@dataclass(frozen=True)
class AudioFrame:
    """A block of 16 kHz mono float32 samples from one channel."""

    role: Role
    start: float
    samples: np.ndarray  # float32, 16 kHz

    @property
    def end(self) -> float:
        return self.start + len(self.samples) / SAMPLE_RATE


@dataclass(frozen=True)
class Utterance:
    """A stretch of speech on one channel, closed by the VAD segmenter."""

    role: Role
    start: float
    end: float
    samples: np.ndarray  # float32, 16 kHz, includes pre-roll/padding

    def piece(self, a: int, b: int) -> Utterance:
        """Samples a:b of this utterance, with their times."""
        return Utterance(role=self.role, start=self.start + a / SAMPLE_RATE, end=self.start + b / SAMPLE_RATE,
                         samples=self.samples[a:b])


@dataclass(frozen=True)
class Transcript:
    """What the transcriber heard in one utterance.

    `speech` is False when the text was dropped as non-speech (empty, a known
    hallucination, prompt echo, or too unlikely); rules only look at speech.
    """

    role: Role
    start: float
    end: float
    text: str
    speech: bool = True
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    dropped_because: str = ""
    # Mixed-mono calls only (monitor.roles): how sure the role is, 0.5..1; None: heard on its own channel.
    role_confidence: float | None = None
    # Other readings of the same audio the recogniser found nearly as likely (its beam's next
    # hypotheses, monitor.asr.whisper): on a noisy line the right words are often one of them.
    alternatives: tuple[str, ...] = ()
    # Words the agent must say (its goodbye) that the best reading lacks but the recogniser, asked,
    # scores as likely first words of the utterance (monitor.asr.whisper `opening_probes`): rules
    # that fault their absence count them as said.
    may_open_with: tuple[str, ...] = ()
    # How loud the talker in the utterance is (monitor.audio.levels.speech_level_db); None: not measured.
    level_db: float | None = None

    def to_dict(self) -> dict:
        return {"channel": self.role, "start": round(self.start, 2), "end": round(self.end, 2),
                "text": self.text,
                **({"role_confidence": self.role_confidence} if self.role_confidence is not None else {})}


@dataclass(frozen=True)
class Heard:
    """An utterance with what the transcriber heard in it: the sentence a short piece after it
    continues (monitor.asr.fragments)."""

    utterance: Utterance
    transcript: Transcript


@dataclass(frozen=True)
class ToneEvent:
    """A call-progress tone (busy / disconnect / reorder) heard on one channel."""

    role: Role
    start: float
    end: float
    kind: str  # e.g. "busy_450", "reorder_480_620"


@dataclass(frozen=True)
class CallEvent:
    """A call-control event from the softphone/PBX (or an events sidecar), in call time."""

    t: float
    type: str  # "start" | "hangup"
    by: Role | None = None
    source: str = ""  # who said so, e.g. "baresip: Connection reset by peer"


@dataclass(frozen=True)
class Control:
    """A softphone's word about the call (hook, baresip), in the desk's audio stream.

    It has no time of its own: it applies where it sits among the audio frames,
    so a hang-up is never judged against audio heard after it.
    """

    action: Literal["start", "end"]
    by: Role | None = None  # with "end": who hung up, when the softphone knows
    call_id: str | None = None
    peer: str | None = None  # the other party, e.g. a SIP URI
    source: str = "hook"  # "hook" | "baresip"
    reason: str = ""  # the softphone's own words, e.g. "Connection reset by peer"
    lost: bool = False  # "end" because the softphone went away: the call's real end was not seen


@dataclass(frozen=True)
class CallStarted:
    """A call begins: the frames after it are timed from its t = 0."""

    call_id: str
    at: float  # desk stream time of the call's t = 0
    how: str  # "hook" | "baresip" | "speech"
    peer: str | None = None


@dataclass(frozen=True)
class CallEnded:
    """A call is over at call time `t`; `by` says who hung up when the softphone told."""

    t: float
    why: str  # "hook"/"baresip" (the softphone said), "softphone lost", "busy tone", "silence",
    # "too long", "end of audio", "new call"
    by: Role | None = None
    source: str = ""


@dataclass(frozen=True)
class Violation:
    rule: str
    start: float
    end: float
    channel: Role
    text: str
    evidence: str
    severity: str = "major"
    deduction: float = 0.0
    phrase: str | None = None
    seed: str | None = None
    # Mixed-mono calls: how sure it is that the line was the agent's (monitor.roles); None in stereo.
    role_confidence: float | None = None

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if v is not None}
        d["start"] = round(self.start, 2)
        d["end"] = round(self.end, 2)
        return d


@dataclass(frozen=True)
class EndOfStream:
    """Marks the end of a channel's audio or of a call."""

    t: float
    role: Role | None = None
    truncated: bool = False  # a recording that stops before the call did: its end is not judged
