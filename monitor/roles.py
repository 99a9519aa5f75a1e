"""Who is speaking in a mixed-mono call: the agent or the caller.

I/O-free. Input: the transcripts of the one mixed channel, in time order (all heard
as "agent"). Output: each one relabelled with the role it most likely has and a
confidence (the posterior of that role), from a two-state hidden Markov model:

- turns: the next utterance is the other side's with a probability that depends on the
  pause and the words before it (`_switch`). Measured on pairs of consecutive utterances
  against the labels, pooled over the 30 dev calls and a held-out-style set of 40
  (scripts/make_synth_corpus.py; other sentences and voices, and the same side often says
  two sentences in a row), both mixed to mono (VAD stop silence 0.4 s, utterances over
  5.5 s cut at 0.3 s voice gaps by monitor.turns, the recogniser's text); dev / held-out:
  a goodbye after a goodbye 1.0 / 1.0 (18 pairs, set to 0.95); a silence of 1 s or more
  0.71 / 0.62 (a hold, a pause to think, the same side after it: 0.67); after a question
  (？, 吗) 0.79-1.0 / 0.87-0.89 (119 pairs: 0.88); a pause of 0.25 s or more 0.90 / 0.83
  (289: 0.86); a shorter one (the VAD's gaps cluster at 0.22 s) 0.62 / 0.58 after a
  finished sentence (211: 0.59), 0.27 / 0.79 when the words before did not end one (no
  。？！, or an ending that leads on such as 就是, 的话: 103 pairs, 0.47). The earlier split
  at 0.4 s without the question, silence and unfinished endings put 0.876 of the dev
  speech time on the right side, 0.772 held out. Where the pause is measured on the mix
  (monitor.pauses: the VAD's padding shrinks every gap to about 0.22 s), a short VAD gap is
  read by it instead: the sides changed across a measured pause under 0.4 s (a comma's
  pause), of 0.4-0.6 s and of 0.6 s or more 0.30 / 0.52 / 0.79 of the time on dev and
  0.18 / 0.70 / 0.75 on a held-out-style set of 40 calls (set: 0.25 / 0.62 / 0.77); a second
  held-out-style set, looked at only after, gave 0.15 / 0.68 / 0.76. A bare 再见 after the
  agent's sign-off (感谢您的来电) or its 没有的话 keeps the speaker across any pause under a
  second (0.25): a breath, not a turn; the caller answers a sign-off with 好的 or 嗯 first.
  With 0.5 s of quiet put before the agent's last 再见 in the 20 dev calls that have a pause
  there, the goodbye went to the caller (a false `closing`) in 3 of them before, none after
  (0.3 s: 1 -> 0). A wider rule (any words that lead on, 就是 / 的话, and any goodbye after the
  sign-off) was tried and dropped: a caller trailing off on 就是 took the agent's answer, and
  the caller's "好的，再见" after an agent who left out the goodbye became the agent's;
- who starts: after pick-up of an inbound call the agent speaks first (the greeting);
  log-odds 2.0, not more: an agent who does not greet lets the caller speak first;
- the words, as evidence for one side (log-odds, see `word_evidence`): the profile's
  greeting and company name, its recommended service phrases, hold asks and thanks, and the
  closing offer (还有其他需要/还有别的问题 …, 没有的话) are the agent's; addressing the
  other side as 您 with a service verb (帮您, 为您) and speaking for the company (公司规定,
  我方) are the agent's; stating a problem or a question about one's own device, thanking,
  拜拜, threats to complain, reproaching the other side's manner (什么态度, 这样说话) and
  reading out a number that was not asked for are the caller's. Forbidden phrases are never
  evidence: a caller saying "我不知道" must not make the line the agent's;
- the voices (monitor.voices, `decide_roles`): where the call's two voices differ, a voice
  model trained on the lines the words and turns are sure of weighs in on every line.

Measured with cached recognition (dev / held-out, mixed to mono), share of the heard speech
time on the right side: 0.876 / 0.772 before, 0.918 / 0.796 with the turns and words above,
0.911 / 0.861 with the voices. With the measured pauses (dev / held-out / a second held-out set
scored blind): attribution 0.911 / 0.840 / 0.904 -> 0.917 / 0.883 / 0.896, greeting+forbidden+
closing micro-F1 0.79 / 0.65 / 0.67 -> 0.84 / 0.66 / 0.71 (forbidden found 5 -> 7 of 12, 7 -> 6
of 26, 11 -> 13 of 26; none from a caller's line). The remaining errors are mostly runs of lines with no cue
between two sure ones, where one extra or missing turn shifts the sides (a rude agent line
between two caller lines reads like a caller's); with the right side for every line the same
recognition would give micro-F1 0.97 / 0.94 (the recogniser's misses remain).
A speaker encoder (resemblyzer) needs torch (≈ 700 MB), which the project does not install;
a character-bigram classifier of the sides trained on one set's recognised lines made the
other set worse (held out 0.774 -> 0.704-0.759), so the word cues stay a short, general list.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from monitor.events import Role, Transcript
from monitor.matcher import Pattern, PhraseMatcher
from monitor.pauses import PauseOptions
from monitor.phrasebook import Profile
from monitor.text import normalize
from monitor.voices import VoiceOptions, voice_evidence


@dataclass(frozen=True)
class MonoRoleOptions:
    """How a mixed-mono call is split between agent and caller (see the module's measurements)."""

    switch_p: float = 0.59  # chance the next utterance is the other side's (pause under `long_pause_s`)
    switch_after_pause_p: float = 0.86  # ... after a pause of `long_pause_s` or more
    long_pause_s: float = 0.25
    switch_after_question_p: float = 0.88  # ... after a question (？, 吗), any pause under `silence_s`
    switch_after_silence_p: float = 0.67  # ... after a silence of `silence_s` or more (a hold, a pause to think)
    silence_s: float = 1.0
    # ... after a short pause when the words before it did not end a sentence (no 。？！, or an
    # unfinished ending such as 就是, 的话): a comma's pause
    switch_mid_sentence_p: float = 0.47
    switch_after_goodbye_p: float = 0.95  # a goodbye after a goodbye is the other side's
    # ... to a bare 再见 after the agent's sign-off or its 没有的话 (感谢您的来电 | 再见), at any pause
    # under `silence_s`: a breath, not a turn (the caller's goodbye comes with its 好的 / 嗯)
    switch_to_own_goodbye_p: float = 0.25
    opening_slack_s: float = 5.0  # a 您好 counts as the greeting until the profile's deadline plus this
    agent_first: float = 2.0  # log-odds that the first words of an inbound call are the agent's
    greeting: float = 3.0  # log-odds for the profile's greeting or company name
    service: float = 2.0  # recommended service phrase, hold ask or thanks, closing offer
    agent_words: float = 1.5  # each agent cue (帮您, 为您, 请问您 …), at most two counted
    polite_you: float = 1.0  # 您 anywhere: the agent addresses the caller so; callers mostly say 你
    caller_words: float = 1.5  # each caller cue (我想问, 谢谢, 拜拜 …), at most two counted
    stop_silence_s: float = 0.4  # VAD pause that closes an utterance in a mono call (turns are 0.3 s+ apart)
    # A short VAD gap (under `long_pause_s`, no question before it) by the pause measured on the mix
    # (monitor.pauses): under `comma_pause_s` the same side most often goes on, from `turn_pause_s` on
    # the other side most often answers. Used where the pauses are measured (`decide_roles(pause_of=…)`).
    comma_pause_s: float = 0.4
    turn_pause_s: float = 0.6
    switch_after_comma_p: float = 0.25
    switch_after_breath_p: float = 0.62  # a pause between the two
    switch_after_turn_pause_p: float = 0.77
    pauses: PauseOptions = PauseOptions()
    voices: VoiceOptions = VoiceOptions()  # the call's two voices as more evidence (monitor.voices)

    def __post_init__(self) -> None:
        for name in ("switch_p", "switch_after_pause_p", "switch_after_question_p", "switch_after_silence_p",
                     "switch_mid_sentence_p", "switch_after_goodbye_p", "switch_to_own_goodbye_p",
                     "switch_after_comma_p",
                     "switch_after_breath_p", "switch_after_turn_pause_p"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be between 0 and 1")


# The agent serves: addresses the caller as 您 while offering or asking.
AGENT_CUES = ("帮您", "为您", "请问您", "您的", "给您", "向您", "您放心", "您看", "您稍等", "我们马上",
              "请问有什么", "您反馈", "您说", "感谢您", "我们的", "还有其他需要",
              "没有的话", "如果没有",
              # the closing offer in its common forms (a profile may name its own: [closing] offer_help)
              "还有别的问题", "还有什么问题", "还有什么需要", "还有其它需要", "还有别的需要",
              # speaking for the company
              "公司规定", "我方")
# The caller states a problem, asks about their own device, thanks and takes leave.
CALLER_CUES = ("我想", "我要", "我还有", "想问一下", "我们这边", "我这边", "我的设备", "我家", "什么时候能", "多少钱", "怎么回事",
               "谢谢", "拜拜", "你们的", "你们这", "还有一个问题", "出了点问题", "一直断", "修好",
               # reproaching the other side's manner: a customer's complaint about the service
               "什么态度", "这样说话", "对待客户", "服务态度")
# A number read out (a model, phone or order number), not asked for: the caller gives it.
NUMBER_READ_OUT = re.compile(r"[0-9零一二三四五六七八九幺]{4,}")
# The speaker does not know how or where (我不知道怎么开机, 我不知道在哪里看), or their own device's
# model, serial number or password (我不知道型号是多少): a problem with their own device, the
# caller's. Not knowing when or how much (我不知道什么时候能修好, 多少钱) is no cue: that is
# what a caller asks and an agent may refuse. The agent's polite question is about the caller's not
# knowing (您有没有不知道怎么操作的).
NOT_KNOWING_HOW = re.compile(r"我[也还真都]?不知道[^，,。？?！!、 ]{0,6}?(怎么|怎样|如何|在哪|哪里|哪儿)"
                             r"|我[也还真都]?不知道(我的|我家的)?(型号|序列号|编号|机身号|密码|账号)")


GOODBYES = ("再见", "拜拜", "拜")
# The agent's sign-off, said right before its goodbye (感谢您的来电，再见): a bare 再见 after it
# across a breath is still the agent's; the caller answers a sign-off with 好的 or 嗯 first.
# Matched as they sound (the recogniser writes 感谢您的来订).
SIGN_OFF = PhraseMatcher([Pattern(p, p) for p in ("感谢您的来电", "感谢来电", "谢谢您的来电", "感谢您的致电",
                                                  "祝您生活愉快", "祝您愉快")])
SENTENCE_END = ("。", "？", "！", "?", "!", ".")
# Words a sentence does not end on, whatever punctuation the recogniser gave them: the speaker goes on
# (我认为最重要的就是。| 给我带来了健康; 没有的话。| 再见).
UNFINISHED = ("就是", "的话", "因为", "所以", "但是", "可是", "然后", "而且", "如果", "比如", "还有", "就")


# The pause measured on the mix between two consecutive lines (monitor.pauses), None if unknown.
PauseOf = Callable[[Transcript, Transcript], "float | None"]


@dataclass(frozen=True)
class RoleDecision:
    role: Role
    confidence: float  # posterior probability of `role`, 0.5..1 (forbidden needs MIN_ROLE_CONFIDENCE)


def _count(text: str, cues: tuple[str, ...]) -> int:
    return sum(1 for c in cues if c in text)


def word_evidence(text: str, profile: Profile, options: MonoRoleOptions = MonoRoleOptions(),
                  opening: bool = True) -> float:
    """Log-odds that these words are the agent's (positive) rather than the caller's.

    `opening`: the words come within the greeting's time after pick-up; later a 您好 is no
    greeting (the recogniser writes the caller's "嗯，好的，拜拜" as "您好的拜拜")."""
    t = re.sub(r"\s+", "", text)
    if not t:
        return 0.0
    s = 0.0
    if profile.greeting_company.find(t) or (opening and profile.greeting_inbound.find(t) and "您好" in t):
        s += options.greeting
    if (profile.recommended.find(t) or profile.hold_ask.find(t) or profile.hold_thanks.find(t)
            or profile.closing_offer.find(t)):
        s += options.service
    s += options.agent_words * min(2, _count(t, AGENT_CUES))
    if "您" in t.replace("您好", ""):
        s += options.polite_you
    s -= options.caller_words * min(2, _count(t, CALLER_CUES))
    if profile.escalations.complaint_phrases.find(t):
        s -= options.caller_words
    if NUMBER_READ_OUT.search(t) and not asked(t):
        s -= options.caller_words
    if NOT_KNOWING_HOW.search(t):
        s -= options.caller_words
    return s


def _goodbye(text: str) -> bool:
    return any(w in text for w in GOODBYES)


def signs_off(text: str) -> bool:
    """The words end on the agent's sign-off (SIGN_OFF), give or take its last syllable, or on the
    condition of its closing offer (没有的话)."""
    words = normalize(text)
    return words.endswith("的话") or any(m.end >= len(words) - 1 for m in SIGN_OFF.find(words))


def bare_goodbye(text: str) -> bool:
    """The words are 再见 and nothing else (no 好的, 嗯 or 拜拜 with it)."""
    return normalize(text) in ("再见", "再见了")


def ended_sentence(text: str) -> bool:
    """The words end a sentence: sentence-final punctuation, and not on a word that leads on."""
    t = text.rstrip()
    if not t.endswith(SENTENCE_END):
        return False
    return not t.rstrip("".join(SENTENCE_END) + "，,、 ").endswith(UNFINISHED)


def asked(text: str) -> bool:
    """The words end on a question: the other side is expected to answer."""
    return text.rstrip().rstrip("。.").endswith(("？", "?", "吗"))


def _switch(prev: Transcript, nxt: Transcript, options: MonoRoleOptions, pause: float | None = None) -> float:
    """Chance that `nxt` is the other side's, from the pause and whether `prev` ended its sentence;
    `pause`: the pause between them measured on the mix (monitor.pauses), if known."""
    if _goodbye(prev.text) and _goodbye(nxt.text):  # a goodbye answers a goodbye
        return options.switch_after_goodbye_p
    gap = nxt.start - prev.end
    if gap >= options.silence_s:
        return options.switch_after_silence_p
    if bare_goodbye(nxt.text) and signs_off(prev.text):
        return options.switch_to_own_goodbye_p
    if asked(prev.text):
        return options.switch_after_question_p
    if gap >= options.long_pause_s:
        return options.switch_after_pause_p
    if pause is not None:
        if pause < options.comma_pause_s:
            return options.switch_after_comma_p
        return options.switch_after_breath_p if pause < options.turn_pause_s else options.switch_after_turn_pause_p
    if not ended_sentence(prev.text):
        return options.switch_mid_sentence_p
    return options.switch_p


def _decision(pa: float) -> RoleDecision:
    return RoleDecision("agent", pa) if pa >= 0.5 else RoleDecision("caller", 1.0 - pa)


def line_evidence(tr: Transcript, profile: Profile, options: MonoRoleOptions = MonoRoleOptions()) -> float:
    """`word_evidence` of a transcript, at its time in the call (0 for what is not speech)."""
    if not tr.speech:
        return 0.0
    return word_evidence(tr.text, profile, options,
                         opening=tr.start <= profile.greeting_deadline_s + options.opening_slack_s)


def _emission(words: float, first: bool, direction: str, options: MonoRoleOptions,
              extra: float = 0.0) -> tuple[float, float]:
    """Likelihoods (agent, caller) of a speech transcript from its words' log-odds and `extra`;
    `first`: the call's first words."""
    e = words + extra
    if first and direction == "inbound":
        e += options.agent_first
    e = max(-30.0, min(30.0, e))
    return 1.0 / (1.0 + math.exp(-e)), 1.0 / (1.0 + math.exp(e))


def _predict(state: tuple[float, float], p: float) -> tuple[float, float]:
    """The roles of the next utterance from this one's, when it is the other side's with chance p."""
    return state[0] * (1 - p) + state[1] * p, state[1] * (1 - p) + state[0] * p


def _update(prior: tuple[float, float], em: tuple[float, float]) -> tuple[float, float]:
    a, c = prior[0] * em[0], prior[1] * em[1]
    return a / (a + c), c / (a + c)


def assign_roles(transcripts: list[Transcript], profile: Profile, direction: str = "inbound",
                 options: MonoRoleOptions = MonoRoleOptions(), extra: list[float] | None = None,
                 evidence: list[float] | None = None, pause_of: PauseOf | None = None) -> list[RoleDecision]:
    """Forward-backward over the speech transcripts (time order); non-speech ones get the role of
    the nearest speech before them with confidence 0.5. `extra`: more log-odds per transcript
    (the voices); `evidence`: each one's `line_evidence` when it is known already (it costs the
    phrase matching); `pause_of`: the pauses between lines measured on the mix."""
    speech = [i for i, t in enumerate(transcripts) if t.speech]
    out = [RoleDecision("agent", 0.5) for _ in transcripts]
    if not speech:
        return out
    words = evidence if evidence is not None else [line_evidence(t, profile, options) for t in transcripts]
    em = [_emission(words[i], k == 0, direction, options, extra[i] if extra else 0.0)
          for k, i in enumerate(speech)]
    sw = [_switch(transcripts[a], transcripts[b], options,
                  pause_of(transcripts[a], transcripts[b]) if pause_of else None)
          for a, b in zip(speech, speech[1:], strict=False)]
    n = len(speech)
    fwd = [_update((0.5, 0.5), em[0])]
    for k in range(1, n):
        fwd.append(_update(_predict(fwd[k - 1], sw[k - 1]), em[k]))
    bwd = [(1.0, 1.0)] * n
    for k in range(n - 2, -1, -1):
        p = sw[k]
        na, nc = em[k + 1][0] * bwd[k + 1][0], em[k + 1][1] * bwd[k + 1][1]
        a, c = (1 - p) * na + p * nc, p * na + (1 - p) * nc
        bwd[k] = (a / (a + c), c / (a + c))
    for k, i in enumerate(speech):
        out[i] = _decision(_update(fwd[k], bwd[k])[0])
    last: RoleDecision | None = None
    for i, t in enumerate(transcripts):
        if t.speech:
            last = out[i]
        elif last is not None:
            out[i] = RoleDecision(last.role, 0.5)
    return out


def decide_roles(transcripts: list[Transcript], profile: Profile, direction: str = "inbound",
                 options: MonoRoleOptions = MonoRoleOptions(),
                 features: list[np.ndarray | None] | None = None,
                 evidence: list[float] | None = None, pause_of: PauseOf | None = None) -> list[RoleDecision]:
    """The words and turns (`assign_roles`), then the call's two voices as more evidence
    (monitor.voices, from each transcript's `features`) where they tell the sides apart."""
    if evidence is None:
        evidence = [line_evidence(t, profile, options) for t in transcripts]
    first = assign_roles(transcripts, profile, direction, options, evidence=evidence, pause_of=pause_of)
    if features is None:
        return first
    agent_p: list[float | None] = [(d.confidence if d.role == "agent" else 1.0 - d.confidence) if t.speech else None
                                   for t, d in zip(transcripts, first, strict=True)]
    extra = voice_evidence(features, agent_p, options.voices)
    if not any(extra):
        return first
    return assign_roles(transcripts, profile, direction, options, extra, evidence, pause_of)


def relabel(transcripts: list[Transcript], decisions: list[RoleDecision]) -> list[Transcript]:
    """The transcripts with their decided role and its confidence."""
    return [replace(t, role=d.role, role_confidence=round(d.confidence, 3))
            for t, d in zip(transcripts, decisions, strict=True)]


def speech_time_accuracy(transcripts: list[Transcript], labelled: list[tuple[Role, float, float]]) -> tuple[float, float]:
    """(labelled speech seconds covered by a transcript of the right role, labelled speech seconds covered at all).

    Their ratio is the attribution accuracy: the share of the speech time (as labelled: who
    spoke when) that was given to the right side, among the time the mono pipeline heard."""
    right = covered = 0.0
    for role, a, b in labelled:
        for t in transcripts:
            if not t.speech:
                continue
            ov = min(b, t.end) - max(a, t.start)
            if ov > 0:
                covered += ov
                if t.role == role:
                    right += ov
    return right, covered
