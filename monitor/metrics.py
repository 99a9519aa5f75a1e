"""Service metrics of one call from when each side spoke: talk shares, silence, overtalk, speech rate.

Only each side's own words count (transcripts with `speech`; echoes, background voices,
music and unreadable noise do not). Times run from pick-up (0) to the last word heard, so
the busy tone after a hang-up is not silence. Utterance times come from the VAD and are a
little wider than the words (pre-roll and padding); see tests/test_metrics.py for how close
they come to the labelled timings of the dev corpus.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from monitor.events import Role, Transcript

Interval = tuple[float, float]

# One side starts while the other is talking and the other goes on for at least this long:
# an interruption (shorter overlaps are the VAD's padding or a quick back-channel).
INTERRUPT_MIN_OVERLAP_S = 0.6
_COUNTED = re.compile(r"[\w]", re.UNICODE)  # characters that are spoken: hanzi, letters, digits


@dataclass(frozen=True)
class CallMetrics:
    talk_s: float  # the span the metrics cover: pick-up to the last word
    agent_talk_s: float
    caller_talk_s: float
    agent_talk_share: float  # agent / (agent + caller) talk time, 0..1
    silence_s: float  # neither side talking
    silence_share: float  # silence_s / talk_s
    longest_silence_s: float
    overtalk_s: float  # both talking
    overtalk_share: float  # overtalk_s / talk_s
    agent_interruptions: int  # the agent started while the caller was talking
    caller_interruptions: int
    agent_chars_per_min: float  # spoken characters of the agent per minute of the agent talking

    def to_dict(self) -> dict:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """The union of intervals, sorted and non-overlapping."""
    out: list[Interval] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def total(intervals: Sequence[Interval]) -> float:
    return float(sum((b - a for a, b in intervals), 0.0))


def intersect(x: Sequence[Interval], y: Sequence[Interval]) -> list[Interval]:
    out: list[Interval] = []
    i = j = 0
    while i < len(x) and j < len(y):
        a, b = max(x[i][0], y[j][0]), min(x[i][1], y[j][1])
        if a < b:
            out.append((a, b))
        if x[i][1] < y[j][1]:
            i += 1
        else:
            j += 1
    return out


def gaps(intervals: Sequence[Interval], start: float, end: float) -> list[Interval]:
    """The parts of [start, end] that no interval covers (intervals merged)."""
    out, t = [], start
    for a, b in intervals:
        if a > t:
            out.append((t, min(a, end)))
        t = max(t, b)
    if t < end:
        out.append((t, end))
    return [(a, b) for a, b in out if b > a]


def interruptions(by: Sequence[Interval], of: Sequence[Interval]) -> int:
    """How often `by` starts while `of` is talking and `of` goes on for INTERRUPT_MIN_OVERLAP_S or more."""
    return sum(1 for a, _ in by if any(s < a and e - a >= INTERRUPT_MIN_OVERLAP_S for s, e in of))


def spoken_chars(text: str) -> int:
    return len(_COUNTED.findall(text))


def speech_by_role(transcripts: Iterable[Transcript]) -> dict[Role, list[Transcript]]:
    out: dict[Role, list[Transcript]] = {"agent": [], "caller": []}
    for t in transcripts:
        if t.speech:
            out[t.role].append(t)
    return out


def metrics_of(agent: Sequence[Interval], caller: Sequence[Interval], agent_chars: int) -> CallMetrics:
    """Metrics from each side's speech intervals (raw, overlapping allowed) and the agent's character count."""
    a, c = merge(agent), merge(caller)
    both = merge([*a, *c])
    span = max((e for _, e in both), default=0.0)
    quiet = gaps(both, 0.0, span)
    at, ct, over = total(a), total(c), total(intersect(a, c))
    return CallMetrics(
        talk_s=span, agent_talk_s=at, caller_talk_s=ct,
        agent_talk_share=at / (at + ct) if at + ct else 0.0,
        silence_s=total(quiet), silence_share=total(quiet) / span if span else 0.0,
        longest_silence_s=max((e - s for s, e in quiet), default=0.0),
        overtalk_s=over, overtalk_share=over / span if span else 0.0,
        agent_interruptions=interruptions(agent, caller), caller_interruptions=interruptions(caller, agent),
        agent_chars_per_min=agent_chars / (at / 60.0) if at else 0.0)


def call_metrics(transcripts: Iterable[Transcript], duration: float) -> CallMetrics:
    """The metrics of a scored call from its transcripts (own words only)."""
    sides = speech_by_role(transcripts)
    return metrics_of([(t.start, min(t.end, duration)) for t in sides["agent"]],
                      [(t.start, min(t.end, duration)) for t in sides["caller"]],
                      sum(spoken_chars(t.text) for t in sides["agent"]))


@dataclass(frozen=True)
class AgentMetrics:
    """Metrics of an agent's calls: talk-time-weighted where a share, summed where a count."""

    calls: int
    agent_talk_share: float
    silence_share: float
    longest_silence_s: float
    overtalk_share: float
    agent_interruptions: int
    agent_chars_per_min: float

    def to_dict(self) -> dict:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


def aggregate(calls: Sequence[CallMetrics]) -> AgentMetrics:
    span = sum(m.talk_s for m in calls)
    at = sum(m.agent_talk_s for m in calls)
    ct = sum(m.caller_talk_s for m in calls)
    return AgentMetrics(
        calls=len(calls),
        agent_talk_share=at / (at + ct) if at + ct else 0.0,
        silence_share=sum(m.silence_s for m in calls) / span if span else 0.0,
        longest_silence_s=max((m.longest_silence_s for m in calls), default=0.0),
        overtalk_share=sum(m.overtalk_s for m in calls) / span if span else 0.0,
        agent_interruptions=sum(m.agent_interruptions for m in calls),
        agent_chars_per_min=sum(m.agent_chars_per_min * m.agent_talk_s for m in calls) / at if at else 0.0)
