"""forbidden: the agent said a phrase the norms forbid (服务忌语)."""
from __future__ import annotations

from monitor.events import Transcript, Violation
from monitor.rules.base import Rule, violation
from monitor.text import normalize

# Utterances longer than this (noise can merge sentences; live pieces grow) get a
# time estimate for the phrase from its position in the text, widened by a margin,
# so a piece heard early and the whole utterance put the phrase at about the same time.
LOCATE_ABOVE_S = 3.0
LOCATE_MARGIN_S = 1.0
# Mixed-mono calls: the agent's lines with a role posterior below this are not judged (monitor.roles).
# Measured (cached recognition mixed to mono, words + turns + voices): lines decided at 0.8-0.95 had
# the right side 0.97 / 0.95 of the time on the dev calls, 0.92 / 0.89 on a held-out-style set;
# at 0.7-0.8 only 0.91 (dev) and 0.71 (held out), so a lower bar would raise callers' words.
MIN_ROLE_CONFIDENCE = 0.8


class ForbiddenRule(Rule):
    name = "forbidden"
    order_free = True

    def __init__(self, facts) -> None:
        super().__init__(facts)
        self.by_phrase = {e.phrase: e for e in self.profile.forbidden}
        # (phrase, utterance start): live, the same words are seen in partial and
        # final transcripts of one utterance; they are one finding.
        self.reported: set[tuple[str, float]] = set()

    def on_transcript(self, tr: Transcript) -> list[Violation]:
        if tr.role != "agent" or not tr.speech:
            return []
        # A mixed-mono line given to the agent without confidence (monitor.roles) never raises alone.
        if tr.role_confidence is not None and tr.role_confidence < MIN_ROLE_CONFIDENCE:
            return []
        out = []
        n = max(1, len(normalize(tr.text)))
        for m in self.profile.forbidden_matcher.find(tr.text):
            entry = self.by_phrase[m.name]
            key = (entry.phrase, round(tr.start, 3))
            if key in self.reported:
                continue
            self.reported.add(key)
            start, end = tr.start, tr.end
            if end - start > LOCATE_ABOVE_S:
                dur = end - start
                start, end = (max(tr.start, tr.start + dur * m.start / n - LOCATE_MARGIN_S),
                              min(tr.end, tr.start + dur * m.end / n + LOCATE_MARGIN_S))
            exact = "exact" if m.cost == 0 else f"sounds like it (pinyin distance {m.cost:g})"
            out.append(violation(self.name, self.profile.forbidden_defaults, start, end, tr.text,
                                 f"agent said “{m.matched}”: {exact}", phrase=entry.phrase,
                                 severity=entry.severity, deduction=entry.deduction, seed=entry.seed))
        return out
