"""Which of two channels carries a sound first: the side that spoke leads, its echo lags.

A line's echo, a headset's leak or a desk capture puts one side's words on the other channel
a few to a few hundred milliseconds later, filtered but otherwise the same signal. So over a
short window the cross-correlation of the two channels (GCC-PHAT: every frequency weighted
alike, so the peak is sharp whatever the voice's spectrum) peaks at the delay between them,
and its sign says which channel is the source. Levels cannot say it when the channels' gains
differ: an AGC on the caller's line lifts the agent's echo above the agent's own channel.
Where neither channel holds the other (two independent voices, noise), there is no clear peak.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import islice

import numpy as np

from monitor.events import SAMPLE_RATE


@dataclass(frozen=True)
class LeadOptions:
    """How the delay between the channels is read, window by window.

    On the field-style sets' echoes (50-100 ms late) a window holding one side's words and its
    echo peaks at 5-24 times the correlation's RMS; windows of noise or of two unrelated voices
    at 3.4-4.6."""

    window_s: float = 0.5
    hop_s: float = 0.25
    # Closer than this, which side is first cannot be told: a sidetone or a near hybrid echoes within
    # a few ms, and a recorder may write one leg tens of ms behind the other (a jitter buffer, a
    # codec): 15-60 ms of such skew turned a leak's timing round. Line echoes that matter come later.
    min_lag_s: float = 0.04
    max_lag_s: float = 0.25  # a line echo comes at most this late
    min_peak: float = 6.0  # a clear peak: this many times the correlation's RMS
    same_lag_s: float = 0.002  # two windows' delays this close are the same echo path
    sure_peak: float = 20.0  # a peak this high counts alone (coincidences seen: up to 10.4)
    # After the other channel, a window is its echo when their correlation at that delay is this
    # high. Echo windows of the field-style sets: mostly 0.3-0.75 (0.1 under a noisy 8 kHz line);
    # double talk with each side's echo 20 dB under the other's voice: 0.02-0.1.
    min_echo_rho: float = 0.2
    band_hz: tuple[float, float] = (300.0, 3400.0)  # the telephone band both channels share
    enabled: bool = True


def delay(own: np.ndarray, other: np.ndarray, options: LeadOptions = LeadOptions()) -> tuple[float, float, float]:
    """(seconds `own` comes after `other`: negative when it comes first; the peak's height in RMS
    of the whitened correlation; the plain correlation coefficient at that delay, in the band: how
    much of one channel the other explains)."""
    n = 1 << int(np.ceil(np.log2(max(2, len(own) + len(other)))))
    fa, fb = np.fft.rfft(own, n), np.fft.rfft(other, n)
    freq = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    out = (freq < options.band_hz[0]) | (freq > options.band_hz[1])
    fa[out] = 0.0
    fb[out] = 0.0
    spec = fa * np.conj(fb)
    cc = np.fft.irfft(spec / (np.abs(spec) + 1e-12), n)
    reach = min(int(options.max_lag_s * SAMPLE_RATE), n // 2 - 1)
    cc = np.concatenate([cc[-reach:], cc[:reach + 1]])
    k = int(np.argmax(cc))
    rms = float(np.sqrt(np.mean(cc ** 2)))
    lag = k - reach
    # Parseval over a one-sided spectrum without its DC and Nyquist bins: sum x^2 = 2/n sum |X|^2
    energy = 2.0 / n * float(np.sqrt(np.sum(np.abs(fa) ** 2) * np.sum(np.abs(fb) ** 2)))
    plain = float(np.fft.irfft(spec, n)[lag % n]) / energy if energy > 0 else 0.0
    return lag / SAMPLE_RATE, float(cc[k] / rms) if rms > 0 else 0.0, plain


def leads(own: np.ndarray, other: np.ndarray, options: LeadOptions = LeadOptions()) -> np.ndarray:
    """Per window of `options.hop_s` from the start: +1 where `own` clearly comes first (the side
    speaking), -1 where it clearly comes after (an echo of the other side), 0 where it cannot be
    told."""
    win, hop = int(options.window_s * SAMPLE_RATE), int(options.hop_s * SAMPLE_RATE)
    n = min(len(own), len(other))
    if not options.enabled or n < win:
        return np.zeros(0, dtype=np.int8)
    lags = np.full(1 + (n - win) // hop, np.nan)
    strong = np.zeros(len(lags), dtype=bool)
    for i in range(len(lags)):
        s = i * hop
        a, b = own[s:s + win], other[s:s + win]
        if not (np.any(a) and np.any(b)):
            continue
        lag, peak, rho = delay(a, b, options)
        # Coming after the other channel, `own` is its echo only when the other channel explains
        # much of it: in double talk each channel's own voice dominates and its echo is faint.
        if peak >= options.min_peak and abs(lag) >= options.min_lag_s and (lag < 0 or rho >= options.min_echo_rho):
            lags[i] = lag
            strong[i] = peak >= options.sure_peak
    # An echo path holds its delay for seconds; a lone peak is a coincidence (two packet losses,
    # a click on each line), so a window counts when a neighbour found the same delay, or when its
    # peak is too high for one (a short goodbye between the other side's words).
    near = np.abs(np.diff(lags)) <= options.same_lag_s  # NaN compares False
    agreed = strong & ~np.isnan(lags)
    agreed[:-1] |= near
    agreed[1:] |= near
    return np.where(agreed, np.where(lags < 0, 1, -1), 0).astype(np.int8)


def frame_sides(own: np.ndarray, other: np.ndarray, frame: int,
                options: LeadOptions = LeadOptions()) -> tuple[np.ndarray, np.ndarray]:
    """Per frame of `frame` samples: (`own` comes first, `own` comes after), each True where a
    window over the frame says so and none says the opposite."""
    w = leads(own, other, options)
    nf = min(len(own), len(other)) // frame
    first, last = np.zeros(nf, dtype=bool), np.zeros(nf, dtype=bool)
    hop, win = int(options.hop_s * SAMPLE_RATE), int(options.window_s * SAMPLE_RATE)
    for i, v in enumerate(w):
        a, b = i * hop // frame, min(nf, (i * hop + win) // frame)
        if v > 0:
            first[a:b] = True
        elif v < 0:
            last[a:b] = True
    return first & ~last, last & ~first


def same_audio(a: np.ndarray, b: np.ndarray, options: LeadOptions = LeadOptions(), windows: int = 6,
               min_rho: float = 0.9, gain_spread_db: float = 4.0, share: float = 0.8) -> bool:
    """The two channels hold one recording: a mono mix copied to both (perhaps a little apart or at
    another gain, as a recorder wrote them), not two sides. Looked at in the `windows` loudest
    windows of each channel: the other channel explains each (correlation `min_rho` at its delay)
    at one gain throughout. Two sides differ there: where the agent talks, the caller's line holds
    its echo well below it, and the other way round where the caller talks, so agreeing windows from
    both channels' loudest at one gain are a copy. Tones are passed over: a busy tone at the end
    correlated ambiguously even in a copy."""
    win = int(options.window_s * SAMPLE_RATE)
    n = min(len(a), len(b)) // win
    if n < 2:
        return False
    ea = np.sum(a[:n * win].reshape(n, win).astype(np.float64) ** 2, axis=1)
    eb = np.sum(b[:n * win].reshape(n, win).astype(np.float64) ** 2, axis=1)

    def tonal(i: int) -> bool:  # a busy tone, a DTMF digit: its period repeats, its delay is ambiguous
        power = np.abs(np.fft.rfft(a[i * win:(i + 1) * win])) ** 2
        return float(np.sum(np.sort(power)[-len(power) // 50:])) > 0.8 * float(np.sum(power))

    def loudest(e: np.ndarray) -> list[int]:  # looked at one by one, only until enough are found
        return list(islice((int(k) for k in np.argsort(e)[::-1] if e[k] > 0 and not tonal(int(k))), windows))

    picked = sorted({i for e in (ea, eb) for i in loudest(e)})
    gains = []
    for i in picked:
        _, _, rho = delay(a[i * win:(i + 1) * win], b[i * win:(i + 1) * win], options)
        if rho >= min_rho:
            gains.append(10.0 * np.log10((ea[i] + 1e-12) / (eb[i] + 1e-12)))
    return bool(picked) and len(gains) >= share * len(picked) and max(gains) - min(gains) <= gain_spread_db
