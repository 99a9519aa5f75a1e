"""Voice-activity segmenter: webrtcvad decisions turned into utterances.

A plain object: feed 16 kHz float32 samples of one channel in order, read the
utterances it has closed. No threads, no I/O, no clock but the sample count.

Why more than webrtcvad: at 10 dB SNR real background noise makes webrtcvad
call almost every frame speech, and whole turns merge. A frame counts as
voiced only if webrtcvad says so AND its energy stands clear of a tracked
noise floor. Hysteresis (start/stop windows) keeps syllable gaps inside one
utterance; pre-roll keeps first syllables that webrtcvad is late to catch.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import webrtcvad

from monitor.audio.levels import frame_levels
from monitor.events import SAMPLE_RATE, Role, Utterance


@dataclass(frozen=True)
class VadOptions:
    """Segmenter settings (seconds unless said otherwise)."""

    frame_ms: int = 30  # webrtcvad takes 10, 20 or 30 ms frames
    aggressiveness: int = 3  # webrtcvad mode 0..3; 3 rejects the most noise
    start_window_s: float = 0.24  # look-back window for deciding speech has started
    start_ratio: float = 0.375  # voiced share of the start window that opens an utterance (3 of 8 frames: a short 您好 counts)
    stop_silence_s: float = 0.55  # this much unvoiced audio closes an utterance
    pre_roll_s: float = 0.4  # audio kept before the detected start (soft onsets like 您好)
    # ... for the agent channel's first utterance: the greeting, whose first syllable 您 is soft and
    # on a noisy line (AGC lifting the noise before anyone speaks) rises barely above it, so the
    # start is detected late and 您好 is lost; nothing said before it can be lost by reaching
    # back. (Not the caller's: their first words answer the greeting, and reaching back would
    # count the greeting's end as both talking at once.)
    first_pre_roll_s: float = 1.0
    post_pad_s: float = 0.2  # audio kept after the last voiced frame
    min_utterance_s: float = 0.25  # shorter bursts are clicks, not speech
    max_utterance_s: float = 14.0  # force a cut so one window of the model holds it
    # Whisper drops or garbles the end of long fast stretches: once an utterance is this
    # long, a shorter pause (a comma's) closes it, so long turns are cut between clauses.
    long_utterance_s: float = 5.0
    long_stop_silence_s: float = 0.3
    floor_margin_db: float = 6.0  # a voiced frame must be this far above the noise floor
    # Voiced speech is periodic (pitch 80-400 Hz); most background noise is not.
    # Normalised autocorrelation peak a frame needs; 0 turns the check off.
    min_periodicity: float = 0.6
    # A key press (DTMF) is periodic too; a frame with this share of its energy at one key row and one
    # key column frequency is no voice (speech frames of the dev and field-style calls: 99.9 % under
    # 0.67, at most 0.85; key presses 0.99). 1 turns the check off.
    max_dtmf_share: float = 0.9
    floor_rise_db_per_s: float = 1.5  # how fast the floor follows rising noise
    absolute_floor_db: float = -60.0  # digital silence is never speech
    # webrtcvad turns down clear voiced speech below about -37 dBFS: a headset mic set 18-20 dB too
    # low lost the greeting in half the dev calls. Frames are handed to it `lift_db` louder (the
    # floor and periodicity checks see them as they are); `segment` lifts a channel whose loudest
    # speech is under `quiet_channel_db` up to `lift_to_db`. Normal lines (-16 to -25 dBFS) are not
    # lifted: lifting every quiet frame changed words on the field-style sets both ways.
    lift_db: float = 0.0
    quiet_channel_db: float = -28.0
    lift_to_db: float = -20.0
    max_lift_db: float = 24.0

    def __post_init__(self) -> None:
        if self.frame_ms not in (10, 20, 30):
            raise ValueError("frame_ms must be 10, 20 or 30")
        if not 0 <= self.aggressiveness <= 3:
            raise ValueError("aggressiveness must be 0..3")


# Telephone keys (DTMF, ITU-T Q.23): one row and one column frequency sound together.
DTMF_ROWS = (697.0, 770.0, 852.0, 941.0)
DTMF_COLS = (1209.0, 1336.0, 1477.0, 1633.0)


def dtmf_share(frame: np.ndarray) -> float:
    """Share of a frame's 300-3400 Hz energy at its strongest key row and key column (a bin either
    side of each), when both sound: near 1 for a key press, low for a voice, whose energy is spread
    over harmonics."""
    n = len(frame)
    spec = np.abs(np.fft.rfft(frame * np.hanning(n))) ** 2
    hz = SAMPLE_RATE / n
    band = float(spec[int(300 / hz):int(3400 / hz) + 1].sum()) + 1e-20

    def at(f: float) -> float:
        k = int(round(f / hz))
        return float(spec[k - 1:k + 2].sum())
    row, col = max(at(f) for f in DTMF_ROWS) / band, max(at(f) for f in DTMF_COLS) / band
    return row + col if min(row, col) >= 0.15 else 0.0  # both tones: one alone is a hum or a note


_MIN_LAG = SAMPLE_RATE // 400  # 400 Hz: highest pitch looked for
_MAX_LAG = SAMPLE_RATE // 80  # 80 Hz: lowest


def periodicity(frame: np.ndarray) -> float:
    """Peak normalised cross-correlation over pitch lags (0..1).

    Each lag k compares the same number of samples, x[0:m] with x[k:k+m]
    (m = frame - longest lag), so a low voice, whose period covers a third of
    the frame, scores as high as a high one, and short overlaps do not let noise
    look periodic.
    """
    x = frame.astype(np.float64) - frame.mean()
    n = len(x)
    hi = min(_MAX_LAG, n // 2)
    m = n - hi
    head = x[:m]
    e_head = float(head @ head)
    if e_head <= 1e-12:
        return 0.0
    lags = np.arange(_MIN_LAG, hi + 1)
    windows = np.lib.stride_tricks.sliding_window_view(x, m)[lags]  # x[k:k+m] per lag
    num = windows @ head
    e_tail = np.einsum("ij,ij->i", windows, windows)
    denom = np.sqrt(e_head * e_tail)
    ok = denom > 1e-12
    return float(np.max(num[ok] / denom[ok])) if ok.any() else 0.0


class VadSegmenter:
    """Streaming utterance segmenter for one channel."""

    def __init__(self, role: Role, options: VadOptions = VadOptions(), t0: float = 0.0) -> None:
        self.role = role
        self.opt = options
        self._vad = webrtcvad.Vad(options.aggressiveness)
        self._lift = 10.0 ** (options.lift_db / 20.0)
        self._frame = SAMPLE_RATE * options.frame_ms // 1000
        self._dt = options.frame_ms / 1000.0
        self._t0 = t0
        self._pending = np.zeros(0, dtype=np.float32)
        self._frames_done = 0
        # Ring of recent frames for pre-roll and the start decision.
        self._history: deque[tuple[np.ndarray, bool]] = deque(
            maxlen=max(1, round(max(options.pre_roll_s, options.first_pre_roll_s, options.start_window_s) / self._dt)))
        self._opened_any = False  # an utterance has been opened on this channel
        self._roll = options.pre_roll_s  # the pre-roll of the utterance open now
        self._floor_db: float | None = None
        self._in_speech = False
        self._utt_frames: list[np.ndarray] = []
        self._utt_start = 0.0
        self._detected_at = 0.0
        self._last_voiced_end = 0.0
        self._voiced_ends: list[float] = []  # of the open utterance's voiced frames (a mask may void some)
        self._silence_run = 0
        self._masked: list[tuple[float, float]] = []

    # -- public ---------------------------------------------------------------
    @property
    def now(self) -> float:
        """Seconds of audio consumed (from the segmenter's t0)."""
        return self._t0 + self._frames_done * self._dt

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    @property
    def open_since(self) -> float | None:
        """Start of the utterance still going on, if any."""
        return self._utt_start if self._in_speech else None

    def open_samples(self) -> np.ndarray:
        """Audio of the utterance still going on (for partial transcription)."""
        if not self._in_speech:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(self._utt_frames)

    def mask(self, start: float, end: float) -> list[Utterance]:
        """Treat [start, end) as non-speech (e.g. a call-progress tone); returns the utterance this closes.

        Live, a tone is confirmed about a second after it began; an utterance the
        tone itself opened (starting within the pre-roll of `start`) is dropped, and
        one open since before it ends where its speech before `start` ended, as if
        the tone had been known all along (as batch scoring knows it).
        """
        self._masked.append((start, end))
        if not self._in_speech:
            return []
        if self._utt_start >= start - self._roll - 1e-9:
            self._end_open()
            return []
        before = [e for e in self._voiced_ends if e - self._dt < start - 1e-9 or e - self._dt >= end]
        if len(before) == len(self._voiced_ends):
            return []  # none of its voiced frames were in the masked span
        if not before:  # a piece cut off for length with no speech before the mask: nothing to close
            self._end_open()
            return []
        self._voiced_ends = before
        self._last_voiced_end = before[-1]
        self._silence_run = round((self.now - self._last_voiced_end) / self._dt)
        if self._silence_run * self._dt >= self._stop_silence() - 1e-9:
            u = self._close(self._last_voiced_end)
            return [u] if u is not None else []
        return []

    def feed(self, samples: np.ndarray) -> list[Utterance]:
        """Append audio; returns utterances closed by it."""
        x = np.asarray(samples, dtype=np.float32)
        if self._pending.size:
            x = np.concatenate([self._pending, x])
        out: list[Utterance] = []
        n_full = len(x) // self._frame
        for i in range(n_full):
            u = self._step(x[i * self._frame:(i + 1) * self._frame])
            if u is not None:
                out.append(u)
        self._pending = x[n_full * self._frame:].copy()
        return out

    def flush(self) -> list[Utterance]:
        """End of stream: close the utterance still open."""
        out = []
        if self._in_speech:
            u = self._close(self._last_voiced_end)
            if u is not None:
                out.append(u)
        self._pending = np.zeros(0, dtype=np.float32)
        return out

    # -- internals ------------------------------------------------------------
    def _is_voiced(self, frame: np.ndarray, t: float) -> bool:
        energy_db = 10.0 * np.log10(float(np.mean(frame * frame)) + 1e-12)
        if self._floor_db is None:
            self._floor_db = energy_db
        elif energy_db < self._floor_db:
            self._floor_db = 0.6 * self._floor_db + 0.4 * energy_db
        else:
            self._floor_db += self.opt.floor_rise_db_per_s * self._dt
        if energy_db < self.opt.absolute_floor_db:
            return False
        if energy_db < self._floor_db + self.opt.floor_margin_db:
            return False
        if any(s <= t < e for s, e in self._masked):
            return False
        if self.opt.min_periodicity > 0 and periodicity(frame) < self.opt.min_periodicity:
            return False
        if self.opt.max_dtmf_share < 1.0 and dtmf_share(frame) >= self.opt.max_dtmf_share:
            return False
        pcm = (np.clip(frame * self._lift, -1.0, 1.0) * 32767.0).astype(np.int16).tobytes()
        return self._vad.is_speech(pcm, SAMPLE_RATE)

    def _step(self, frame: np.ndarray) -> Utterance | None:
        t = self.now
        voiced = self._is_voiced(frame, t)
        self._frames_done += 1
        result = None
        if not self._in_speech:
            self._history.append((frame, voiced))
            window = max(1, round(self.opt.start_window_s / self._dt))
            recent = list(self._history)[-window:]
            if voiced and sum(v for _, v in recent) >= self.opt.start_ratio * window:
                first = not self._opened_any and self.role == "agent"
                self._roll = self.opt.first_pre_roll_s if first else self.opt.pre_roll_s
                pre = max(1, round(self._roll / self._dt))
                kept = [f for f, _ in list(self._history)[-pre:]]
                self._opened_any = True
                self._in_speech = True
                self._utt_frames = kept
                self._utt_start = self.now - len(kept) * self._dt
                first_voiced = next(i for i, (_, v) in enumerate(recent) if v)
                self._detected_at = self.now - (len(recent) - first_voiced) * self._dt
                self._last_voiced_end = self.now
                self._voiced_ends = [self.now]
                self._silence_run = 0
                self._history.clear()
            return None
        self._utt_frames.append(frame)
        if voiced:
            self._last_voiced_end = self.now
            self._voiced_ends.append(self.now)
            self._silence_run = 0
        else:
            self._silence_run += 1
        if self._silence_run * self._dt >= self._stop_silence():
            result = self._close(self._last_voiced_end)
        elif self.now - self._utt_start >= self.opt.max_utterance_s:
            result = self._close(self.now, keep_open=True)
        return result

    def _stop_silence(self) -> float:
        """Unvoiced audio that closes the open utterance: shorter once it is long."""
        long = self.now - self._utt_start >= self.opt.long_utterance_s
        return self.opt.long_stop_silence_s if long else self.opt.stop_silence_s

    def _end_open(self) -> None:
        """No utterance is open any more (its audio is let go)."""
        self._in_speech = False
        self._utt_frames = []
        self._silence_run = 0

    def _close(self, voiced_end: float, keep_open: bool = False) -> Utterance | None:
        end = min(self.now, voiced_end + self.opt.post_pad_s)
        n_keep = max(0, round((end - self._utt_start) / self._dt))
        audio = np.concatenate(self._utt_frames[:n_keep]) if n_keep else np.zeros(0, np.float32)
        start = self._utt_start
        heard = voiced_end - max(start, self._detected_at)
        if keep_open:
            # A forced cut in running speech: the next piece starts right here.
            self._utt_frames = []
            self._voiced_ends = []
            self._utt_start = self._detected_at = self.now
        else:
            self._end_open()
        if heard < self.opt.min_utterance_s:  # judged without the pre-roll
            return None
        return Utterance(role=self.role, start=start, end=end, samples=audio)


def segment(samples: np.ndarray, role: Role, options: VadOptions = VadOptions(),
            masked: Sequence[tuple[float, float]] = ()) -> list[Utterance]:
    """Batch wrapper: all utterances of one channel (a quiet one lifted for webrtcvad: `channel_lift_db`)."""
    seg = VadSegmenter(role, replace(options, lift_db=channel_lift_db(samples, options)))
    for s, e in masked:
        seg.mask(s, e)
    return seg.feed(samples) + seg.flush()


def channel_lift_db(samples: np.ndarray, options: VadOptions = VadOptions()) -> float:
    """How much louder webrtcvad should hear a channel whose loudest speech (the 99th percentile of
    its frames' levels) is under `quiet_channel_db`: up to `lift_to_db`, at most `max_lift_db`."""
    levels = frame_levels(samples, SAMPLE_RATE * options.frame_ms // 1000)
    sounding = levels[levels > options.absolute_floor_db]
    if len(sounding) == 0:
        return 0.0
    loud = float(np.percentile(sounding, 99))
    if loud >= options.quiet_channel_db:
        return 0.0
    return min(options.max_lift_db, options.lift_to_db - loud)
