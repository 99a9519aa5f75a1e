"""forbidden: the agent said a phrase the norms forbid (服务忌语)."""
from __future__ import annotations

from monitor.events import Transcript, Violation
from monitor.roles import line_evidence
from monitor.rules.base import Rule, phrase_span, violation
from monitor.text import normalize

# Mixed-mono calls: the agent's lines with a role posterior below this are not judged (monitor.roles).
# Measured (cached recognition mixed to mono, words + turns + voices): lines decided at 0.8-0.95 had
# the right side 0.97 / 0.95 of the time on the dev calls, 0.92 / 0.89 on a held-out-style set;
# at 0.7-0.8 only 0.91 (dev) and 0.71 (held out), so a lower bar would raise callers' words.
MIN_ROLE_CONFIDENCE = 0.8
# ... and a line whose own words do not place it (no greeting, service phrase or 您 with a service verb:
# `monitor.roles.line_evidence` <= 0) needs this: its side rests on the turns alone. Rude lines are such
# lines. Measured on cached recognition mixed to mono (dev / held-out-style set), lines given to the
# agent without cues of their own at 0.8-0.9 had the right side 0.76 (21) / 0.57 (7) of the time, at
# 0.9+ 0.85 (13) / 0.96 (46); lines with cues 0.99+ at any confidence over 0.8. Forbidden alerts
# (scripts/bench_mono.py reports judged again): dev 8 right and 1 caller's line ("我不知道，你问我我问谁
# 啊？" at 0.86) -> 6 right and none; held-out 10 -> 8, none wrong either way (the rest: review, below).
MIN_ROLE_CONFIDENCE_UNCUED = 0.9
# A forbidden phrase in a line given to the agent below those bars is not a violation, but the QA
# lead gets it to review at the call's end: `forbidden_unsure` (minor, no points), with the line's
# confidence. Dev calls mixed to mono: 6 alerts, all the agent's rude lines; 4 lines to review, 3 of
# them the agent's rude lines and 1 the caller's. Held-out-style set: 5 alerts, all right; 16 to
# review, 12 of them the agent's.
UNSURE_RULE = "forbidden_unsure"
# When the recogniser's best reading holds no forbidden phrase, its near readings
# (Transcript.alternatives) are searched too: on a noisy line a rude phrase garbled in the best
# reading ("已有完美完") is often whole in the next one ("你有完没完"). A phrase the best reading
# holds inside a polite construction ("也不是不可能") is not raised from a near reading that
# garbles the construction ("也不适不可能").
READ_ALTERNATIVES = True


class ForbiddenRule(Rule):
    name = "forbidden"
    order_free = True

    def __init__(self, facts) -> None:
        super().__init__(facts)
        self.by_phrase = {e.phrase: e for e in self.profile.forbidden}
        # (phrase, utterance start): live, the same words are seen in partial and
        # final transcripts of one utterance; they are one finding.
        self.reported: set[tuple[str, float]] = set()
        self.unsure: dict[tuple[str, float], Violation] = {}  # (phrase, start): to review at the end

    def _min_confidence(self, tr: Transcript) -> float:
        return MIN_ROLE_CONFIDENCE if line_evidence(tr, self.profile) > 0 else MIN_ROLE_CONFIDENCE_UNCUED

    def on_transcript(self, tr: Transcript) -> list[Violation]:
        if tr.role != "agent" or not tr.speech:
            return []
        out = []
        matcher = self.profile.forbidden_matcher
        text, how = tr.text, ""
        found = matcher.find(text)
        if READ_ALTERNATIVES and not found and tr.alternatives:
            polite = matcher.excused(text)
            for alt in tr.alternatives:
                found = [m for m in matcher.find(alt) if m.name not in polite]
                if found:
                    text, how = alt, f"; the recogniser's near reading “{alt}”"
                    break
        if not found:
            return []
        # A mixed-mono line given to the agent without confidence (monitor.roles) never raises alone.
        sure = tr.role_confidence is None or tr.role_confidence >= self._min_confidence(tr)
        for m in found:
            entry = self.by_phrase[m.name]
            key = (entry.phrase, round(tr.start, 3))
            if key in self.reported:
                continue
            start, end = phrase_span(tr, m.start, m.end, text)
            # a distance of 0 with other characters is a homophone (照我 for 找我), not the phrase itself
            exact = f"sounds like it (pinyin distance {m.cost:g})" if m.cost else \
                "exact" if normalize(m.matched) == normalize(entry.phrase) else "sounds the same"
            said = f"agent said “{m.matched}”: {exact}{how}"
            if not sure:
                self.unsure[key] = violation(
                    UNSURE_RULE, self.profile.forbidden_defaults, start, end, tr.text,
                    f"{said}; whose line is unsure (the agent's at {tr.role_confidence:.2f})",
                    phrase=entry.phrase, severity="minor", deduction=0.0, seed=entry.seed,
                    role_confidence=tr.role_confidence)
                continue
            self.reported.add(key)
            self.unsure.pop(key, None)
            out.append(violation(self.name, self.profile.forbidden_defaults, start, end, tr.text, said,
                                 phrase=entry.phrase, severity=entry.severity, deduction=entry.deduction,
                                 seed=entry.seed, role_confidence=tr.role_confidence))
        return out

    def end(self, t_end: float) -> list[Violation]:
        return [v for key, v in sorted(self.unsure.items(), key=lambda kv: kv[0][1]) if key not in self.reported]
