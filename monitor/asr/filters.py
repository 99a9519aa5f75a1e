"""Cleaning recognised text and deciding that it is not speech.

Whisper invents text on silence and noise (subtitle credits, "please like and
subscribe"), loops on noise ("再见见见见…"), and on short unclear audio may
append or return its own prompt. None of that may ever reach a rule, but the
real words around it should.
"""
from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

from monitor.text import normalize

# Whisper's well-known inventions on Mandarin non-speech (normalised form, substrings).
KNOWN_HALLUCINATIONS = (
    "字幕由amaraorg社区提供", "amaraorg社区提供", "社区提供", "字幕由amara", "amaraorg", "字幕提供", "字幕by", "字幕制作", "字幕志愿者", "中文字幕",
    "请不吝点赞", "点赞订阅", "订阅转发", "打赏支持", "明镜与点点", "点点栏目",
    "谢谢观看", "感谢观看", "谢谢收看", "感谢收看", "下期再见", "下集再见", "我们下期",
    "欢迎订阅", "订阅我的频道", "优优独播剧场", "独播剧场", "本期视频", "请订阅",
    "作词", "作曲", "编曲",
)
_RUN = re.compile(r"(.)\1{3,}")  # the same character four or more times
_CLAUSE = re.compile(r"([^，。！？、；,.!?;\s]+)([，。！？、；,.!?;\s]*)")


@dataclass(frozen=True)
class SpeechFilter:
    """Thresholds for dropping a recognition result as non-speech."""

    max_no_speech_prob: float = 0.6  # with a low log-prob (Whisper's own rule)
    no_speech_logprob: float = -0.8
    min_avg_logprob: float = -1.3  # below this the text is a guess whatever no_speech says
    max_compression_ratio: float = 2.4  # what is still repetitive after collapsing loops


def compression_ratio(text: str) -> float:
    b = text.encode("utf-8")
    return len(b) / max(1, len(zlib.compress(b)))


def collapse_loops(text: str) -> str:
    """'再见见见见' -> '再见'; 'A。A。A。' -> 'A。'; 'A，B。A，B。A，' -> 'A，B。A，'."""
    parts = _CLAUSE.findall(_RUN.sub(r"\1", text))
    for k in (1, 2, 3):  # a loop of one, two or three clauses
        out: list[tuple[str, str]] = []
        for part in parts:
            out.append(part)
            if len(out) >= 2 * k and [normalize(c) for c, _ in out[-k:]] == [normalize(c) for c, _ in out[-2 * k:-k]]:
                del out[-k:]
        parts = out
    return "".join(c + sep for c, sep in parts).strip()


def _prompt_fragments(prompt_texts: tuple[str, ...]) -> list[str]:
    """Pieces of the prompt the model may echo: the whole and its 4+ character slices."""
    frags: set[str] = set()
    for p in prompt_texts:
        n = normalize(p)
        for size in range(len(n), 3, -1):
            for i in range(0, len(n) - size + 1):
                frags.add(n[i:i + size])
    return sorted(frags, key=len, reverse=True)


# A hot word read this surely (average log-prob) is said, not echoed: the agent's "中兴通讯" cut from
# its 您好 (a mixed-mono turn, a quiet 您好 the VAD missed) came at -0.06 to -0.10 on the dev calls
# mixed to mono; the recogniser's echoes of its hot words over noise, unclear or other speech at -0.38
# to -1.75 (66 lines dropped as prompt echo over the dev, field-style and held-out-style reports).
SURE_HOTWORD_LOGPROB = -0.25


def clean(text: str, prompt_texts: tuple[str, ...] = (), avg_logprob: float | None = None) -> tuple[str, str]:
    """(text to use, reason it is not speech or '').

    Prompt echoes and known inventions are cut out; if nothing but them (or
    the hot words themselves, unless read at `SURE_HOTWORD_LOGPROB` or better) remains,
    the result is not speech.
    """
    # a character whose bytes the decoder split between tokens, cut off at the end of the reading
    text = collapse_loops(text.replace("\ufffd", ""))
    norm = normalize(text).lower()
    if not norm:
        return "", "empty"
    removed = ""
    # Longest first, so a whole invented sentence goes before its pieces.
    for frag, kind in [(h, "known hallucination") for h in sorted(KNOWN_HALLUCINATIONS, key=len, reverse=True)] + \
            [(p, "prompt echo") for p in _prompt_fragments(prompt_texts[:1])]:
        if frag in norm:
            removed = removed or kind
            norm = norm.replace(frag, " ")
            text = _strip_fragment(text, frag)
    if removed:
        text = collapse_loops(text)
        norm = normalize(text).lower()
    rest = norm.replace(" ", "")
    hot = [normalize(h).lower() for h in prompt_texts[1:]]
    # What survives next to an echo is usually debris of it: keep only real sentences.
    if not rest or (removed and len(rest) < 3):
        return text, removed or "prompt echo"
    said_surely = not removed and avg_logprob is not None and avg_logprob >= SURE_HOTWORD_LOGPROB
    lead = normalize(prompt_texts[0]).lower() if prompt_texts else ""
    if not said_surely and any(rest in h or _hotword_then_prompt(rest, h, lead) for h in hot):
        return text, "prompt echo"
    return text, ""


def _hotword_then_prompt(rest: str, hotword: str, lead: str) -> bool:
    """The words are a hot word and the start of the initial prompt after it, as the decoder's prompt
    runs (家庭宽带 | 以下是普通话的句子): the recogniser reading its prompt back over noise or music
    ("家庭宽带以下"; 4+ characters of the initial prompt are cut as an echo before this)."""
    tail = rest[len(hotword):]
    return bool(hotword) and rest.startswith(hotword) and len(tail) >= 2 and lead.startswith(tail)


def _strip_fragment(text: str, frag: str) -> str:
    """Remove a normalised fragment from display text, ignoring punctuation inside it."""
    pattern = r"[\s，。！？、,.!?]*".join(map(re.escape, frag))
    return re.sub(pattern, "", text, flags=re.IGNORECASE).strip(" ，。,.")


def why_not_speech(text: str, avg_logprob: float, no_speech_prob: float,
                   f: SpeechFilter = SpeechFilter()) -> str:
    """'' when cleaned text may be used as speech, else the reason it is dropped."""
    norm = normalize(text)
    if not norm:
        return "empty"
    if no_speech_prob > f.max_no_speech_prob and avg_logprob < f.no_speech_logprob:
        return "no speech"
    if avg_logprob < f.min_avg_logprob:
        return "unlikely text"
    if len(norm) >= 8 and compression_ratio(norm) > f.max_compression_ratio:
        return "repetition"
    return ""
