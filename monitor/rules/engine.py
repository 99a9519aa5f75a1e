"""The rule engine: one object per call, fed events in time order.

Pure: no threads, no I/O. Time comes only from the events and from `tick(now)`,
which the caller drives (batch: the start of each transcript; live: the point
up to which all audio has been transcribed), so deadlines fire the same way
in both.
"""
from __future__ import annotations

from dataclasses import dataclass

from monitor.events import CallEvent, Role, ToneEvent, Transcript, Violation
from monitor.phrasebook import Profile
from monitor.rules.base import CallFacts, Rule
from monitor.rules.closing import ClosingRule
from monitor.rules.forbidden import ForbiddenRule
from monitor.rules.greeting import GreetingRule
from monitor.rules.hangup import HangupRule
from monitor.rules.hold import HoldRule

ALL_RULES = ("greeting", "forbidden", "closing", "hangup", "hold")
_RULE_CLASSES = {"greeting": GreetingRule, "forbidden": ForbiddenRule, "closing": ClosingRule,
                 "hangup": HangupRule, "hold": HoldRule}


@dataclass(frozen=True)
class RuleOptions:
    direction: str = "inbound"  # "inbound" | "outbound"
    rules: tuple[str, ...] = ALL_RULES

    def __post_init__(self) -> None:
        if self.direction not in ("inbound", "outbound"):
            raise ValueError("direction must be inbound or outbound")
        unknown = set(self.rules) - set(ALL_RULES)
        if unknown:
            raise ValueError(f"unknown rule(s): {', '.join(sorted(unknown))}")


class RuleEngine:
    def __init__(self, profile: Profile, options: RuleOptions = RuleOptions(),
                 roles: tuple[Role, ...] = ("agent", "caller")) -> None:
        facts = CallFacts(profile=profile, direction=options.direction, roles=roles)
        self.rules: list[Rule] = [_RULE_CLASSES[name](facts) for name in options.rules]
        # Caller-side rules cannot be judged without the caller's channel.
        if "caller" not in roles:
            self.rules = [r for r in self.rules if r.name not in ("hangup", "hold")]
        self.not_judged = sorted(set(options.rules) - {r.name for r in self.rules})
        self.violations: list[Violation] = []
        self.ended = False

    def _collect(self, found: list[Violation]) -> list[Violation]:
        self.violations.extend(found)
        return found

    def on_transcript(self, tr: Transcript) -> list[Violation]:
        return self._collect([v for r in self.rules for v in r.on_transcript(tr)])

    def on_tone(self, tone: ToneEvent) -> list[Violation]:
        return self._collect([v for r in self.rules for v in r.on_tone(tone)])

    def on_call_event(self, ev: CallEvent) -> list[Violation]:
        return self._collect([v for r in self.rules for v in r.on_call_event(ev)])

    def tick(self, now: float) -> list[Violation]:
        return self._collect([v for r in self.rules for v in r.tick(now)])

    def end(self, t_end: float) -> list[Violation]:
        if self.ended:
            return []
        self.ended = True
        return self._collect([v for r in self.rules for v in r.end(t_end)])
