"""Text clean-up between the recogniser and the rules."""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_PUNCT = re.compile(r"[\s\u3000-\u303f\uff00-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65"
                    r"!-/:-@\[-`{-~，。！？、；：“”‘’（）《》…—·]+")


@lru_cache(maxsize=1)
def _t2s():
    import opencc

    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    """Whisper often answers in traditional characters; rules read simplified."""
    return _t2s().convert(text)


def normalize(text: str) -> str:
    """NFKC, simplified, without punctuation or spaces: the form phrases are matched in."""
    return _PUNCT.sub("", to_simplified(unicodedata.normalize("NFKC", text)))


def span_in_text(text: str, start: int, end: int) -> tuple[int, int] | None:
    """Where the characters at [start, end) of `normalize(text)` stand in `text`, or None where
    the two do not line up (a character NFKC writes as two, ℃ -> °C, cut by the span)."""
    source = [k for k, ch in enumerate(text) for _ in normalize(ch)]  # normalised char -> text char
    if "".join(normalize(ch) for ch in text) != normalize(text) or not 0 <= start < end <= len(source) \
            or (start and source[start - 1] == source[start]) \
            or (end < len(source) and source[end] == source[end - 1]):
        return None
    return source[start], source[end - 1] + 1


def replace_normalized(text: str, start: int, end: int, words: str) -> str:
    """`text` with the characters at [start, end) of its normalised form (`normalize`) replaced by
    `words`, its punctuation elsewhere kept; the normalised form rewritten where the two do not
    line up (`span_in_text`)."""
    span = span_in_text(text, start, end)
    if span is None:
        norm = normalize(text)
        return norm[:start] + words + norm[end:]
    return text[:span[0]] + words + text[span[1]:]
