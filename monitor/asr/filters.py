"""Deciding that recognised text is not speech.

Whisper invents text on silence and noise (subtitle credits, "please like and
subscribe"), repeats itself on noise, and on short unclear audio sometimes
returns its own prompt. None of that may ever reach a rule.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

from monitor.text import normalize

# Whisper's well-known inventions on Mandarin non-speech (normalised form, substrings).
KNOWN_HALLUCINATIONS = (
    "字幕由amara", "amaraorg", "字幕提供", "字幕by", "字幕制作", "字幕志愿者", "中文字幕",
    "请不吝点赞", "点赞订阅", "订阅转发", "打赏支持", "明镜与点点", "点点栏目",
    "谢谢观看", "感谢观看", "谢谢收看", "感谢收看", "下期再见", "下集再见", "我们下期",
    "欢迎订阅", "订阅我的频道", "优优独播剧场", "独播剧场", "本期视频", "请订阅",
    "以下是普通话的句子", "以下是普通话", "普通话的句子",
)


@dataclass(frozen=True)
class SpeechFilter:
    """Thresholds for dropping a recognition result as non-speech."""

    max_no_speech_prob: float = 0.6  # with a low log-prob (Whisper's own rule)
    no_speech_logprob: float = -0.8
    min_avg_logprob: float = -1.3  # below this the text is a guess whatever no_speech says
    max_compression_ratio: float = 2.4  # repetitive loops compress well
    min_chars: int = 1


def compression_ratio(text: str) -> float:
    b = text.encode("utf-8")
    return len(b) / max(1, len(zlib.compress(b)))


def why_not_speech(text: str, avg_logprob: float, no_speech_prob: float, prompt_texts: tuple[str, ...] = (),
                   f: SpeechFilter = SpeechFilter()) -> str:
    """'' when the text may be used as speech, else the reason it is dropped."""
    norm = normalize(text).lower()
    if len(norm) < f.min_chars:
        return "empty"
    for h in KNOWN_HALLUCINATIONS:
        if h in norm:
            return "known hallucination"
    for p in prompt_texts:
        pn = normalize(p).lower()
        if pn and (norm in pn):
            return "prompt echo"
    if no_speech_prob > f.max_no_speech_prob and avg_logprob < f.no_speech_logprob:
        return "no speech"
    if avg_logprob < f.min_avg_logprob:
        return "unlikely text"
    if len(norm) >= 8 and compression_ratio(norm) > f.max_compression_ratio:
        return "repetition"
    return ""
