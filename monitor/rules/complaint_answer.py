"""complaint_answer: the agent answers the caller's complaint with the prescribed apology.

When the caller complains (an [escalation_complaint] phrase, as the escalation rule
hears it), the agent's words from then until [complaint_answer] within_s seconds after
the complaint ends are read as one text and matched leniently against the profile's
prescribed answers ([complaint_answer] phrases: 很抱歉此事给您带来了困扰, 对不起 …).
Without one: a minor finding costing half the [scoring] complaint_answer value.
A profile whose norms prescribe no answer (no phrases) is not judged on it.
"""
from __future__ import annotations

from monitor.events import Transcript, Violation
from monitor.rules.base import CallFacts, Rule, violation
from monitor.rules.escalation import caller_words, threats


class ComplaintAnswerRule(Rule):
    name = "complaint_answer"

    def __init__(self, facts: CallFacts) -> None:
        super().__init__(facts)
        self.e = self.profile.escalations
        self.complaint: Transcript | None = None  # the caller's complaint awaiting an answer
        self.answer: list[Transcript] = []  # the agent's words since

    def on_transcript(self, tr: Transcript) -> list[Violation]:
        if not self.e.answer_phrases:
            return []
        out = self.tick(tr.start)
        if self.complaint is None:
            if caller_words(tr) and threats(self.e.complaint_phrases, tr.text):
                self.complaint, self.answer = tr, []
        elif tr.role == "agent" and tr.speech:
            self.answer.append(tr)
            if self.e.answer_phrases.first("".join(t.text for t in self.answer)):
                self.complaint, self.answer = None, []  # answered
        return out

    def tick(self, now: float) -> list[Violation]:
        if self.complaint is None or now <= self.complaint.end + self.e.answer_within_s:
            return []
        return self._unanswered(now)

    def end(self, t_end: float) -> list[Violation]:
        return self._unanswered(t_end) if self.complaint is not None else []

    def _unanswered(self, now: float) -> list[Violation]:
        assert self.complaint is not None
        c, said = self.complaint, self.answer
        self.complaint, self.answer = None, []
        s = self.e.answer
        until = said[-1].end if said else min(now, c.end + self.e.answer_within_s)
        return [violation(self.name, s, c.start, max(until, c.end),
                          " ".join(t.text for t in said),
                          f"the caller complained (“{c.text}”) and the agent did not answer with the prescribed "
                          f"apology within {self.e.answer_within_s:g} s", severity="minor", deduction=s.deduction / 2)]
