"""escalation_repeat: the caller states the same complaint again and again.

"The same" is measured the way good-news phrases are matched (monitor/matcher.py,
lenient): the shorter of two caller clauses, in toneless pinyin, found inside the
longer within the matcher's tolerance for its length (near homophones cost little; up
to seven syllables one syllable may be wrong, missing or extra, two in ten or more).
So "网络一直断", "我都说了，网络一极断" and "网络一直在断啊" are one statement, but
"我想问一下这个设备多少钱" and "我想问一下这个故障什么时候能修好" are not. Particles that
end a clause (啊, 呢, 吗 …) and the [escalation_repeat] `ignore` words, which say nothing
about the complaint (你好, 我想问一下, 听得到吗, 型号是 …), are taken out first. Clauses
split at the recogniser's punctuation; what is left of one shorter than min_syllables
(好的, 谢谢), or mostly a number read out, never counts.

A warning for the supervisor (severity "escalation", no deduction), raised once per
statement when it reaches [escalation_repeat] `times` separate utterances within
`within_s` seconds.
"""
from __future__ import annotations

import re

from monitor.events import Transcript, Violation
from monitor.matcher import Pattern, PhraseMatcher
from monitor.rules.base import CallFacts, Rule, violation
from monitor.rules.escalation import caller_words
from monitor.text import normalize

_CLAUSE_BREAK = re.compile(r"[\s，。！？、；：,.!?;:…]+")
_NUMERALS = frozenset("0123456789零〇一二三四五六七八九十幺两百千万")
_FINAL_PARTICLES = "啊呢吧嘛吗呀啦哦哈嘞"


def statement(clause: str, ignore: tuple[str, ...] = ()) -> str:
    """A clause as compared: normalised, without the words that say nothing and the particles that end it."""
    c = normalize(clause)
    for word in ignore:
        c = c.replace(word, "")
    return c.rstrip(_FINAL_PARTICLES)


def same_statement(a: str, b: str) -> bool:
    """Two clauses say the same thing: the shorter one is in the longer one, through recogniser errors."""
    short, long = sorted((statement(a), statement(b)), key=len)
    return bool(short) and PhraseMatcher([Pattern(short, "said before")], lenient=True).first(long) is not None


class RepeatedComplaintRule(Rule):
    name = "escalation_repeat"

    def __init__(self, facts: CallFacts) -> None:
        super().__init__(facts)
        # The caller's statements, grouped: a clause joins the first group holding one it says
        # the same as ("网络一直在断" joins "网络一直断" and "网络一极断" even though those two
        # recognised forms differ more from each other).
        self.groups: list[list[tuple[Transcript, str]]] = []
        self.warned: set[int] = set()  # groups already reported

    def statements(self, text: str) -> list[str]:
        e = self.profile.escalations
        out = []
        for clause in _CLAUSE_BREAK.split(text):
            c = statement(clause, e.repeat_ignore)
            if len(c) >= e.repeat_min_syllables and 2 * sum(ch in _NUMERALS for ch in c) < len(c):
                out.append(c)
        return out

    def on_transcript(self, tr: Transcript) -> list[Violation]:
        if not caller_words(tr):
            return []
        e = self.profile.escalations
        out: list[Violation] = []
        for c in self.statements(tr.text):
            g = next((i for i, group in enumerate(self.groups)
                      if any(t.start >= tr.start - e.repeat_within_s and same_statement(c, s) for t, s in group)), None)
            if g is None:
                self.groups.append([(tr, c)])
                continue
            self.groups[g].append((tr, c))
            starts = sorted({t.start for t, _ in self.groups[g] if t.start >= tr.start - e.repeat_within_s})
            if len(starts) < e.repeat_times or g in self.warned or out:
                continue
            self.warned.add(g)
            times = ", ".join(f"{s:.1f}" for s in starts)
            out.append(violation(self.name, e.repeat, starts[0], tr.end, tr.text,
                                 f"the caller said the same thing {len(starts)} times (at {times} s): “{c}”",
                                 channel="caller"))
        return out
