"""How long the voice really stops between two lines of a mixed-mono call (monitor.roles).

I/O-free. The VAD's gap between two utterances is a poor turn cue: its hangover and padding
shrink every pause to about 0.22 s, and noise can fill one. Here the pause is measured on the
mix itself, in 10 ms frames: the longest run of frames quieter than `level` of the way from the
junction's noise floor (the quietest frames of the two lines and the gap between them) up to the
quieter line's speech level (its loud frames), within `window_s` of the junction. A caller
quieter than the agent is measured against the caller's own level, and a live desk measures a
junction as soon as the second line has been heard.

Measured against the labels on cached recognition mixed to mono (dev 30 calls and two
held-out-style sets of 40, scripts/make_synth_corpus.py seeds 7 and 99): consecutive lines with
a VAD gap under 0.25 s changed sides 0.21 of the time when the measured pause was under 0.4 s
(a comma's pause: "今天我没空。| 改天再说"), 0.65 at 0.4-0.6 s and 0.77 from 0.6 s on (a turn
the VAD's padding hid); noisy lines (SNR 15-20 dB) alike: 0.21 / 0.62 / 0.66. The level
(0.4) and window (0.2 s) were chosen among 0.3-0.6 and 0.2-0.4 s on the first two sets.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from monitor.audio.levels import frame_levels
from monitor.events import SAMPLE_RATE

HOP = SAMPLE_RATE // 100  # 10 ms frames
# The mix over [start, end) seconds of call time; None when it is no longer kept.
MixOver = Callable[[float, float], "np.ndarray | None"]


@dataclass(frozen=True)
class PauseOptions:
    """How a junction's pause is measured (see the module's measurements)."""

    level: float = 0.4  # share of the way from the noise floor to the quieter line's speech level
    window_s: float = 0.2  # searched this far into each line from the VAD's junction
    context_s: float = 3.0  # the lines' levels from this much of each next to the junction
    floor_pct: float = 10.0  # the noise floor: this percentile of the frames' level
    speech_pct: float = 90.0  # a line's speech level: this percentile of its frames' level


def _junction_span(a: tuple[float, float], b: tuple[float, float], options: PauseOptions) -> tuple[float, float]:
    """The stretch of the mix (seconds) read for lines `a` then `b` ((start, end))."""
    return max(a[0], a[1] - options.context_s), max(b[0], min(b[1], b[0] + options.context_s))


def junction_pause(mix_over: MixOver, a: tuple[float, float], b: tuple[float, float],
                   options: PauseOptions = PauseOptions()) -> float | None:
    """Seconds of the longest quiet run near the junction of line `a` and the next line `b`
    ((start, end) in seconds), read from `mix_over`. None when that audio is gone or the lines
    are too short to have a level."""
    t0, t1 = _junction_span(a, b, options)
    x = mix_over(t0, t1)
    if x is None:
        return None
    db = frame_levels(x, HOP)

    def idx(t: float) -> int:
        return max(0, min(len(db), int(round((t - t0) * 100))))

    a0, a1, b0, b1 = idx(t0), idx(a[1]), idx(b[0]), len(db)
    if a1 - a0 < 5 or b1 - b0 < 5:
        return None
    speech = min(float(np.percentile(db[a0:a1], options.speech_pct)), float(np.percentile(db[b0:b1], options.speech_pct)))
    floor = float(np.percentile(db, options.floor_pct))
    quiet = db[idx(a[1] - options.window_s):idx(b[0] + options.window_s)] < floor + options.level * (speech - floor)
    best = run = 0
    for q in quiet:
        run = run + 1 if q else 0
        best = max(best, run)
    return best / 100.0
