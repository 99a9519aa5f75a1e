"""escalation_complaint / escalation_supervisor: the caller threatens to complain or asks
for a supervisor.

Caller-side warnings for the supervisor, not findings against the agent: severity
"escalation", no deduction. The phrases are data (phrasebook/common.toml
[escalation_complaint] and [escalation_supervisor]), matched strictly in the caller's
words through recogniser homophones; a denied one (我不是要投诉 / 不用找你们领导, the
[escalation] negated words right before it) is not a threat. Each phrase warns once
per call, so a caller saying 投诉 five times is one alert, but 工信部 after 投诉 is another.
"""
from __future__ import annotations

from monitor.events import Transcript, Violation
from monitor.matcher import Match, PhraseMatcher
from monitor.phrasebook import RuleSettings
from monitor.rules.base import CallFacts, Rule, violation
from monitor.text import normalize

_DIGITS = frozenset("0123456789")


def caller_words(tr: Transcript) -> bool:
    return tr.role == "caller" and tr.speech


def threats(matcher: PhraseMatcher, text: str) -> list[Match]:
    """The matcher's phrases in the caller's words, but not a hotline number inside a longer
    number (13812315678 is a phone number read out, not 12315)."""
    norm = normalize(text)

    def digit(i: int) -> bool:
        return 0 <= i < len(norm) and norm[i] in _DIGITS

    return [m for m in matcher.find(text) if not (m.matched[:1] in _DIGITS and digit(m.start - 1))
            and not (m.matched[-1:] in _DIGITS and digit(m.end))]


class EscalationRule(Rule):
    name = "escalation"
    order_free = True  # one utterance decides: live, it warns as soon as the words are recognised

    def __init__(self, facts: CallFacts) -> None:
        super().__init__(facts)
        e = self.profile.escalations
        self.kinds: tuple[tuple[str, RuleSettings, PhraseMatcher, str], ...] = (
            ("escalation_complaint", e.complaint, e.complaint_phrases, "the caller threatens to complain or escalate"),
            ("escalation_supervisor", e.supervisor, e.supervisor_phrases, "the caller asks for a supervisor"),
        )
        self.warned: set[tuple[str, str]] = set()  # (rule, phrase): once per call

    def on_transcript(self, tr: Transcript) -> list[Violation]:
        if not caller_words(tr):
            return []
        out = []
        for rule, settings, matcher, what in self.kinds:
            for m in threats(matcher, tr.text):
                if (rule, m.name) in self.warned:
                    continue
                self.warned.add((rule, m.name))
                heard = "" if m.cost == 0 else f" (heard “{m.matched}”)"
                out.append(violation(rule, settings, tr.start, tr.end, tr.text, f"{what}: “{m.name}”{heard}",
                                     channel="caller", phrase=m.name))
        return out
