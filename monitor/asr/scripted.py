"""A transcriber that reads from a script instead of listening: for tests and demos.

Each utterance gets the text of the scripted lines of its channel that it
overlaps (in order); an utterance overlapping no line is non-speech.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from monitor.audio.levels import speech_level_db
from monitor.events import Heard, Role, Transcript, Utterance


@dataclass(frozen=True)
class Line:
    role: Role
    start: float
    end: float
    text: str


class ScriptedTranscriber:
    def __init__(self, lines: Sequence[Line]) -> None:
        self.lines = sorted(lines, key=lambda x: x.start)
        self.calls: list[Utterance] = []

    def transcribe(self, utterances: Sequence[Utterance], before: Heard | None = None) -> list[Transcript]:
        out = []
        for u in utterances:
            self.calls.append(u)
            said = [x.text for x in self.lines if x.role == u.role and x.start < u.end and x.end > u.start]
            text = "".join(said)
            out.append(Transcript(role=u.role, start=u.start, end=u.end, text=text, speech=bool(text),
                                  dropped_because="" if text else "empty", level_db=speech_level_db(u.samples)))
        return out
