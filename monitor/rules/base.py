"""What every rule shares: the hooks the engine calls and a violation builder."""
from __future__ import annotations

from dataclasses import dataclass

from monitor.events import CallEvent, Role, ToneEvent, Transcript, Violation
from monitor.phrasebook import Profile, RuleSettings
from monitor.text import normalize


@dataclass(frozen=True)
class CallFacts:
    """What a rule may know about the call besides the event stream."""

    profile: Profile
    direction: str  # "inbound" | "outbound"
    roles: tuple[Role, ...]  # channels present; a mono file has only the agent
    # mixed-mono: the role posterior a line needs to raise a forbidden phrase (None: the rule's own bar)
    min_role_confidence: float | None = None


class Rule:
    """Base: every hook returns the violations it decided just now."""

    name = "rule"
    order_free = False  # judges each transcript on its own (may see words early, live)

    def __init__(self, facts: CallFacts) -> None:
        self.facts = facts
        self.profile = facts.profile

    def on_transcript(self, tr: Transcript) -> list[Violation]:
        return []

    def on_tone(self, tone: ToneEvent) -> list[Violation]:
        return []

    def on_call_event(self, ev: CallEvent) -> list[Violation]:
        return []

    def tick(self, now: float) -> list[Violation]:
        return []

    def end(self, t_end: float) -> list[Violation]:
        return []

    def judgeable(self) -> bool:
        return True


def violation(rule: str, settings: RuleSettings, start: float, end: float, text: str, evidence: str,
              channel: Role = "agent", phrase: str | None = None, severity: str | None = None,
              deduction: float | None = None, seed: str | None = None,
              role_confidence: float | None = None) -> Violation:
    return Violation(rule=rule, start=start, end=end, channel=channel, text=text, evidence=evidence,
                     severity=severity or settings.severity,
                     deduction=settings.deduction if deduction is None else deduction,
                     phrase=phrase, seed=seed or settings.seed, role_confidence=role_confidence)


# Utterances longer than this (noise or a neighbour's words can be glued to them; live pieces
# grow) place a phrase by its position in the text, widened by a margin, so a piece heard early
# and the whole utterance put the phrase at about the same time.
LOCATE_ABOVE_S = 3.0
LOCATE_MARGIN_S = 1.0


def phrase_span(tr: Transcript, start: int, end: int, text: str | None = None) -> tuple[float, float]:
    """When a phrase at [start, end) of the normalised `text` (a reading of `tr`, by default its
    text) was said (seconds)."""
    if tr.end - tr.start <= LOCATE_ABOVE_S:
        return tr.start, tr.end
    n = max(1, len(normalize(tr.text if text is None else text)))
    dur = tr.end - tr.start
    return (max(tr.start, tr.start + dur * start / n - LOCATE_MARGIN_S),
            min(tr.end, tr.start + dur * end / n + LOCATE_MARGIN_S))
