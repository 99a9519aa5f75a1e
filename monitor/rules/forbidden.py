"""forbidden: the agent said a phrase the norms forbid (服务忌语)."""
from __future__ import annotations

from monitor.events import Transcript, Violation
from monitor.labels import confidence_fraction
from monitor.matcher import sound_alike
from monitor.rules.base import Rule, phrase_span, violation
from monitor.text import normalize

# Mixed-mono calls: a forbidden phrase in a line given to the agent with a role posterior below this
# is not judged (monitor.roles). Measured on the lines holding a forbidden phrase, roles decided again
# on cached recognition mixed to mono (the dev calls, two held-out-style sets and a third generated
# only for this check, seed 2026: 4 x 30-40 calls), true side by the labels:
#   posterior 0.5-0.6: 5 agent, 9 caller; 0.6-0.7: 10 / 3 (dev-000's "我不知道，你问我我问谁");
#   0.7-0.8: 7 / 1; 0.8-0.9: 13 / 0; 0.9+: 33 / 1.
# An outside tester's crafted calls (caller lines with rude words where the turns point to the agent:
# the caller says two lines in a row, speaks first, or over the agent): 0.65-0.8: 2 / 3; 0.8-0.9:
# 3 / 1; 0.9+: 1 / 5. The bar was 0.9 for a line whose own words do not place it (0.8 with a cue).
# Forbidden found (scripts/bench_mono.py reports, roles decided again): dev 7 -> 8 of 12, held-out
# 7 -> 12 and 13 -> 14 of 26, the blind set 9 -> 13 of 26; no caller's line more raised on those sets.
# Scored end to end with the rest of that session's changes: dev 7 -> 7 (dev-029 found; dev-007 lost,
# its side moved by the voice model, which on dev's one synthetic voice weighs in by chance),
# held-out 7 -> 12 and 13 -> 14, blind 9 -> 13.
# 0.7 would find 14 / 18 / 15 there, but raise 2 more callers' lines (the tester's and the blind set's).
MIN_ROLE_CONFIDENCE = 0.8
# Live, a line's side rests on the lines heard so far (monitor.live.session): the bar before the call's
# end is the one measured for lines whose words do not place them (the bar above was 0.9 for those).
# dev-000 mixed to mono, live: the caller's 我不知道 line is the agent's at 0.71 from the lines so far
# (0.60 with all the hindsight).
MIN_ROLE_CONFIDENCE_LIVE = 0.9
# A forbidden phrase in a line given to the agent below that bar is not a violation, but the QA
# lead gets it to review at the call's end: `forbidden_unsure` (minor, no points), with the chance the
# line is the agent's; so does one in a line given to the caller that is the agent's at this or more
# (the agent's rude lines lost to the caller were at 0.13-0.47 on the sets above).
REVIEW_MIN_AGENT_P = 0.3
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
        self.min_role_confidence = facts.min_role_confidence or MIN_ROLE_CONFIDENCE

    def on_transcript(self, tr: Transcript) -> list[Violation]:
        if not tr.speech:
            return []
        agent_p = None if tr.role_confidence is None else \
            tr.role_confidence if tr.role == "agent" else round(1.0 - tr.role_confidence, 3)
        if tr.role != "agent" and (agent_p is None or agent_p < REVIEW_MIN_AGENT_P):
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
        sure = agent_p is None or agent_p >= self.min_role_confidence
        # The phrase in the best reading, but polite in a near reading that hears other words (not
        # only other commas or homophones, which the matcher's constructions read differently):
        # the words are unsure.
        polite_near = {} if how else {name: alt for alt in tr.alternatives if not sound_alike(alt, tr.text)
                                      for name in matcher.excused(alt)}
        for m in found:
            entry = self.by_phrase[m.name]
            key = (entry.phrase, round(tr.start, 3))
            if key in self.reported:
                continue
            start, end = phrase_span(tr, m.start, m.end, text)
            # a distance of 0 with other characters is a homophone (照我 for 找我), not the phrase itself
            exact = f"sounds like it (pinyin distance {m.cost:g})" if m.cost else \
                "exact" if normalize(m.matched) == normalize(entry.phrase) else "sounds the same"
            said = f"{'agent ' if tr.role == 'agent' else ''}said “{m.matched}”: {exact}{how}"
            if not sure or m.name in polite_near:
                if not sure:
                    assert agent_p is not None  # only a mono line can be unsure of its side
                    doubt = f"whose line is unsure (the agent's at {confidence_fraction(agent_p)})"
                else:
                    doubt = f"the recogniser's near reading “{polite_near[m.name]}” is polite"
                    if agent_p is not None:
                        doubt += f"; the agent's line at {confidence_fraction(agent_p)}"
                self.unsure[key] = violation(
                    UNSURE_RULE, self.profile.forbidden_defaults, start, end, tr.text, f"{said}; {doubt}",
                    phrase=entry.phrase, severity="minor", deduction=0.0, seed=entry.seed,
                    role_confidence=agent_p)
                continue
            self.reported.add(key)
            self.unsure.pop(key, None)
            out.append(violation(self.name, self.profile.forbidden_defaults, start, end, tr.text, said,
                                 phrase=entry.phrase, severity=entry.severity, deduction=entry.deduction,
                                 seed=entry.seed, role_confidence=tr.role_confidence))
        return out

    def end(self, t_end: float) -> list[Violation]:
        return [v for key, v in sorted(self.unsure.items(), key=lambda kv: kv[0][1]) if key not in self.reported]
