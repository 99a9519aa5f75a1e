"""Masking of phone, ID-card and bank-card numbers in call text (PIPL: the least personal
data needed leaves the desk).

A number is a run of at least 7 digits, written as digits or as spoken Chinese numerals
(一三八…, 幺 for 1), possibly with spaces or dashes between them. Its first 3 digits (4
for a bank card) and its last 4 are kept, the rest become '*':

    138 1234 5678        -> 138****5678
    110105199001011234   -> 110***********1234
    6222020200112233445  -> 6222***********3445

Shorter runs (prices, dates, extension numbers) are left alone.
"""
from __future__ import annotations

import re

_NUMERALS = "0123456789０１２３４５６７８９零〇一二三四五六七八九幺两"
_VALUE = {**{c: str(i) for i, c in enumerate("0123456789")},
          **{c: str(i) for i, c in enumerate("０１２３４５６７８９")},
          **{c: str(i) for i, c in enumerate("零一二三四五六七八九")},
          "〇": "0", "幺": "1", "两": "2"}
_DIGIT = f"[{_NUMERALS}]"
# Digits with at most one space or dash between two of them; an ID card may end in X.
_RUN = re.compile(f"{_DIGIT}(?:[ \\-]?{_DIGIT}){{6,}}(?:[Xx]\\b|[Xx](?=[^A-Za-z]|$))?")
MIN_DIGITS = 7


def _mask(m: re.Match[str]) -> str:
    raw = m.group(0)
    chars = [c for c in raw if c in _VALUE or c in "Xx"]
    digits = "".join(_VALUE.get(c, "X") for c in chars)
    n = len(digits)
    if n < MIN_DIGITS:
        return raw
    keep_head = 4 if 16 <= n <= 19 and not digits.endswith("X") and n != 18 else 3
    keep_tail = 4
    if n <= keep_head + keep_tail:
        keep_head = max(0, n - keep_tail - 3)
    return digits[:keep_head] + "*" * (n - keep_head - keep_tail) + digits[-keep_tail:]


def redact(text: str) -> str:
    """`text` with every phone, ID-card and bank-card number masked."""
    if not text:
        return text
    return _RUN.sub(_mask, text)
