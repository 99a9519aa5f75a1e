"""hold: before making the caller wait the agent asks (请您稍等); after, thanks them.

A silence on both channels longer than the profile's limit is a hold. Without
an ask in the agent's words just before it, it is a violation ("hold"); without
thanks when the agent comes back, a minor one ("hold_return").

A silence is no hold when it ends in the caller's hang-up within the limit, or when it comes
after the agent's goodbye and the call ends in it: the agent is waiting for the caller to hang
up first, as the norms ask (a caller staying on for a satisfaction survey, or slow to put the
phone down). If the talk resumes after it, it was a hold, goodbye or not: that is known, and
raised, only when the words come.
A busy tone becomes known only once its cadence is confirmed (monitor.tones, up to
`confirmed_within_s` after it starts), so a silence is judged that much after the limit.

The return is everything the agent says in the first [hold] return_window_s
seconds after coming back, read as one text: the recogniser often splits
"对不起，让您久等了" in two and mishears it ("对不起 | 将您就等了"), so the
thanks phrases ([hold] thanks) are matched leniently over the whole return.
"""
from __future__ import annotations

import numpy as np

from monitor.events import ToneEvent, Transcript, Violation
from monitor.rules.base import Rule, violation
from monitor.rules.closing import says_goodbye
from monitor.tones import confirmed_within_s

# Audio the recogniser could not read but that the VAD heard for this long is
# still someone talking (a hold is silence on both sides, not unclear words);
# shorter unreadable bursts are noise.
UNREAD_SPEECH_MIN_S = 1.0
# ... unless the recogniser is this sure there is no speech in it: music on hold that an AGC
# and packet loss hide from the music detector, line noise. Over the dev and four field-style
# sets (190 calls), none of the 10 unreadable bursts of 1 s or more at 0.8 or above overlapped
# anyone's labelled words; of the 25 below it, 9 did. Field4 hold recall 0.83 -> 0.92, the
# other sets unchanged (same at 0.7; at 0.9 nothing changes).
SURE_NO_SPEECH = 0.8
# An unreadable burst on the agent's channel this far below the agent's own voice (its readable
# lines' level, `Transcript.level_db`, the 75th percentile so far) is a neighbour at the next desk,
# not the agent: it does not end a hold's silence. Measured over the dev and four field-style sets
# (190 calls): the agent's own unread words were never more than 2.6 dB below the agent's voice;
# the neighbours' bursts that hid field33's syn-032 hold were 5.4-6.5 dB below. Only the agent's
# channel: a caller's level varies with emotion and distance (own caller words 4.9 dB below).
QUIET_UNREAD_DB = 5.0
AGENT_LEVEL_PERCENTILE = 75.0
# A silence this long past the limit may still end in a busy tone not yet confirmed.
TONE_CONFIRM_S = confirmed_within_s()


def is_activity(tr: Transcript) -> bool:
    if tr.speech:
        return True
    return tr.dropped_because in ("no speech", "unlikely text", "repetition") and \
        tr.end - tr.start >= UNREAD_SPEECH_MIN_S and tr.no_speech_prob < SURE_NO_SPEECH


def _agent_channel_level(tr: Transcript) -> float | None:
    """The level of a line heard on the agent's own channel (not a mixed-mono line), if measured."""
    return tr.level_db if tr.role == "agent" and tr.role_confidence is None else None


class HoldRule(Rule):
    name = "hold"

    def __init__(self, facts) -> None:
        super().__init__(facts)
        self.last_end: float | None = None  # end of the latest speech on either channel
        self.agent: list[Transcript] = []
        self.judged_gap: float | None = None  # start of the gap already judged
        self.awaiting_thanks: float | None = None  # start of a hold the agent has not come back from
        self.returning: list[Transcript] = []  # the agent's words since coming back from it
        self.caller_gone_at: float | None = None
        self.said_goodbye = False  # the agent's latest words hold a goodbye: the call is being closed
        self.agent_levels: list[float] = []  # of the agent's readable lines on its own channel

    def on_tone(self, tone: ToneEvent) -> list[Violation]:
        if tone.role == "caller":
            self.caller_gone_at = tone.start
        return []

    def tick(self, now: float) -> list[Violation]:
        return self._judge_return(now) + self._judge_gap(now)

    def _judge_return(self, now: float | None) -> list[Violation]:
        """Once the return window is over (or the call is), did the agent thank the caller?"""
        p = self.profile
        if self.awaiting_thanks is None or not self.returning:
            return []
        back = self.returning[0].start
        if now is not None and now <= back + p.hold_return_window_s:
            return []
        gap, said = self.awaiting_thanks, self.returning
        self.awaiting_thanks, self.returning = None, []
        if p.hold_thanks.first("".join(t.text for t in said)):
            return []
        return [violation("hold_return", p.hold, gap, said[-1].end, " ".join(t.text for t in said),
                          "after the wait the agent did not thank the caller (让您久等了)",
                          severity="minor", deduction=p.hold.deduction / 2)]

    def _judge_gap(self, now: float, final: bool = False, call_over: bool = False) -> list[Violation]:
        """The silence since the last words, at `now`; `final`: it is over (words or the call's end ended
        it), so no tone can still turn up in it; `call_over`: the call's end did."""
        p = self.profile
        if self.last_end is None or self.judged_gap == self.last_end:
            return []
        gap_start = self.last_end
        if self.caller_gone_at is not None and self.caller_gone_at <= now:
            if self.said_goodbye or self.caller_gone_at - gap_start <= p.hold_max_silence_s:
                return []  # the silence ended in the caller's hang-up before it was a hold
            now = self.caller_gone_at
        elif self.said_goodbye and (not final or call_over):
            return []  # after the agent's goodbye: a hold only if the talk resumes after it
        elif now - gap_start <= p.hold_max_silence_s + (0.0 if final else TONE_CONFIRM_S):
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

    def _neighbour(self, tr: Transcript) -> bool:
        """An unreadable burst on the agent's own channel well below the agent's voice."""
        level = _agent_channel_level(tr)
        if tr.speech or level is None or not self.agent_levels:
            return False
        return float(np.percentile(self.agent_levels, AGENT_LEVEL_PERCENTILE)) - level >= QUIET_UNREAD_DB

    def on_transcript(self, tr: Transcript) -> list[Violation]:
        if not is_activity(tr) or self._neighbour(tr):
            return []
        if tr.speech and (level := _agent_channel_level(tr)) is not None:
            self.agent_levels.append(level)
        # the silence is over: words ended it, not a tone
        out = self._judge_return(tr.start) + self._judge_gap(tr.start, final=True)
        if tr.role == "agent" and tr.speech:
            self.said_goodbye = says_goodbye(self.profile, tr)
            self.agent.append(tr)
            del self.agent[:-10]
            if self.awaiting_thanks is not None and self.profile.hold_thanks:
                self.returning.append(tr)
                if self.profile.hold_thanks.first("".join(t.text for t in self.returning)):
                    self.awaiting_thanks, self.returning = None, []  # thanked: nothing to wait for
        self.last_end = tr.end if self.last_end is None else max(self.last_end, tr.end)
        return out

    def end(self, t_end: float) -> list[Violation]:
        return self._judge_gap(t_end, final=True, call_over=True) + self._judge_return(None)
