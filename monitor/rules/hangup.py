"""hangup: the caller hangs up first (电话结束，应等对方挂机后，自己再挂机).

Evidence, best first: a call-control event saying who hung up; the busy /
disconnect tone on the caller channel; the recording ending while the caller
is still talking; otherwise no disconnect tone at all before the end.
"""
from __future__ import annotations

from monitor.attribution import is_leak
from monitor.events import CallEvent, ToneEvent, Transcript, Violation
from monitor.rules.base import Rule, violation

STILL_TALKING_S = 1.0  # caller speech ending this close to the end was cut off


class HangupRule(Rule):
    name = "hangup"

    def __init__(self, facts) -> None:
        super().__init__(facts)
        self.decided = False
        self.evidence = ""
        self.caller_last_end: float | None = None
        self.caller_last_text = ""

    def judgeable(self) -> bool:
        return "caller" in self.facts.roles

    def _decide(self, t: float, by: str, evidence: str) -> list[Violation]:
        if self.decided:
            return []
        self.decided = True
        self.evidence = evidence
        if by == "caller":
            return []
        return [violation(self.name, self.profile.hangup, t, t, self.caller_last_text, evidence)]

    def on_call_event(self, ev: CallEvent) -> list[Violation]:
        if ev.type != "hangup" or ev.by not in ("agent", "caller"):
            return []
        told = f" from {ev.source}" if ev.source else ""
        return self._decide(ev.t, ev.by, f"call-control event{told}: {ev.by} hung up at {ev.t:.1f} s")

    def on_tone(self, tone: ToneEvent) -> list[Violation]:
        if tone.role != "caller":
            return []
        return self._decide(tone.start, "caller",
                            f"{tone.kind} disconnect tone on the caller channel from {tone.start:.1f} s")

    def on_transcript(self, tr: Transcript) -> list[Violation]:
        # Any caller sound counts here, even unrecognisable words.
        if tr.role == "caller" and tr.dropped_because not in ("empty", "known hallucination") and not is_leak(tr):
            if self.caller_last_end is None or tr.end >= self.caller_last_end:
                self.caller_last_end = tr.end
                self.caller_last_text = tr.text if tr.speech else ""
        return []

    def end(self, t_end: float) -> list[Violation]:
        if self.decided or not self.judgeable():
            return []
        if self.caller_last_end is not None and t_end - self.caller_last_end <= STILL_TALKING_S:
            return self._decide(t_end, "agent", "the recording ended while the caller was still talking")
        return self._decide(t_end, "agent", "no disconnect tone from the caller before the agent ended the call")
