"""Call-progress tone detection (busy / disconnect / reorder) on one channel.

Why: when the caller hangs up first, the caller channel carries the exchange's
busy tone until the recording ends, so a confirmed busy tone on the caller
channel is the audio evidence that the *caller* ended the call.  The tone also
fools webrtcvad into "speech", so `tone_spans()` lets the VAD ignore it.

How: every `frame_s` a Hann-windowed frame is scored by how much of its
telephone-band energy (200-4000 Hz) sits at the tone frequencies (single-bin
DFTs, i.e. Goertzel).  A tone is narrowband, so the share is ~1; noise spreads
over the whole band.  The DFT's phase, frame to frame, pins the frequency to
within 1.5 % (a musical A4 at 440 Hz is out).  A voiced vowel or a musical note can put most of its
energy on 450 Hz too, but never without harmonics of its own fundamental, so
frames with energy where those harmonics would be are rejected.  Runs of tone
frames become bursts, and only bursts whose on/off durations repeat a known
cadence for `min_cycles` bursts become an episode: that keeps speech (tone
runs under 0.1 s in the dev corpus), a dial tone (continuous 450 Hz) and a
ringback tone (1 s on / 4 s off) out.

The detector is pure and streaming: feed samples in order, in blocks of any
size; frames sit at fixed sample positions, so the result does not depend on
how the audio was split.  Times are seconds from the first sample fed.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from .events import SAMPLE_RATE, Role, ToneEvent


@dataclass(frozen=True)
class TonePattern:
    """A cadenced tone: all `freqs` sound together, `on_s` on / `off_s` off."""

    kind: str
    freqs: tuple[float, ...]
    on_s: float
    off_s: float


PATTERNS: tuple[TonePattern, ...] = (
    # ITU-T E.180 (China): busy / disconnect, and congestion.
    TonePattern("busy_450", (450.0,), 0.35, 0.35),
    TonePattern("congestion_450", (450.0,), 0.70, 0.70),
    # North America (precise tone plan): busy and reorder (fast busy).
    TonePattern("busy_480_620", (480.0, 620.0), 0.50, 0.50),
    TonePattern("reorder_480_620", (480.0, 620.0), 0.25, 0.25),
)


@dataclass(frozen=True)
class ToneOptions:
    """Tuning of `ToneDetector`; the defaults fit 8 kHz and 16 kHz telephone audio."""

    frame_s: float = 0.02  # hop between analysis frames: the timing resolution
    window_s: float = 0.06  # long enough that 450 Hz and 480 Hz fall in separate bins
    min_ratio: float = 0.7  # share of band energy at the tone frequencies (sum of them)
    min_component: float = 0.15  # each component of a dual tone must hold this share
    min_level_db: float = -50.0  # dBFS; quieter frames (line idle noise) are never tone
    tolerance_s: float = 0.1  # allowed on/off deviation: max(tolerance_s, tolerance_frac * nominal)
    tolerance_frac: float = 0.2
    min_cycles: int = 2  # bursts with matching on/off before an episode is confirmed
    max_dropout_s: float = 0.04  # tone-less frames bridged inside a burst (noise, codec)
    # ... and frames without a voice's or instrument's harmonics (a lost packet: silence or its
    # splatter) bridged up to this long: a lost 20-40 ms packet empties up to 0.08 s of frames
    # through the 60 ms window. With 0.04 alone the busy tone after two field-style calls' hang-ups
    # (8 kHz, packet loss) broke into blips and the hang-up was blamed on the agent; a vowel with a
    # harmonic on 450 Hz keeps the short limit (its tone-less frames have harmonics).
    max_loss_s: float = 0.08
    min_burst_s: float = 0.08  # shorter blips are ignored rather than breaking a cadence
    freq_tolerance: float = 0.015  # relative; tight enough to reject music's A4 (440 Hz)
    max_harmonic: float = 0.05  # share allowed where a voice or instrument would add harmonics
    band_hz: tuple[float, float] = (200.0, 4000.0)
    patterns: tuple[TonePattern, ...] = PATTERNS


def confirmed_within_s(options: ToneOptions = ToneOptions()) -> float:
    """Longest time from a tone's start to its confirmation (`min_cycles` bursts and the gaps between
    them, with their tolerance, and the analysis window): a silence may end in a tone not yet known."""
    return max(p.on_s * options.min_cycles + p.off_s * (options.min_cycles - 1)
               + options.min_cycles * max(options.tolerance_s, options.tolerance_frac * p.on_s)
               for p in options.patterns) + options.window_s


@dataclass
class _Burst:
    start: float
    end: float
    truncated: bool = False  # cut off by the end of the stream

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class _Episode:
    pattern: TonePattern
    bursts: list[_Burst]


@dataclass
class _Family:
    """Burst/cadence tracking for one set of frequencies (e.g. 450 Hz alone)."""

    freqs: tuple[float, ...]
    patterns: tuple[TonePattern, ...]
    neighbours: np.ndarray  # FFT bins where a harmonic sound would also have energy
    burst_first: int | None = None  # frame index of the open burst's first tone frame
    burst_last: int = -1
    gap_harmonic: bool = False  # a frame since burst_last had a voice's or instrument's harmonics
    candidate: list[_Burst] = field(default_factory=list)
    episode: _Episode | None = None
    done: list[_Episode] = field(default_factory=list)


class ToneDetector:
    """Streaming detector of cadenced call-progress tones on one channel.

    `feed()` returns episodes as soon as their cadence is confirmed (end = time
    of confirmation); `flush()` ends the stream and returns every episode with
    its true end (the end of its last burst).
    """

    def __init__(self, role: Role, options: ToneOptions = ToneOptions()) -> None:
        self.role = role
        self.options = options
        o = options
        self._hop = int(round(o.frame_s * SAMPLE_RATE))
        self._win = int(round(o.window_s * SAMPLE_RATE))
        window = np.hanning(self._win + 2)[1:-1]  # no zero end points: every sample counts
        self._window = window
        self._wsq = float(np.sum(window**2))
        freqs_hz = np.fft.rfftfreq(self._win, 1.0 / SAMPLE_RATE)
        self._band = (freqs_hz >= o.band_hz[0]) & (freqs_hz <= o.band_hz[1])
        self._min_power = 10.0 ** (o.min_level_db / 10.0)
        self._dropout = int(round(o.max_dropout_s / o.frame_s))
        self._loss = max(self._dropout, int(round(o.max_loss_s / o.frame_s)))

        by_freqs: dict[tuple[float, ...], list[TonePattern]] = {}
        for p in o.patterns:
            by_freqs.setdefault(p.freqs, []).append(p)
        self._families = [_Family(f, tuple(ps), self._neighbour_bins(f, freqs_hz))
                          for f, ps in by_freqs.items()]
        self._probe_freqs = sorted({f for p in o.patterns for f in p.freqs})
        self._col = {f: j for j, f in enumerate(self._probe_freqs)}
        # Single-bin DFTs at each tone frequency and at +- the frequency tolerance
        # (the Hann main lobe alone loses too much at the edges of the tolerance),
        # scaled so that a pure sinusoid's estimate equals its windowed energy.
        # (FFT bins are too coarse here: 480 Hz would leak into a 450 Hz bin.)
        offsets = np.array([0.0, -1.0, 1.0]) * o.freq_tolerance  # nominal first
        self._n_offsets = len(offsets)
        hz = np.outer(self._probe_freqs, 1.0 + offsets).reshape(-1)
        phase = 2 * np.pi * np.outer(np.arange(self._win), hz) / SAMPLE_RATE
        # Real cos|sin columns: a real matmul, not a complex one, on real frames.
        self._probes = np.hstack([np.cos(phase), np.sin(phase)]) * window[:, None]
        self._probe_scale = 2.0 * self._wsq / float(np.sum(window)) ** 2
        # A steady tone at f turns the nominal probe's phase by 2*pi*f*hop/SR per
        # frame; the excess measures the true frequency to a fraction of a hertz,
        # far finer than a 60 ms window resolves by magnitude.
        self._expected_turn = np.exp(-2j * np.pi * np.array(self._probe_freqs) * self._hop
                                     / SAMPLE_RATE)
        self._hz_per_rad = SAMPLE_RATE / (2 * np.pi * self._hop)
        self._prev_probe = np.zeros(len(self._probe_freqs), dtype=complex)

        self._buf = np.zeros(0, dtype=np.float64)
        self._buf_start = 0  # absolute sample index of _buf[0]
        self._next_frame = 0  # index of the next frame to analyse
        self._fed = 0  # samples fed so far
        self._flushed = False

    def _neighbour_bins(self, freqs: tuple[float, ...], bin_hz: np.ndarray) -> np.ndarray:
        """FFT bins where a periodic sound whose k-th harmonic (k <= 4) lies on a
        tone frequency f would also have harmonics: f * (1 +- 1/k).  A vowel with
        F0 = 225 Hz can put most of its energy on 450 Hz, never all of it; a
        call-progress tone is a pure sinusoid and leaves these bins nearly empty."""
        o = self.options
        step = SAMPLE_RATE / self._win
        guard = 3 * step  # outside the Hann main lobe of every tone component
        mask = np.zeros(len(bin_hz), dtype=bool)
        for f in freqs:
            for k in (1, 2, 3, 4):
                for n in (f * (1 - 1 / k), f * (1 + 1 / k)):
                    if n < o.band_hz[0]:
                        continue
                    lo = n * (1 - o.freq_tolerance) - step / 2
                    hi = n * (1 + o.freq_tolerance) + step / 2
                    mask |= (bin_hz >= lo) & (bin_hz <= hi)
        for c in freqs:
            mask &= np.abs(bin_hz - c) > guard + o.freq_tolerance * c
        return np.flatnonzero(mask)

    # ---- public API -------------------------------------------------------

    def feed(self, samples: np.ndarray) -> list[ToneEvent]:
        """Append 16 kHz mono samples; return episodes confirmed by them."""
        if self._flushed:
            raise RuntimeError("ToneDetector.feed() after flush()")
        x = np.asarray(samples, dtype=np.float64)
        if x.ndim != 1:
            raise ValueError(f"expected mono samples, got shape {x.shape}")
        self._buf = np.concatenate([self._buf, x])
        self._fed += len(x)
        return self._analyse(final=False)

    def flush(self) -> list[ToneEvent]:
        """End of stream: return all episodes of the stream with their true ends."""
        if not self._flushed:
            self._analyse(final=True)
            self._flushed = True
            for fam in self._families:
                if fam.burst_first is not None:
                    self._close_burst(fam, truncated=True)
                if fam.episode is not None:
                    fam.done.append(fam.episode)
                    fam.episode = None
        episodes = [e for fam in self._families for e in fam.done]
        events = [ToneEvent(self.role, e.bursts[0].start, e.bursts[-1].end, e.pattern.kind)
                  for e in episodes]
        return sorted(events, key=lambda ev: ev.start)

    @property
    def active(self) -> ToneEvent | None:
        """The confirmed episode still going on, if any (end = audio analysed so far)."""
        for fam in self._families:
            if fam.episode is not None:
                start = fam.episode.bursts[0].start
                return ToneEvent(self.role, start, self._now(), fam.episode.pattern.kind)
        return None

    def tone_spans(self) -> list[tuple[float, float]]:
        """Bursts (seconds) of confirmed episodes, including the bursts before
        confirmation and the burst under way, so a VAD can ignore them.
        Unconfirmed bursts are left out: alone they may well be speech."""
        spans: list[tuple[float, float]] = []
        for fam in self._families:
            episodes = fam.done + ([fam.episode] if fam.episode is not None else [])
            for e in episodes:
                spans.extend((b.start, b.end) for b in e.bursts)
            if fam.episode is not None and fam.burst_first is not None:
                spans.append((self._frame_start_t(fam.burst_first), self._now()))
        return sorted(spans)

    # ---- framing and scoring ---------------------------------------------

    def _now(self) -> float:
        """Stream time up to which audio has been analysed."""
        analysed = self._next_frame * self._hop + self._win - self._hop if self._next_frame else 0
        return min(analysed, self._fed) / SAMPLE_RATE

    def _frame_start_t(self, i: int) -> float:
        # A frame stands for the hop-long slice around its window centre.
        return (i * self._hop + (self._win - self._hop) // 2) / SAMPLE_RATE

    def _frame_end_t(self, i: int) -> float:
        return min((i + 1) * self._hop + (self._win - self._hop) // 2, self._fed) / SAMPLE_RATE

    def _analyse(self, final: bool) -> list[ToneEvent]:
        first = self._next_frame * self._hop - self._buf_start  # buffer offset of next frame
        if final:
            # Frames until every sample fed lies in some frame's slice; pad with silence.
            centre = (self._win - self._hop) // 2
            total = -(-(self._fed - centre) // self._hop) if self._fed > centre else 0
            n_frames = max(0, total - self._next_frame)
            short = first + (n_frames - 1) * self._hop + self._win - len(self._buf)
            buf = np.concatenate([self._buf, np.zeros(max(0, short))])
        else:
            buf = self._buf
            n_frames = max(0, (len(buf) - first - self._win) // self._hop + 1)
        events: list[ToneEvent] = []
        if n_frames <= 0:
            return events
        windows = np.lib.stride_tricks.sliding_window_view(buf, self._win)
        for chunk in range(0, n_frames, 512):  # bounded memory for long blocks
            stop = min(n_frames, chunk + 512)
            on = self._score(windows[first + chunk * self._hop:first + stop * self._hop:self._hop])
            for k in range(stop - chunk):
                i = self._next_frame
                self._next_frame += 1
                for fam, (flags, harmonic) in zip(self._families, on, strict=True):
                    events.extend(self._step(fam, i, bool(flags[k]), bool(harmonic[k])))
        keep_from = self._next_frame * self._hop
        self._buf = self._buf[keep_from - self._buf_start:]
        self._buf_start = keep_from
        return events

    def _score(self, frames: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per family, whether each frame is that tone, and whether it has energy where a voice's or
        instrument's harmonics would be (frames in stream order: the first one's phase is compared
        with the last frame of the previous call)."""
        o = self.options
        spec = np.fft.rfft(frames * self._window, axis=1)
        band = 2.0 * np.sum(np.abs(spec[:, self._band]) ** 2, axis=1) / self._win
        re_im = frames @ self._probes
        half = re_im.shape[1] // 2
        probe = (re_im[:, :half] ** 2 + re_im[:, half:] ** 2) * self._probe_scale
        probe = probe.reshape(len(frames), len(self._probe_freqs), -1).max(axis=2)
        nominal = (re_im[:, :half] - 1j * re_im[:, half:])[:, ::self._n_offsets]  # DFT at f
        previous = np.vstack([self._prev_probe, nominal[:-1]])
        self._prev_probe = nominal[-1]
        drift_hz = np.angle(nominal * np.conj(previous) * self._expected_turn) * self._hz_per_rad
        on_pitch = np.abs(drift_hz) <= o.freq_tolerance * np.array(self._probe_freqs)
        loud = band / self._wsq >= self._min_power
        share = probe / np.maximum(band, 1e-20)[:, None]
        result = []
        for fam in self._families:
            cols = [self._col[f] for f in fam.freqs]
            parts = share[:, cols]
            ok = loud & (parts.sum(axis=1) >= o.min_ratio) & np.all(on_pitch[:, cols], axis=1)
            if len(fam.freqs) > 1:  # every component must really be there
                ok &= np.all(parts >= o.min_component, axis=1)
            harmonic = np.zeros(len(frames), dtype=bool)
            if len(fam.neighbours):
                harm = np.abs(spec[:, fam.neighbours]).max(axis=1) ** 2 * self._probe_scale
                harmonic = loud & (harm > o.max_harmonic * band)
                ok &= ~harmonic
            result.append((ok, harmonic))
        return result

    # ---- bursts and cadence ----------------------------------------------

    def _tol(self, nominal: float) -> float:
        return max(self.options.tolerance_s, self.options.tolerance_frac * nominal)

    def _on_ok(self, p: TonePattern, b: _Burst) -> bool:
        d, tol = b.duration, self._tol(p.on_s)
        # A burst cut by the end of the recording may be short, never too long.
        return d <= p.on_s + tol and (b.truncated or d >= p.on_s - tol)

    def _off_ok(self, p: TonePattern, gap: float) -> bool:
        return abs(gap - p.off_s) <= self._tol(p.off_s)

    def _fits(self, p: TonePattern, bursts: list[_Burst]) -> bool:
        return all(self._on_ok(p, b) for b in bursts) and all(
            self._off_ok(p, b.start - a.end) for a, b in itertools.pairwise(bursts))

    def _step(self, fam: _Family, i: int, on: bool, harmonic: bool) -> list[ToneEvent]:
        if on:
            if fam.burst_first is None:
                fam.burst_first = i
            fam.burst_last = i
            fam.gap_harmonic = False
        elif harmonic:
            fam.gap_harmonic = True
        events: list[ToneEvent] = []
        if fam.burst_first is not None and i - fam.burst_last > (self._dropout if fam.gap_harmonic else self._loss):
            events = self._close_burst(fam, truncated=False)
        ep = fam.episode
        if ep is not None:
            t, p = self._frame_end_t(i), ep.pattern
            if fam.burst_first is None:  # off for longer than the cadence allows?
                broken = t - ep.bursts[-1].end > p.off_s + self._tol(p.off_s)
            else:  # on for longer than the cadence allows?
                broken = t - self._frame_start_t(fam.burst_first) > p.on_s + self._tol(p.on_s)
            if broken:  # the cadence stopped: the episode is over
                fam.done.append(ep)
                fam.episode = None
        return events

    def _close_burst(self, fam: _Family, truncated: bool) -> list[ToneEvent]:
        assert fam.burst_first is not None
        burst = _Burst(self._frame_start_t(fam.burst_first), self._frame_end_t(fam.burst_last),
                       truncated)
        fam.burst_first = None
        if burst.duration < self.options.min_burst_s and not truncated:
            return []
        ep = fam.episode
        if ep is not None:
            if self._fits(ep.pattern, [ep.bursts[-1], burst]):
                ep.bursts.append(burst)
                return []
            fam.done.append(ep)
            fam.episode = None
        # To confirm a new episode every burst must have its full length, even
        # one cut by the end of the stream; only a confirmed episode takes it short.
        chain = fam.candidate + [_Burst(burst.start, burst.end)]
        while chain and not any(self._fits(p, chain) for p in fam.patterns):
            chain = chain[1:]
        fam.candidate = chain
        if len(chain) < self.options.min_cycles:
            return []
        pattern = next(p for p in fam.patterns if self._fits(p, chain))
        fam.episode = _Episode(pattern, list(chain))
        fam.candidate = []
        return [ToneEvent(self.role, chain[0].start, self._now(), pattern.kind)]


def detect_tones(samples: np.ndarray, role: Role,
                 options: ToneOptions = ToneOptions()) -> list[ToneEvent]:
    """Batch form: all episodes in a whole channel (16 kHz mono)."""
    detector = ToneDetector(role, options)
    detector.feed(samples)
    return detector.flush()


# Ringback (回铃音), heard by a caller until the call is answered: China 450 Hz 1 s on / 4 s off
# (ITU-T E.180), Europe 425 Hz 1 / 4, North America 440 + 480 Hz 2 / 4: all of it between 380 and
# 500 Hz. Its bursts are told by that and by their cadence, not by the exact frequency.
RINGBACK_CADENCES = ((1.0, 4.0), (2.0, 4.0))  # (on, off) seconds
RINGBACK_BAND = (380.0, 500.0)
RINGBACK_SHARE = 0.8  # of a frame's 200-4000 Hz energy in that band: a voice or music has harmonics above it
RINGBACK_FROM_S = 5.0  # its first burst within one cadence of the recording's start
RINGBACK_LOOK_S = 90.0
RINGBACK_SLACK_S = 0.3  # a burst's start or length may be this far from the cadence


def _ring_bursts(samples: np.ndarray, options: ToneOptions = ToneOptions()) -> list[tuple[float, float]]:
    """(start, end) of the runs of frames whose energy is nearly all in the ringback band."""
    hop, win = int(round(options.frame_s * SAMPLE_RATE)), int(round(options.window_s * SAMPLE_RATE))
    n = (len(samples) - win) // hop + 1
    if n <= 0:
        return []
    frames = samples[np.arange(win)[None, :] + hop * np.arange(n)[:, None]] * np.hanning(win)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    hz = np.fft.rfftfreq(win, 1.0 / SAMPLE_RATE)
    band = power[:, (hz >= options.band_hz[0]) & (hz <= options.band_hz[1])].sum(axis=1)
    ring = power[:, (hz >= RINGBACK_BAND[0]) & (hz <= RINGBACK_BAND[1])].sum(axis=1)
    loud = band / win > 10.0 ** (options.min_level_db / 10.0)
    on = loud & (ring >= RINGBACK_SHARE * band)
    bursts: list[tuple[float, float]] = []
    for k in np.flatnonzero(on):
        t = k * options.frame_s
        if bursts and t - bursts[-1][1] <= options.max_dropout_s + options.frame_s:
            bursts[-1] = (bursts[-1][0], t + options.frame_s)
        else:
            bursts.append((t, t + options.frame_s))
    return [(a, b) for a, b in bursts if b - a >= options.min_burst_s]


def ringback(samples: np.ndarray, role: Role) -> ToneEvent | None:
    """The ringing heard from the start of a recording made from the ring rather than the pick-up
    (some recorders start at the ring; the project's calls start at pick-up): the call was answered
    when it stopped, at the end of its last burst (which the pick-up may cut short). Two bursts at
    the cadence tell it; a call picked up within the first silence of the cadence has one, and is
    timed from the recording's start. Found on none of 450 calls recorded from the pick-up (dev,
    field-style, held-out-style and outside testers' hold music, announcements, keys, busy and dial tones)."""
    bursts = _ring_bursts(np.asarray(samples[:int(RINGBACK_LOOK_S * SAMPLE_RATE)], dtype=np.float64))
    for on, off in RINGBACK_CADENCES:
        chain: list[tuple[float, float]] = []
        for a, b in bursts:
            full = abs((b - a) - on) <= RINGBACK_SLACK_S * on
            if not chain:
                if a < RINGBACK_FROM_S and full:
                    chain.append((a, b))
                continue
            if abs(a - chain[-1][0] - (on + off)) > RINGBACK_SLACK_S:
                break
            if not abs((chain[-1][1] - chain[-1][0]) - on) <= RINGBACK_SLACK_S * on:
                break  # only the last burst may be cut short by the pick-up
            chain.append((a, b))
        if len(chain) >= 2:
            return ToneEvent(role, chain[0][0], chain[-1][1], f"ringback_{int(on)}_{int(off)}")
    return None
