"""What the benchmark scripts share: percentiles and a free loopback port."""
from __future__ import annotations

import socket


def percentile(xs: list[float], p: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default); nan for no values."""
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
