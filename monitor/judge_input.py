"""What the rule engine is fed for one call, kept in the report so a call can be re-judged.

`monitor score` saves it under the report key "judge_input"; `monitor rescore` reads it back
and calls the same `pipeline.judge()`, so a changed phrasebook is applied without audio or
speech recognition. Times are kept at full precision (JSON floats round-trip exactly), every
transcript is kept, dropped ones too (the hold and hang-up rules read some of them).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from monitor.events import CallEvent, Role, ToneEvent, Transcript

FORMAT = 1  # bump when the saved shape changes


class JudgeInputError(ValueError):
    """A report line that cannot be re-judged; one line."""


@dataclass(frozen=True)
class JudgeInput:
    """Everything `pipeline.judge()` takes apart from the profile."""

    roles: tuple[Role, ...]
    direction: str
    rules: tuple[str, ...]
    transcripts: list[Transcript]
    confirmed_tones: list[ToneEvent]  # as the live path learns of them (ending when confirmed)
    tones: list[ToneEvent]  # with their true extent (reported)
    events: list[CallEvent]
    duration: float
    truncated: bool = False  # the recording stops before the call did: its end is not judged
    note: str = ""
    path: str = ""
    hotwords: tuple[str, ...] = ()  # the profile's hot words the recogniser was given (not judged)
    warnings: tuple[str, ...] = ()  # about how the audio was read (a header worked around)

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "roles": list(self.roles),
            "direction": self.direction,
            "rules": list(self.rules),
            "duration": float(self.duration),
            "truncated": self.truncated,
            "note": self.note,
            "path": self.path,
            "hotwords": list(self.hotwords),
            "warnings": list(self.warnings),
            "transcripts": [_transcript_dict(t) for t in self.transcripts],
            "confirmed_tones": [_tone_dict(t) for t in self.confirmed_tones],
            "tones": [_tone_dict(t) for t in self.tones],
            "events": [{"t": float(e.t), "type": e.type, "by": e.by, "source": e.source} for e in self.events],
        }

    @classmethod
    def from_dict(cls, d: Any) -> JudgeInput:
        if not isinstance(d, dict):
            raise JudgeInputError("no judge_input: the report was written by an older monitor; score the audio again")
        if d.get("format") != FORMAT:
            raise JudgeInputError(f"judge_input format {d.get('format')!r} is not {FORMAT}; score the audio again")
        try:
            return cls(
                roles=tuple(_role(r) for r in d["roles"]),
                direction=str(d["direction"]),
                rules=tuple(str(r) for r in d["rules"]),
                transcripts=[Transcript(role=_role(t["role"]), start=float(t["start"]), end=float(t["end"]),
                                        text=str(t["text"]), speech=bool(t["speech"]),
                                        avg_logprob=float(t["avg_logprob"]), no_speech_prob=float(t["no_speech_prob"]),
                                        dropped_because=str(t["dropped_because"]),
                                        role_confidence=None if t.get("role_confidence") is None
                                        else float(t["role_confidence"]),
                                        alternatives=tuple(str(a) for a in t.get("alternatives", ())),
                                        may_open_with=tuple(str(a) for a in t.get("may_open_with", ())),
                                        level_db=None if t.get("level_db") is None else float(t["level_db"]))
                            for t in d["transcripts"]],
                confirmed_tones=[_tone(t) for t in d["confirmed_tones"]],
                tones=[_tone(t) for t in d["tones"]],
                events=[CallEvent(t=float(e["t"]), type=str(e["type"]),
                                  by=None if e["by"] is None else _role(e["by"]), source=str(e["source"]))
                        for e in d["events"]],
                duration=float(d["duration"]),
                truncated=bool(d["truncated"]),
                note=str(d["note"]),
                path=str(d["path"]),
                hotwords=tuple(str(w) for w in d.get("hotwords", ())),
                warnings=tuple(str(w) for w in d.get("warnings", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise JudgeInputError(f"damaged judge_input ({type(exc).__name__}: {exc})") from None


def _role(r: Any) -> Role:
    if r not in ("agent", "caller"):
        raise ValueError(f"unknown channel {r!r}")
    return cast(Role, r)


def _transcript_dict(t: Transcript) -> dict:
    return {"role": t.role, "start": float(t.start), "end": float(t.end), "text": t.text, "speech": bool(t.speech),
            "avg_logprob": float(t.avg_logprob), "no_speech_prob": float(t.no_speech_prob),
            "dropped_because": t.dropped_because,
            **({"role_confidence": float(t.role_confidence)} if t.role_confidence is not None else {}),
            **({"alternatives": list(t.alternatives)} if t.alternatives else {}),
            **({"may_open_with": list(t.may_open_with)} if t.may_open_with else {}),
            **({"level_db": round(float(t.level_db), 1)} if t.level_db is not None else {})}


def _tone_dict(t: ToneEvent) -> dict:
    return {"role": t.role, "start": float(t.start), "end": float(t.end), "kind": t.kind}


def _tone(d: dict) -> ToneEvent:
    return ToneEvent(role=_role(d["role"]), start=float(d["start"]), end=float(d["end"]), kind=str(d["kind"]))
