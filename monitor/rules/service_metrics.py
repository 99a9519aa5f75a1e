"""speech_rate and interrupting: optional rules on the service metrics ([service_metrics] in a profile).

Judged at the end of the call from each side's own words (monitor.metrics): the agent's
characters per minute of talking, and how often the agent started while the caller went on.
"""
from __future__ import annotations

from monitor.events import Transcript, Violation
from monitor.metrics import INTERRUPT_MIN_OVERLAP_S, metrics_of, spoken_chars
from monitor.rules.base import Rule, violation


class ServiceMetricsRule(Rule):
    name = "service_metrics"

    def __init__(self, facts) -> None:
        super().__init__(facts)
        self.agent: list[Transcript] = []
        self.caller: list[Transcript] = []

    def on_transcript(self, tr: Transcript) -> list[Violation]:
        if tr.speech:
            (self.agent if tr.role == "agent" else self.caller).append(tr)
        return []

    def end(self, t_end: float) -> list[Violation]:
        limits = self.profile.service_metrics
        if limits is None or not self.agent:
            return []
        m = metrics_of([(t.start, t.end) for t in self.agent], [(t.start, t.end) for t in self.caller],
                       sum(spoken_chars(t.text) for t in self.agent))
        out = []
        if (limits.max_chars_per_min is not None and m.agent_talk_s >= limits.min_talk_s
                and m.agent_chars_per_min > limits.max_chars_per_min):
            fastest = max(self.agent, key=lambda t: spoken_chars(t.text) / max(t.end - t.start, 0.5))
            out.append(violation("speech_rate", limits.settings, fastest.start, fastest.end, fastest.text,
                                 f"the agent speaks {m.agent_chars_per_min:.0f} characters a minute "
                                 f"(limit {limits.max_chars_per_min:g})"))
        if limits.max_interruptions is not None and "caller" in self.facts.roles:
            cuts = [a for a in self.agent if any(c.start < a.start and c.end - a.start >= INTERRUPT_MIN_OVERLAP_S
                                                 for c in self.caller)]
            if len(cuts) > limits.max_interruptions:
                over = cuts[limits.max_interruptions]
                out.append(violation("interrupting", limits.settings, over.start, over.end, over.text,
                                     f"the agent interrupted the caller {len(cuts)} times "
                                     f"(limit {limits.max_interruptions})"))
        return out
