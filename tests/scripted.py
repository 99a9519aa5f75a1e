"""Helpers to write rule tests as scripted calls instead of audio."""
from __future__ import annotations

from monitor.events import Transcript


def agent(start: float, end: float, text: str, speech: bool = True, why: str = "") -> Transcript:
    return Transcript(role="agent", start=start, end=end, text=text, speech=speech, dropped_because=why)


def caller(start: float, end: float, text: str, speech: bool = True, why: str = "") -> Transcript:
    return Transcript(role="caller", start=start, end=end, text=text, speech=speech, dropped_because=why)
