"""The rule engine: one object per call, fed events in time order.

Pure: no threads, no I/O. Time comes only from the events and from `tick(now)`,
which the caller drives (batch: the start of each transcript; live: the point
up to which all audio has been transcribed), so deadlines fire the same way
in both.
"""
from __future__ import annotations

from dataclasses import dataclass

from monitor.events import SCORED_RULES, CallEvent, Role, ToneEvent, Transcript, Violation
from monitor.phrasebook import Profile
from monitor.rules.base import CallFacts, Rule
from monitor.rules.closing import ClosingRule
from monitor.rules.complaint_answer import ComplaintAnswerRule
from monitor.rules.escalation import EscalationRule
from monitor.rules.forbidden import ForbiddenRule
from monitor.rules.greeting import GreetingRule
from monitor.rules.hangup import HangupRule
from monitor.rules.hold import HoldRule
from monitor.rules.repeats import RepeatedComplaintRule
from monitor.rules.service_metrics import ServiceMetricsRule

# The scored rules, then the caller-side warnings to the supervisor (escalation_complaint,
# escalation_supervisor, escalation_repeat: no deduction) and the agent's answer to a complaint.
ALL_RULES = (*SCORED_RULES, "escalation", "escalation_repeat", "complaint_answer", "service_metrics")
_RULE_CLASSES: dict[str, type[Rule]] = {
    "greeting": GreetingRule, "forbidden": ForbiddenRule, "closing": ClosingRule, "hangup": HangupRule,
    "hold": HoldRule, "escalation": EscalationRule, "escalation_repeat": RepeatedComplaintRule,
    "complaint_answer": ComplaintAnswerRule, "service_metrics": ServiceMetricsRule}


TimelineItem = CallEvent | ToneEvent | Transcript


def timeline_time(item: TimelineItem) -> float:
    """When an item becomes known: events at their time, tones once confirmed, words at their start."""
    if isinstance(item, CallEvent):
        return item.t
    if isinstance(item, ToneEvent):
        return item.end
    return item.start


def timeline_key(item: TimelineItem) -> tuple[float, int, float]:
    """Order of the timeline: by time; at equal times events, then tones, then words. A call's start
    (its pick-up) comes first: what is timed from it must know it before any words, which a VAD's
    pre-roll may place just before it."""
    if isinstance(item, CallEvent) and item.type == "start":
        return float("-inf"), 0, 0.0
    if isinstance(item, Transcript):
        return timeline_time(item), 2, 0.0 if item.role == "agent" else 1.0
    return timeline_time(item), 0 if isinstance(item, CallEvent) else 1, 0.0


# What only the call's end decides: whether the agent's last words held the goodbye, and who hung
# up. A recording or a stream that stops before the call did cannot tell (RuleEngine.end).
END_RULES = ("closing", "hangup")
END_FINDINGS = ("closing", "closing_offer", "hangup")


@dataclass(frozen=True)
class RuleOptions:
    direction: str = "inbound"  # "inbound" | "outbound"
    rules: tuple[str, ...] = ALL_RULES
    # Mixed-mono: the role posterior a line needs to raise a forbidden phrase; None: the bar measured
    # for sides decided over the whole call (monitor.rules.forbidden.MIN_ROLE_CONFIDENCE).
    min_role_confidence: float | None = None

    def __post_init__(self) -> None:
        if self.direction not in ("inbound", "outbound"):
            raise ValueError("direction must be inbound or outbound")
        unknown = set(self.rules) - set(ALL_RULES)
        if unknown:
            raise ValueError(f"unknown rule(s): {', '.join(sorted(unknown))}")


class RuleEngine:
    def __init__(self, profile: Profile, options: RuleOptions = RuleOptions(),
                 roles: tuple[Role, ...] = ("agent", "caller")) -> None:
        facts = CallFacts(profile=profile, direction=options.direction, roles=roles,
                          min_role_confidence=options.min_role_confidence)
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

    def on_partial(self, tr: Transcript) -> list[Violation]:
        """Words heard before their utterance is over (or before earlier ones are done).

        Only rules that judge one transcript on its own may look at it; they must
        not report the same finding again when the final transcript arrives.
        """
        return self._collect([v for r in self.rules if r.order_free for v in r.on_transcript(tr)])

    def feed(self, item: TimelineItem) -> list[Violation]:
        """One item of the call's timeline, after ticking the clock to its time; a call's start
        (pick-up) is known before any time passes (timeline_key puts it first)."""
        if isinstance(item, CallEvent) and item.type == "start":
            return self.on_call_event(item)
        found = self.tick(timeline_time(item))
        if isinstance(item, CallEvent):
            return found + self.on_call_event(item)
        if isinstance(item, ToneEvent):
            return found + self.on_tone(item)
        return found + self.on_transcript(item)

    def end(self, t_end: float, end_heard: bool = True) -> list[Violation]:
        """The call is over. `end_heard` False: its audio stopped before the call did (a recording
        cut short, a lost device): nothing is judged on its end (a greeting deadline not yet
        reached, a goodbye, who hung up), what only the end decides (END_RULES) is listed as not
        judged, and those rules' findings so far are dropped."""
        if self.ended:
            return []
        self.ended = True
        if not end_heard:
            self.not_judged = sorted(set(self.not_judged) | {r.name for r in self.rules if r.name in END_RULES})
            self.rules = [r for r in self.rules if r.name not in END_RULES]
            self.violations = [v for v in self.violations if v.rule not in END_FINDINGS]
            return []
        return self._collect([v for r in self.rules for v in r.end(t_end)])
