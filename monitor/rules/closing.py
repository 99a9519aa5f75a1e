"""closing: the agent says goodbye (再见) at the end of the call.

Mixed-mono calls (monitor.roles): the last lines are where the side is least sure, since the
two goodbyes follow each other closely. A line given to the caller with a confidence under
`UNSURE_CALLER` that comes after the start of the agent's last lines counts with them: the
goodbye is looked for in the agent's lines and in the ones that may be the agent's. Measured with
cached recognition of the dev calls and a held-out-style set (scripts/make_synth_corpus.py, 40
calls) mixed to mono, closing F1 dev / held out: 0.71 / 0.87 reading the agent's lines alone,
0.77 / 0.95 with the caller's lines under 0.6, 0.77 / 1.00 under 0.65 and 0.70, 0.77 / 0.89 under
0.75 (then the caller's goodbye hides a missing one). The dev misses left are the recogniser's: the
agent's 再见 is not in the mix's text (noisy 8 kHz), and one caller goodbye is given to the agent.
Stereo transcripts carry no confidence and are judged as before.
"""
from __future__ import annotations

from monitor.events import Transcript, Violation
from monitor.phrasebook import Profile
from monitor.rules.base import Rule, violation


def says_goodbye(profile: Profile, tr: Transcript) -> bool:
    """The line holds one of the profile's goodbyes, in its best reading or as words the recogniser
    scored it may hold (Transcript.may_open_with: "再见，祝您一切顺利" heard as "在这儿祝你一切…")."""
    return bool(profile.closing_phrases.first(tr.text)) or any(profile.closing_phrases.first(w) for w in tr.may_open_with)


LAST_AGENT_TURNS = 2  # the goodbye must be in one of the agent's last turns
UNSURE_CALLER = 0.65  # a mono line given to the caller at less than this may be the agent's


class ClosingRule(Rule):
    name = "closing"

    def __init__(self, facts) -> None:
        super().__init__(facts)
        self.agent: list[Transcript] = []
        self.unsure: list[Transcript] = []  # mono lines given to the caller without confidence

    def on_transcript(self, tr: Transcript) -> list[Violation]:
        if tr.role == "agent" and tr.speech:
            self.agent.append(tr)
            del self.agent[:-8]
        elif tr.speech and tr.role_confidence is not None and tr.role_confidence < UNSURE_CALLER:
            self.unsure.append(tr)
            del self.unsure[:-8]
        return []

    def end(self, t_end: float) -> list[Violation]:
        p = self.profile
        if not self.agent:
            return [violation(self.name, p.closing, t_end, t_end, "", "the agent never spoke")]
        last = self.agent[-1]
        tail = [t for t in self.agent[-LAST_AGENT_TURNS:] if t.end >= last.end - p.closing_window_s]
        tail += [t for t in self.unsure if t.start >= tail[0].start]
        out = []
        if not any(says_goodbye(p, t) for t in tail):
            # the profile's own goodbyes: a profile may ask for 感谢您的来电 rather than 再见
            said = " / ".join(x.text for x in p.closing_phrases.patterns[:3])
            more = " …" if len(p.closing_phrases.patterns) > 3 else ""
            out.append(violation(self.name, p.closing, last.start, last.end, last.text,
                                 f"no goodbye ({said}{more}) in the agent's last words"))
        if p.closing_offer and not any(p.closing_offer.first(t.text) for t in tail):
            out.append(violation("closing_offer", p.closing, last.start, last.end, last.text,
                                 "the agent did not ask whether anything else is needed",
                                 severity="minor", deduction=p.closing.deduction / 2))
        return out
