"""Who is speaking in a mixed-mono call: the agent or the caller.

I/O-free. Input: the transcripts of the one mixed channel, in time order (all heard
as "agent"). Output: each one relabelled with the role it most likely has and a
confidence (the posterior of that role), from a two-state hidden Markov model:

- turns: the next utterance is the other side's with a probability that depends on the
  pause and the words before it. Measured on the 30 dev calls mixed to mono (VAD stop
  silence 0.4 s, utterances over 5.5 s cut at 0.3 s voice gaps by monitor.turns, the
  recogniser's text; pairs of consecutive utterances against the labels): after a pause
  of 0.4 s or more 0.88 (136 pairs); after a shorter one 0.71 when the words before ended
  a sentence (。？！, 133 pairs), 0.40 when they did not (a comma's pause, 77 pairs); a
  goodbye after a goodbye 1.0 (14 pairs, set to 0.95);
  splitting the ending further (after a question 0.87-1.0) was tried and gave less (0.862
  of the speech time right against 0.876), as did cutting every utterance over 1 s at voice
  gaps (0.81: more, shorter pieces with less to go on);
- who starts: after pick-up of an inbound call the agent speaks first (the greeting);
  log-odds 2.0, not more: an agent who does not greet lets the caller speak first;
- the words, as evidence for one side (log-odds, see `word_evidence`): the profile's
  greeting and company name, its recommended service phrases and hold asks are the
  agent's; addressing the other side as 您 with a service verb (帮您, 为您) is the agent's;
  stating a problem or a question about one's own device, thanking, 拜拜 and threats to
  complain are the caller's. Forbidden phrases are never evidence: a caller saying
  "我不知道" must not make the line the agent's.

Voice features were measured and left out: on the dev calls mixed to mono, 2-means over
per-utterance log-mel mean/std and pitch median/IQR (from `monitor.music._pitch_track`)
put 0.65-0.68 of the speech time in the right cluster even on the labelled utterance
times (0.5 is chance): the two sides use voices of the same kind, so voice clustering
would add noise, not evidence; the distance between consecutive utterances' features does
not tell a turn change either (AUC 0.43 over 377 pairs). A speaker encoder (resemblyzer) needs torch (≈ 700 MB),
which the project does not install.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

from monitor.events import Role, Transcript
from monitor.phrasebook import Profile


@dataclass(frozen=True)
class MonoRoleOptions:
    """How a mixed-mono call is split between agent and caller (see the module's measurements)."""

    switch_p: float = 0.7  # chance the next utterance is the other side's (pause under `long_pause_s`)
    switch_after_pause_p: float = 0.88  # ... after a pause of `long_pause_s` or more
    long_pause_s: float = 0.4
    # ... after a short pause when the words before it did not end a sentence (no 。？！): a comma's pause
    switch_mid_sentence_p: float = 0.4
    switch_after_goodbye_p: float = 0.95  # a goodbye after a goodbye is the other side's
    opening_slack_s: float = 5.0  # a 您好 counts as the greeting until the profile's deadline plus this
    agent_first: float = 2.0  # log-odds that the first words of an inbound call are the agent's
    greeting: float = 3.0  # log-odds for the profile's greeting or company name
    service: float = 2.0  # recommended service phrase, hold ask, 请您稍等
    agent_words: float = 1.5  # each agent cue (帮您, 为您, 请问您 …), at most two counted
    polite_you: float = 1.0  # 您 anywhere: the agent addresses the caller so; callers mostly say 你
    caller_words: float = 1.5  # each caller cue (我想问, 谢谢, 拜拜 …), at most two counted
    stop_silence_s: float = 0.4  # VAD pause that closes an utterance in a mono call (turns are 0.3 s+ apart)

    def __post_init__(self) -> None:
        for name in ("switch_p", "switch_after_pause_p", "switch_mid_sentence_p", "switch_after_goodbye_p"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be between 0 and 1")


# The agent serves: addresses the caller as 您 while offering or asking.
AGENT_CUES = ("帮您", "为您", "请问您", "您的", "给您", "向您", "您放心", "您看", "您稍等", "我们马上",
              "请问有什么", "您反馈", "您说", "感谢您", "我们的", "还有其他需要")
# The caller states a problem, asks about their own device, thanks and takes leave.
CALLER_CUES = ("我想", "我要", "我还有", "想问一下", "我们这边", "我这边", "我的设备", "我家", "什么时候能", "多少钱", "怎么回事",
               "谢谢", "拜拜", "你们的", "你们这", "还有一个问题", "出了点问题", "一直断", "修好")


GOODBYES = ("再见", "拜拜", "拜")
SENTENCE_END = ("。", "？", "！", "?", "!", ".")


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
    if profile.recommended.find(t) or profile.hold_ask.find(t) or profile.closing_offer.find(t):
        s += options.service
    s += options.agent_words * min(2, _count(t, AGENT_CUES))
    if "您" in t.replace("您好", ""):
        s += options.polite_you
    s -= options.caller_words * min(2, _count(t, CALLER_CUES))
    if profile.escalations.complaint_phrases.find(t):
        s -= options.caller_words
    return s


def _goodbye(text: str) -> bool:
    return any(w in text for w in GOODBYES)


def _switch(prev: Transcript, nxt: Transcript, options: MonoRoleOptions) -> float:
    """Chance that `nxt` is the other side's, from the pause and whether `prev` ended its sentence."""
    if _goodbye(prev.text) and _goodbye(nxt.text):  # a goodbye answers a goodbye
        return options.switch_after_goodbye_p
    if nxt.start - prev.end >= options.long_pause_s:
        return options.switch_after_pause_p
    if not prev.text.rstrip().endswith(SENTENCE_END):
        return options.switch_mid_sentence_p
    return options.switch_p


def assign_roles(transcripts: list[Transcript], profile: Profile, direction: str = "inbound",
                 options: MonoRoleOptions = MonoRoleOptions()) -> list[RoleDecision]:
    """Forward-backward over the speech transcripts (time order); non-speech ones get the role of
    the nearest speech before them with confidence 0.5."""
    speech = [i for i, t in enumerate(transcripts) if t.speech]
    out = [RoleDecision("agent", 0.5) for _ in transcripts]
    if not speech:
        return out
    ev = [word_evidence(transcripts[i].text, profile, options,
                        opening=transcripts[i].start <= profile.greeting_deadline_s + options.opening_slack_s)
          for i in speech]
    if direction == "inbound":
        ev[0] += options.agent_first
    # Emission likelihoods as (agent, caller) from log-odds.
    em = [(1.0 / (1.0 + math.exp(-e)), 1.0 / (1.0 + math.exp(e))) for e in ev]
    sw = [_switch(transcripts[a], transcripts[b], options) for a, b in zip(speech, speech[1:], strict=False)]
    n = len(speech)
    fwd = [(0.0, 0.0)] * n
    a0, c0 = 0.5 * em[0][0], 0.5 * em[0][1]
    fwd[0] = (a0 / (a0 + c0), c0 / (a0 + c0))
    for k in range(1, n):
        p = sw[k - 1]
        pa = fwd[k - 1][0] * (1 - p) + fwd[k - 1][1] * p
        pc = fwd[k - 1][1] * (1 - p) + fwd[k - 1][0] * p
        a, c = pa * em[k][0], pc * em[k][1]
        fwd[k] = (a / (a + c), c / (a + c))
    bwd = [(1.0, 1.0)] * n
    for k in range(n - 2, -1, -1):
        p = sw[k]
        na, nc = em[k + 1][0] * bwd[k + 1][0], em[k + 1][1] * bwd[k + 1][1]
        a, c = (1 - p) * na + p * nc, p * na + (1 - p) * nc
        bwd[k] = (a / (a + c), c / (a + c))
    for k, i in enumerate(speech):
        a, c = fwd[k][0] * bwd[k][0], fwd[k][1] * bwd[k][1]
        pa = a / (a + c)
        out[i] = RoleDecision("agent", pa) if pa >= 0.5 else RoleDecision("caller", 1.0 - pa)
    last: RoleDecision | None = None
    for i, t in enumerate(transcripts):
        if t.speech:
            last = out[i]
        elif last is not None:
            out[i] = RoleDecision(last.role, 0.5)
    return out


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
