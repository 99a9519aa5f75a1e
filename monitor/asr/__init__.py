"""Speech recognisers: what the pipeline and the desk need of one."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from monitor.events import Transcript, Utterance


class Transcriber(Protocol):
    """Turns utterances into transcripts, one each and in the same order (non-speech: `speech` False)."""

    def transcribe(self, utterances: Sequence[Utterance]) -> list[Transcript]: ...
