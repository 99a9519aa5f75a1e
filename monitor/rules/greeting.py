"""greeting: the agent opens with the profile's greeting within the deadline.

When the profile lists a company name ([greeting] company), a greeting that does
not name it is a minor "greeting_company" finding; a missing or rude greeting is
the "greeting" violation alone.
"""
from __future__ import annotations

import re

from monitor.events import CallEvent, Transcript, Violation
from monitor.rules.base import CallFacts, Rule, phrase_span, violation

# The recogniser's garbled 您好 on a noisy line (十比好, 美英好): one or two syllables and 好 opening
# the agent's first words (after a filler such as 嗯), then a pause. Named right after by the
# company (美英好，这里是警翼数码客服部 | 十比好，也因数码客服部), in the same words or in the next ones,
# it is the greeting the norms prescribe. Words that end in 好 (那好, 最好, 不好意思) are none, and
# nor is a company named inside other words (那好，我不是客服部的 | 算好，你找客服部干嘛).
GARBLED_HELLO = re.compile(r"^(?:[嗯啊呃哦][，,、 ]?)?(?!(?:那|最|还|太|只|正|很|也|就|好|挺|真|算|要|多|刚|不|不太|很不|那么|这么)好)"
                           r"[\u4e00-\u9fff]{1,2}好[，,。！!？?、；;：: ]+")
# What may stand between the hello and the company: 这里是 / 我是, or a few syllables of a company
# name the recogniser garbled (也因数码客服部 for 警翼数码客服部), never a pronoun, negation or request.
BEFORE_COMPANY = re.compile(r"(?:这里是|这是|我是)?[^你我他她您不没别找又去问烦打吗吧呢嘛]{0,4}")


# Where the recogniser scored the hello as the line's first words (`Transcript.may_open_with`,
# monitor.asr.whisper `greeting_probes`) but wrote it otherwise or not at all (宇航，这里是家庭宽带
# 报修 | 家庭宽带维护，请问…): up to three syllables before a pause are that hello.
PROBED_HELLO = re.compile(r"(?:[\u4e00-\u9fff]{1,3}[，,。！!？?、；;：: ]+)?")


def _garbled_hello(text: str) -> int | None:
    """Where the words after a garbled hello start, or None when they open with none."""
    m = GARBLED_HELLO.match(text.strip())
    return m.end() if m else None


class GreetingRule(Rule):
    name = "greeting"

    def __init__(self, facts: CallFacts) -> None:
        super().__init__(facts)
        p = self.profile
        self.deadline = p.greeting_deadline_s
        self.forms = p.greeting_outbound if facts.direction == "outbound" else p.greeting_inbound
        self.first: Transcript | None = None  # first agent speech, if within the deadline
        self.said: list[str] = []  # the agent's words within the deadline
        self.greeted = False
        self.late: float | None = None  # when a greeting past the deadline was said
        self.rude: str | None = None
        self.decided = False

    def on_call_event(self, ev: CallEvent) -> list[Violation]:
        # Picked up after ringing (a recording made from the ring, or the softphone's answer time):
        # the deadline runs from the pick-up.
        if ev.type == "start" and not self.decided and self.first is None:
            self.deadline = ev.t + self.profile.greeting_deadline_s
        return []

    def on_transcript(self, tr: Transcript) -> list[Violation]:
        if self.decided or tr.role != "agent" or not tr.speech:
            return []
        if tr.start > self.deadline:
            return self.tick(tr.start)  # words after the deadline: judged on what came before
        if self.first is None:
            self.first = tr
            rude = self.profile.greeting_rude.first(tr.text)
            greet = self.forms.first(tr.text)
            # A rude word counts only as the opening word, before any greeting.
            if rude and rude.start == 0 and (greet is None or greet.start > rude.start):
                self.rude = rude.matched
                return self._judge()  # a rude first word decides it: no need to wait
        self.said.append(tr.text)
        greeting = self.forms.first(tr.text)
        if greeting is None and self._names_company_after_a_garbled_hello(tr):
            self.greeted = True
            return []
        if greeting:
            # Late in a long utterance (a neighbour's or the caller's words glued before it), the
            # greeting was said when its place in the text says, not when the utterance began.
            when = phrase_span(tr, greeting.start, greeting.end)[0]
            if when <= self.deadline:
                self.greeted = True
            elif self.late is None:
                self.late = when
        return []

    def _names_company_after_a_garbled_hello(self, tr: Transcript) -> bool:
        """The first words open with a garbled hello (GARBLED_HELLO, or one the recogniser scored
        there: PROBED_HELLO) and the company is named right after it, in these words or, when the
        hello was all of them, in the next ones."""
        assert self.first is not None
        at = _garbled_hello(self.first.text)
        if at is None and any(self.forms.first(w) for w in self.first.may_open_with):
            probed = PROBED_HELLO.match(self.first.text.strip())
            at = probed.end() if probed else 0
        if at is None:
            return False
        if tr is self.first:
            rest = tr.text.strip()[at:]
        elif len(self.said) == 2 and not self.first.text.strip()[at:]:
            rest = tr.text.strip()
        else:
            return False
        company = self.profile.greeting_company.first(rest)
        return company is not None and BEFORE_COMPANY.fullmatch(rest[:company.start]) is not None

    def tick(self, now: float) -> list[Violation]:
        if self.decided or now <= self.deadline:
            return []
        return self._judge()

    def _judge(self) -> list[Violation]:
        self.decided = True
        s = self.profile.greeting
        if self.rude:
            assert self.first is not None  # a rude opening is the first words
            return [violation(self.name, s, 0.0, self.first.end, self.first.text,
                              f"rude opening “{self.rude}” instead of a greeting")]
        if self.greeted:
            return self._company()
        if self.late is not None:
            assert self.first is not None  # a late greeting was heard
            return [violation(self.name, s, 0.0, self.first.end, " ".join(self.said),
                              f"the greeting came at {self.late:.1f} s at the earliest, after the {self.deadline:g} s deadline")]
        if self.first is not None:
            return [violation(self.name, s, 0.0, self.first.end, self.first.text,
                              f"first words at {self.first.start:.1f} s carry no greeting")]
        return [violation(self.name, s, 0.0, self.deadline, "", f"the agent said nothing within {self.deadline:g} s")]

    def _company(self) -> list[Violation]:
        company = self.profile.greeting_company
        # The recogniser may split "您好，| 中兴通讯": the greeting is all the words in time.
        if not company or company.first("".join(self.said)):
            return []
        assert self.first is not None  # greeted: the agent spoke
        names = " / ".join(p.text for p in company.patterns)
        s = self.profile.greeting
        return [violation("greeting_company", s, 0.0, self.first.end, " ".join(self.said),
                          f"the greeting does not name the company ({names})",
                          severity="minor", deduction=s.deduction / 2)]

    def end(self, t_end: float) -> list[Violation]:
        return self.tick(max(t_end, self.deadline + 1e-3))
