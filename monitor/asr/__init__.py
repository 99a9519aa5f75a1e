"""Speech recognisers: what the pipeline and the desk need of one."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from monitor.events import Heard, Transcript, Utterance


class Transcriber(Protocol):
    """Turns utterances into transcripts, one each and in the same order (non-speech: `speech` False).

    `before`: the same side's utterance heard just before the first of these and what was heard
    in it, for a recogniser given one utterance at a time (the live desk); a short piece may be
    the end of that sentence (monitor.asr.fragments)."""

    def transcribe(self, utterances: Sequence[Utterance], before: Heard | None = None) -> list[Transcript]: ...
