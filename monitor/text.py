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
