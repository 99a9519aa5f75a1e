"""Signal levels in dB (full scale 1.0), whole or frame by frame."""
from __future__ import annotations

import numpy as np


def level_db(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(10.0 * np.log10(np.mean(x * x) + 1e-12)) if len(x) else -120.0


def frame_levels(x: np.ndarray, frame: int) -> np.ndarray:
    """Level of each whole `frame` samples of x (a trailing part frame is left out)."""
    n = len(x) // frame
    f = np.asarray(x[:n * frame], dtype=np.float64).reshape(n, frame)
    return 10.0 * np.log10(np.mean(f * f, axis=1) + 1e-12)


SPEECH_FRAME = 480  # 30 ms at 16 kHz
SPEECH_PERCENTILE = 90.0


def speech_level_db(x: np.ndarray) -> float | None:
    """How loud the talker in x is: the 90th percentile of its 30 ms frame levels. Unlike the
    mean over the span, the pauses and silence a long VAD stretch holds do not pull it down.
    None for a span under 0.3 s. Rounded to 0.1 dB, as reports keep it, so a rescore judges alike."""
    levels = frame_levels(x, SPEECH_FRAME)
    return round(float(np.percentile(levels, SPEECH_PERCENTILE)), 1) if len(levels) >= 10 else None
