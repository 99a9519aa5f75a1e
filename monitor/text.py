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


def replace_normalized(text: str, start: int, end: int, words: str) -> str:
    """`text` with the characters at [start, end) of its normalised form (`normalize`) replaced by
    `words`, its punctuation elsewhere kept; the normalised form rewritten where the two do not
    line up character for character."""
    kept = [k for k, ch in enumerate(text) if normalize(ch)]
    if "".join(normalize(text[k]) for k in kept) != normalize(text) or not 0 <= start < end <= len(kept):
        norm = normalize(text)
        return norm[:start] + words + norm[end:]
    return text[:kept[start]] + words + text[kept[end - 1] + 1:]
