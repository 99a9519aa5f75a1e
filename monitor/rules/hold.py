"""hold: before making the caller wait the agent asks (请您稍等); after, thanks them.

A silence on both channels longer than the profile's limit is a hold. Without
an ask in the agent's words just before it, it is a violation ("hold"); without
thanks when the agent comes back, a minor one ("hold_return").
"""
from __future__ import annotations

from monitor.events import ToneEvent, Transcript, Violation
from monitor.rules.base import Rule, violation

# Audio the recogniser could not read but that the VAD heard for this long is
# still someone talking (a hold is silence on both sides, not unclear words);
# shorter unreadable bursts are noise.
UNREAD_SPEECH_MIN_S = 1.0


def is_activity(tr: Transcript) -> bool:
    if tr.speech:
        return True
    return tr.dropped_because in ("no speech", "unlikely text", "repetition") and \
        tr.end - tr.start >= UNREAD_SPEECH_MIN_S


class HoldRule(Rule):
    name = "hold"

    def __init__(self, facts) -> None:
        super().__init__(facts)
        self.last_end: float | None = None  # end of the latest speech on either channel
        self.agent: list[Transcript] = []
        self.judged_gap: float | None = None  # start of the gap already judged
        self.awaiting_thanks: float | None = None
        self.caller_gone_at: float | None = None

    def on_tone(self, tone: ToneEvent) -> list[Violation]:
        if tone.role == "caller":
            self.caller_gone_at = tone.start
        return []

    def tick(self, now: float) -> list[Violation]:
        p = self.profile
        if self.last_end is None or self.judged_gap == self.last_end:
            return []
        if self.caller_gone_at is not None and self.caller_gone_at <= now:
            return []  # silence after the caller hung up is not a hold
        gap_start = self.last_end
        if now - gap_start <= p.hold_max_silence_s:
            return []
        self.judged_gap = gap_start
        asked = [t for t in self.agent if gap_start - p.hold_ask_lookback_s <= t.end <= gap_start + 0.5
                 and p.hold_ask.first(t.text)]
        if asked:
            self.awaiting_thanks = gap_start
            return []
        last_words = self.agent[-1].text if self.agent else ""
        return [violation(self.name, p.hold, gap_start, now, last_words,
                          f"{now - gap_start:.1f} s of silence on both sides without asking the caller to wait")]

    def on_transcript(self, tr: Transcript) -> list[Violation]:
        if not is_activity(tr):
            return []
        out = self.tick(tr.start)
        if tr.role == "agent" and tr.speech:
            self.agent.append(tr)
            del self.agent[:-10]
            if self.awaiting_thanks is not None:
                gap = self.awaiting_thanks
                self.awaiting_thanks = None
                if self.profile.hold_thanks and not self.profile.hold_thanks.first(tr.text):
                    out.append(violation("hold_return", self.profile.hold, gap, tr.end, tr.text,
                                         "after the wait the agent did not thank the caller (让您久等了)",
                                         severity="minor", deduction=self.profile.hold.deduction / 2))
        self.last_end = tr.end if self.last_end is None else max(self.last_end, tr.end)
        return out
