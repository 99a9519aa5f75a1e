"""Phrase matching that tolerates ASR homophone errors.

Text is compared in toneless pinyin, syllable by syllable, so "中心通讯"
still matches "中兴通讯" and "照领导" matches "找领导". An approximate
substring alignment allows near-homophones (zh/z, in/ing, n/l ...) cheaply and
a full substitution or a dropped/extra syllable only in long phrases.
Negation syllables must match exactly: "我知道了" is not "我不知道".
Exclusions are polite look-alikes ("不知道您现在方便吗"): a match inside an
exclusion's span is dropped.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from functools import lru_cache

from pypinyin import Style, pinyin

from monitor.text import normalize

NEGATIONS = frozenset({"bu", "mei", "bie", "wu", "fei"})
_FUZZY_INITIALS = [{"z", "zh"}, {"c", "ch"}, {"s", "sh"}, {"n", "l"}, {"f", "h"}, {"r", "l"}, {"j", "q"}]
_FUZZY_FINALS = [{"in", "ing"}, {"en", "eng"}, {"an", "ang"}, {"ian", "iang"}, {"uan", "uang"},
                 {"i", "in"}, {"e", "en"}, {"ong", "eng"}, {"o", "ou"}, {"uo", "o"}, {"ao", "ou"}]
CONCESSIVE_REACH = 3  # characters between the phrase and its question word: 您, 他们, 这个
NEAR = 0.3
FAR = 1.0
INDEL = 1.0
_SEPARATOR = re.compile(r"[\s，。！？、；：,.!?;:…]+")
SENTENCE_END = re.compile(r"[。！？!?]|\.(?!\d)")
# A phrase this short (syllables) is said within one sentence: a match across a sentence's end
# joins the end of one to the start of the next. Longer phrases may hold two clauses
# ("说明书上有你自己看"), which the recogniser may punctuate as two sentences.
ONE_CLAUSE = 4


@lru_cache(maxsize=8192)
def _readings(ch: str) -> frozenset[str]:
    if not ("\u4e00" <= ch <= "\u9fff"):
        return frozenset({ch.lower()})
    readings = pinyin(ch, style=Style.NORMAL, heteronym=True, errors="ignore")
    return frozenset(readings[0] if readings and readings[0] else [ch])  # 兡: pypinyin knows no reading


@lru_cache(maxsize=8192)
def _split(syl: str) -> tuple[str, str]:
    for ini in ("zh", "ch", "sh", "b", "p", "m", "f", "d", "t", "n", "l", "g", "k", "h", "j", "q", "x",
                "r", "z", "c", "s", "y", "w"):
        if syl.startswith(ini) and len(syl) > len(ini):
            return ini, syl[len(ini):]
    return "", syl


def _near(a: str, b: str) -> bool:
    (ia, fa), (ib, fb) = _split(a), _split(b)
    # After y/j/q/x the final "u" is ü, which recognisers confuse with "i" (以/与, 机/居).
    if ia == ib and ia in ("y", "j", "q", "x") and {fa, fb} == {"i", "u"}:
        return True
    same_i = ia == ib or any(ia in g and ib in g for g in _FUZZY_INITIALS)
    same_f = fa == fb or any(fa in g and fb in g for g in _FUZZY_FINALS)
    return same_i and same_f and (ia == ib or fa == fb)


@lru_cache(maxsize=65536)
def _sub_cost(a: frozenset[str], b: frozenset[str]) -> float:
    if a & b:
        return 0.0
    if any(_near(x, y) for x in a for y in b):
        return NEAR
    return FAR


def syllables(text: str) -> list[frozenset[str]]:
    return [_readings(ch) for ch in normalize(text)]


def sound_alike(a: str, b: str) -> bool:
    """Do two readings say the same syllables, punctuation aside, each the same or a near-homophone
    (又/有, 补/不, 你/您)? Then they are one hearing written two ways, not two hearings."""
    sa, sb = syllables(a), syllables(b)
    return len(sa) == len(sb) and all(_sub_cost(x, y) <= NEAR for x, y in zip(sa, sb, strict=True))


def tolerance(n: int) -> float:
    """Total cost a phrase of n syllables may differ by and still match."""
    if n <= 3:
        return NEAR + 0.05  # one near-homophone
    if n <= 5:
        return 2 * NEAR + 0.05
    if n <= 7:
        return FAR + 0.05  # one wrong or missing syllable
    if n <= 9:
        return FAR + 2 * NEAR + 0.05
    return 2 * FAR + 0.05  # two wrong syllables in ten or more are still that phrase


@dataclass(frozen=True)
class Pattern:
    """A phrase to look for; `name` is what a match reports (the norm's wording)."""

    text: str
    name: str
    exclude: tuple[str, ...] = ()
    _syl: tuple = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        syl = tuple(syllables(self.text))
        if not syl:
            raise ValueError(f"pattern {self.text!r} has no characters to match")
        object.__setattr__(self, "_syl", syl)


@dataclass(frozen=True)
class Match:
    name: str
    pattern: str
    start: int  # index into the normalised text
    end: int
    cost: float
    matched: str


def _align(pat: tuple, txt: list, max_cost: float) -> list[tuple[int, int, float]]:
    """Approximate substring matches of pat in txt: (start, end, cost), best first per end."""
    m, n = len(pat), len(txt)
    inf = float("inf")
    neg = [bool(NEGATIONS & p) for p in pat]
    # prev[j]: cost of aligning pat[:i] ending at txt[:j]; start[j]: where it began.
    prev = [0.0] * (n + 1)
    pstart = list(range(n + 1))
    for i in range(1, m + 1):
        cur = [inf] * (n + 1)
        cstart = [0] * (n + 1)
        del_cost = inf if neg[i - 1] else INDEL
        cur[0] = prev[0] + del_cost
        cstart[0] = 0
        for j in range(1, n + 1):
            sub = _sub_cost(pat[i - 1], txt[j - 1])
            if neg[i - 1] and sub > 0:
                sub = inf
            best, bs = prev[j - 1] + sub, pstart[j - 1]
            if prev[j] + del_cost < best:  # phrase syllable missing from text
                best, bs = prev[j] + del_cost, pstart[j]
            if cur[j - 1] + INDEL < best:  # extra syllable in text
                best, bs = cur[j - 1] + INDEL, cstart[j - 1]
            cur[j], cstart[j] = best, bs
        prev, pstart = cur, cstart
    found = []
    for j in range(1, n + 1):
        if prev[j] <= max_cost:
            found.append((pstart[j], j, prev[j]))
    # Keep the cheapest match among overlapping candidates.
    found.sort(key=lambda x: (x[2], x[1] - x[0]))
    chosen: list[tuple[int, int, float]] = []
    for s, e, c in found:
        if all(e <= cs or s >= ce for cs, ce, _ in chosen):
            chosen.append((s, e, c))
    return sorted(chosen)


def _normalize_with_breaks(text: str) -> tuple[str, list[int], list[int]]:
    """Normalised text, the positions in it where punctuation or a space stood, and those of
    them where a sentence ended."""
    norm_parts: list[str] = []
    breaks: list[int] = []
    ends: list[int] = []
    at = 0
    for sep in itertools.chain(_SEPARATOR.finditer(text), [None]):
        n = normalize(text[at:sep.start() if sep else len(text)])
        if n:
            if norm_parts:
                breaks.append(sum(map(len, norm_parts)))
            norm_parts.append(n)
        if sep is not None:
            if norm_parts and SENTENCE_END.search(text, sep.start(), sep.end() + 1):
                ends.append(sum(map(len, norm_parts)))
            at = sep.end()
    return "".join(norm_parts), breaks, ends


def _sounds_in(words: tuple[str, ...], text: str) -> bool:
    """Is one of these one-character words in the text, or a character read the same
    (the recogniser writes 都 as 读 or 度)?"""
    said = [_readings(ch) for ch in text]
    return any(_readings(w) & r for w in words if len(w) == 1 for r in said) or \
        any(w in text for w in words if len(w) != 1)


@dataclass(frozen=True)
class Polite:
    """Constructions that hold a forbidden phrase without being one, checked within its clause.

    caller_subject: right before the phrase ("您不知道也没关系", "如果您没空的话"): it is
        said of the caller, not the agent refusing.
    question: right before the phrase ("有没办法…", "您明天有没空"): the phrase is what a
        yes/no question asks about.
    negated: right before the phrase ("不是没法查，只是要等两天", "也不是不可能"): the agent
        denies the refusal.
    concessive_words / concessive_then: a question word just after the phrase (a short
        subject may come between) and then 都/也 later in the clause ("我不管多晚都帮您处理",
        "我不管您什么时候打来也会接": no matter how late / when, I will).
    concessive_opening: earlier in the clause, with no concessive_then yet between it and
        the phrase ("不管您知不知道型号，我们都能…"): the phrase is the condition that does
        not matter, not what the agent asserts ("不管你怎么说我都没办法" still is).
    concessive_after: just after the phrase ("您没法查到也没关系"): even if, it is fine.
    a_not_a: negation characters of a yes/no question "X不X" / "X没X". A phrase that starts
        with one right after X ("知不知道", "归不归我管") is half of the question, and a
        phrase after such a question in its clause ("你有没有觉得哪里没办法操作？") is what
        the question asks about.
    which_part / which_part_after: a question word right before the phrase, asking which part
        the caller finds it in, after a verb of finding in the clause ("您觉得哪里没办法操作？",
        also when the recogniser garbles the 有没有 before it: "因为没有觉得哪里没办法操作") or
        right after a `caller_subject` ("您哪里不知道怎么操作，我教您"). Not a
        phrase that starts a clause of its own (`new_clause`: "你去哪里我不管"), nor without the
        verb ("问题出在哪里不知道" is the agent not knowing where).
    asks_about / new_clause: a phrase ending in one of `asks_about` (有没有搞错) scolds when
        it ends its clause ("你有没有搞错？", "你有没有搞错啊") or the words after it start a new
        one (`new_clause`: a pronoun or a particle, "你有没有搞错我交了钱的" with the comma
        unheard); followed by what it asks about it is a question ("你有没有搞错网线的接口？").
    """

    caller_subject: tuple[str, ...] = ()
    question: tuple[str, ...] = ()
    negated: tuple[str, ...] = ()
    concessive_words: tuple[str, ...] = ()
    concessive_then: tuple[str, ...] = ()
    concessive_opening: tuple[str, ...] = ()
    concessive_after: tuple[str, ...] = ()
    a_not_a: tuple[str, ...] = ()
    asks_about: tuple[str, ...] = ()
    new_clause: tuple[str, ...] = ()
    which_part: tuple[str, ...] = ()
    which_part_after: tuple[str, ...] = ()

    def excuses(self, clause: str, start: int, end: int, pattern: str = "") -> str | None:
        """The construction that excuses clause[start:end] (a match of `pattern`), if any."""
        before, after = clause[:start], clause[end:]
        if any(pattern.endswith(w) for w in self.asks_about) and len(after) >= 2 \
                and not any(after.startswith(w) for w in self.new_clause):
            return "a question about something"
        if any(before.endswith(w) for w in self.caller_subject):
            return "said of the caller"
        if any(before.endswith(w) for w in self.question):
            return "a question about it"
        if any(before.endswith(w) for w in self.negated):
            return "denied"
        if self._which_part(before, clause[start:end]):
            return "a question about it"
        for w in self.concessive_words:
            at = after.find(w)
            if 0 <= at <= CONCESSIVE_REACH and _sounds_in(self.concessive_then, after[at + len(w):]):
                return "concessive (no matter …)"
        for w in self.concessive_opening:
            at = before.rfind(w)
            if at >= 0 and not any(t in before[at + len(w):] for t in self.concessive_then):
                return "concessive (no matter …)"
        if any(0 <= after.find(w) <= CONCESSIVE_REACH for w in self.concessive_after):
            return "concessive (even if …, it is fine)"
        if self._a_not_a(clause, start):
            return "a question about it"
        return None

    def _which_part(self, before: str, phrase: str) -> bool:
        """The phrase is what "which part (do you find it)" asks about: 您觉得哪里没办法操作？"""
        word = next((w for w in self.which_part if before.endswith(w)), None)
        if word is None or any(phrase.startswith(w) for w in self.new_clause):
            return False
        asked = before[:-len(word)]
        return any(v in asked for v in self.which_part_after) or any(asked.endswith(w) for w in self.caller_subject)

    def _a_not_a(self, clause: str, start: int) -> bool:
        """The phrase is half of an X不X question, or comes after one in its clause."""
        if not self.a_not_a:
            return False
        neg = "".join(re.escape(n) for n in self.a_not_a)
        if clause[start:start + 1] in self.a_not_a:
            for k in (1, 2):  # 知不知道, 知道不知道
                x = clause[start + 1:start + 1 + k]
                if len(x) == k and clause[:start].endswith(x):
                    return True
        return re.search(rf"(.)[{neg}]\1", clause[:start]) is not None


class PhraseMatcher:
    """Finds any of a list of patterns in text; compiled once.

    `lenient` matchers look for phrases whose presence is good news (greeting,
    goodbye, asking to hold): a missed one makes a false alert, so phrases of
    four to seven syllables may also have one syllable quite wrong.
    """

    def __init__(self, patterns: list[Pattern], lenient: bool = False, polite: Polite | None = None,
                 slack: float = 0.0) -> None:
        self.patterns = list(patterns)
        self.lenient = lenient
        self.slack = slack  # more cost allowed than `tolerance` gives: near misses to verify otherwise
        self.polite = polite
        self._excl = {p.text: [Pattern(x, "exclude") for x in p.exclude] for p in self.patterns}

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def find(self, text: str) -> list[Match]:
        return self._scan(text)[0]

    def excused(self, text: str) -> set[str]:
        """Names of the patterns the text holds only inside a polite look-alike (an exclusion or
        a `Polite` construction): "这种情况也不是不可能" excuses 不可能."""
        found, excused = self._scan(text)
        return excused - {m.name for m in found}

    def _scan(self, text: str) -> tuple[list[Match], set[str]]:
        """(the matches, best first per region; the names of patterns found but excused)."""
        excused: set[str] = set()
        norm, breaks, sentence_ends = _normalize_with_breaks(text)
        txt = [_readings(ch) for ch in norm]
        out: list[Match] = []
        for p in self.patterns:
            n = len(p._syl)
            limit = tolerance(n)
            if self.lenient and n >= 4:
                limit = max(limit, FAR + 0.05)
            limit += self.slack
            hits = _align(p._syl, txt, limit)
            if not hits:
                continue
            # A polite look-alike is one clause: "不知道您方便吗" excuses 不知道, but
            # "我真不知道，你问别人吧" does not ("不知道你" across the comma).
            spans = [(s, e) for x in self._excl[p.text] for s, e, _ in _align(x._syl, txt, tolerance(len(x._syl)))
                     if not any(s < b < e for b in breaks)]
            for s, e, c in hits:
                if n <= ONE_CLAUSE and any(s < b < e for b in sentence_ends):
                    continue  # "…这种小事也找我。不管怎样，我们都会…" holds no 我不管
                if any(xs <= s and e <= xe for xs, xe in spans):
                    excused.add(p.name)
                    continue
                if self.polite is not None:
                    lo = max((b for b in breaks if b <= s), default=0)
                    hi = min((b for b in breaks if b >= e), default=len(norm))
                    if self.polite.excuses(norm[lo:hi], s - lo, e - lo, normalize(p.text)):
                        excused.add(p.name)
                        continue
                out.append(Match(p.name, p.text, s, e, round(c, 2), norm[s:e]))
        # One report per phrase region: the best-scoring pattern wins.
        out.sort(key=lambda m: (m.cost, -(m.end - m.start)))
        kept: list[Match] = []
        for mt in out:
            if all(mt.end <= k.start or mt.start >= k.end for k in kept):
                kept.append(mt)
        return sorted(kept, key=lambda m: m.start), excused

    def first(self, text: str) -> Match | None:
        found = self.find(text)
        return found[0] if found else None
