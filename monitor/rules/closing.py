"""closing: the agent says goodbye (再见) at the end of the call."""
from __future__ import annotations

from monitor.events import Transcript, Violation
from monitor.rules.base import Rule, violation

LAST_AGENT_TURNS = 2  # the goodbye must be in one of the agent's last turns


class ClosingRule(Rule):
    name = "closing"

    def __init__(self, facts) -> None:
        super().__init__(facts)
        self.agent: list[Transcript] = []

    def on_transcript(self, tr: Transcript) -> list[Violation]:
        if tr.role == "agent" and tr.speech:
            self.agent.append(tr)
            del self.agent[:-8]
        return []

    def end(self, t_end: float) -> list[Violation]:
        p = self.profile
        if not self.agent:
            return [violation(self.name, p.closing, t_end, t_end, "", "the agent never spoke")]
        last = self.agent[-1]
        tail = [t for t in self.agent[-LAST_AGENT_TURNS:] if t.end >= last.end - p.closing_window_s]
        out = []
        if not any(p.closing_phrases.first(t.text) for t in tail):
            out.append(violation(self.name, p.closing, last.start, last.end, last.text,
                                 "no goodbye in the agent's last words"))
        if p.closing_offer and not any(p.closing_offer.first(t.text) for t in tail):
            out.append(violation("closing_offer", p.closing, last.start, last.end, last.text,
                                 "the agent did not ask whether anything else is needed",
                                 severity="minor", deduction=p.closing.deduction / 2))
        return out
