"""A call's score: 100 minus the deductions of its violations, never below 0."""
from __future__ import annotations

from monitor.events import Violation

FULL_SCORE = 100.0


def score(violations: list[Violation]) -> float:
    return round(max(0.0, FULL_SCORE - sum(v.deduction for v in violations)), 1)
