"""Read a recorded call into 16 kHz float32 channels, one per role.

libsndfile (via soundfile) reads WAV (PCM, mu-law, A-law), FLAC, OGG and MP3;
anything it refuses is tried once more through PyAV (FFmpeg), which
faster-whisper already depends on.

Decoding is streamed: a block at a time is decoded, only the channels of the two roles
are kept, resampled to 16 kHz as they come. So memory is bounded by the 16 kHz result
(at most MAX_DURATION_S of it), whatever the file's rate, channel count or container,
and a file is refused as soon as its header, its container, or the audio decoded so far
says it is longer than MAX_DURATION_S. A file whose audio ends before its header says
(a WAV cut short by a crash or a full disk) is loaded with `truncated` set and a note.
"""
from __future__ import annotations

import os
import re
import struct
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from monitor.events import SAMPLE_RATE, Role

AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac",
                            ".au", ".aiff", ".aif", ".caf", ".wma", ".webm", ".mka"})
MAX_DURATION_S = 2 * 3600.0  # a service call longer than this is a wrong file, not a call
MAX_RATE = 384_000  # the highest rate audio interfaces offer; above it a header is garbage
MIN_DURATION_S = 1.0  # shorter holds no call to judge (a greeting alone takes longer)
# Quieter than this at its loudest on every channel, a file holds no signal at all: a recorder that
# wrote digital silence, not a call in which nobody spoke (a line's own hiss peaks far above it).
SILENT_PEAK_DBFS = -60.0
BLOCK_S = 10.0  # decoded and resampled at a time
# Compressed containers state their length only roughly; and a recording this little short
# still holds its end (the goodbye, the hang-up), so it is judged as whole.
TRUNCATION_SLACK_S = 0.5


class AudioError(Exception):
    """A call's audio cannot be used; the message is one line for the user."""


@dataclass(frozen=True)
class ChannelRoles:
    """Which input channel carries which side of the call."""

    agent: int = 0
    caller: int = 1
    named: bool = False  # the user named the channels: a file of more than two may then be read

    def __post_init__(self) -> None:
        if self.agent < 0 or self.caller < 0 or self.agent == self.caller:
            raise ValueError("agent and caller must be two different channel numbers >= 0")


@dataclass
class CallAudio:
    path: Path
    source_rate: int
    source_channels: int
    channels: dict[Role, np.ndarray] = field(default_factory=dict)  # 16 kHz float32
    truncated: bool = False  # the audio ends before the file's header says it does
    note: str = ""  # why it counts as truncated, one line
    warnings: tuple[str, ...] = ()  # read, but not as the file said (a header worked around)

    @property
    def duration(self) -> float:
        return max((len(x) for x in self.channels.values()), default=0) / SAMPLE_RATE

    @property
    def roles(self) -> tuple[Role, ...]:
        return tuple(self.channels)


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h"


def too_long(path: Path, seconds: float | None = None) -> AudioError:
    what = f"{_hours(seconds)} of audio" if seconds else f"more than {_hours(MAX_DURATION_S)} of audio"
    return AudioError(f"{path.name}: {what} is too long for one call "
                      f"(the limit is {MAX_DURATION_S / 3600:g} h)")


class _Collector:
    """Takes decoded blocks [frames, channels] at the source rate; keeps the roles' channels
    at 16 kHz and refuses the file once more than MAX_DURATION_S has been decoded."""

    def __init__(self, path: Path, rate: int, n_channels: int, roles: ChannelRoles) -> None:
        if rate < 8000:
            raise AudioError(f"{path.name}: sample rate {rate} Hz is below telephone band (8000 Hz)")
        if rate > MAX_RATE:
            raise AudioError(f"{path.name}: sample rate {rate} Hz is no audio rate (above {MAX_RATE} Hz): "
                             "a damaged header")
        if n_channels < 1:
            raise AudioError(f"{path.name}: the audio has no channels")
        self.path, self.rate, self.n_channels = path, rate, n_channels
        if n_channels > 2 and not roles.named:
            raise AudioError(f"{path.name}: {n_channels} channels; a call recording has 1 (both sides mixed) or "
                             f"2 (agent, caller): name the two with --agent-channel and --caller-channel")
        if n_channels == 1:
            self.picks: dict[Role, int] = {"agent": 0}
        else:
            self.picks = {}
            wanted: tuple[tuple[Role, int], ...] = (("agent", roles.agent), ("caller", roles.caller))
            for role, index in wanted:
                if index >= n_channels:
                    raise AudioError(f"{path.name}: {role} channel {index} asked for, but the file "
                                     f"has {n_channels} channels")
                self.picks[role] = index
        self.limit = int(MAX_DURATION_S * rate)
        self.frames = 0
        self._block = max(1, int(BLOCK_S * rate))
        self._pending: list[np.ndarray] = []
        self._pending_frames = 0
        self._streams = {role: soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
                         for role in self.picks} if rate != SAMPLE_RATE else {}
        self._parts: dict[Role, list[np.ndarray]] = {role: [] for role in self.picks}

    def add(self, block: np.ndarray) -> None:
        if block.ndim != 2 or block.shape[1] != self.n_channels:
            raise AudioError(f"{self.path.name}: the channel count changes inside the file")
        self.frames += block.shape[0]
        if self.frames > self.limit:
            raise too_long(self.path)
        # Keep only the roles' channels (a copy: a decoder may reuse its buffer).
        self._pending.append(np.array(block[:, sorted(set(self.picks.values()))], dtype=np.float32))
        self._pending_frames += block.shape[0]
        if self._pending_frames >= self._block:
            self._flush(last=False)

    def _flush(self, last: bool) -> None:
        data = (np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]) \
            if self._pending else np.zeros((0, self.n_channels), np.float32)
        self._pending, self._pending_frames = [], 0
        if not np.all(np.isfinite(data)):
            raise AudioError(f"{self.path.name}: the audio holds NaN or infinite samples")
        columns = sorted(set(self.picks.values()))
        for role, index in self.picks.items():
            x = np.ascontiguousarray(data[:, columns.index(index)]) if data.shape[0] else \
                np.zeros(0, np.float32)
            if role in self._streams:
                x = self._streams[role].resample_chunk(x, last=last)
            if len(x):
                self._parts[role].append(np.asarray(x, dtype=np.float32))

    def finish(self) -> dict[Role, np.ndarray]:
        if self.frames == 0:
            raise AudioError(f"{self.path.name}: the file holds no audio samples")
        self._flush(last=True)
        out: dict[Role, np.ndarray] = {}
        for role in self.picks:  # one role at a time: the peak is one extra channel, not two
            parts = self._parts.pop(role)
            out[role] = np.concatenate(parts) if len(parts) != 1 else parts[0]
            parts.clear()
        return out

    def seconds(self) -> float:
        return self.frames / self.rate


@dataclass(frozen=True)
class WavLayout:
    """What a RIFF/RIFX WAV header says, read without libsndfile (which trusts it)."""

    endian: str  # "<" (RIFF) or ">" (RIFX)
    format_tag: int  # 1 PCM, 3 float, 6 A-law, 7 mu-law, 0xFFFE extensible
    channels: int
    rate: int
    byte_rate: int
    block_align: int  # bytes of one frame (a sample of every channel)
    bits: int
    data_pos: int  # where the samples start
    data_size: int  # as declared: 0 or 0xFFFFFFFF when the writer never went back to fill it in
    file_size: int

    @property
    def held(self) -> int:
        """Bytes of samples the file really holds."""
        return max(0, self.file_size - self.data_pos)

    def subtype(self) -> str | None:
        """libsndfile's name for the sample format, for reading the samples as raw."""
        fixed = {6: "ALAW", 7: "ULAW"}
        if self.format_tag in fixed:
            return fixed[self.format_tag]
        if self.format_tag == 3:
            return {32: "FLOAT", 64: "DOUBLE"}.get(self.bits)
        if self.format_tag in (1, 0xFFFE):
            return {8: "PCM_U8", 16: "PCM_16", 24: "PCM_24", 32: "PCM_32"}.get(self.bits)
        return None


def wav_layout(path: Path) -> WavLayout | None:
    """The header of a WAV file up to its data chunk; None for anything else."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[8:12] != b"WAVE" or head[:4] not in (b"RIFF", b"RIFX"):
                return None
            endian = "<" if head[:4] == b"RIFF" else ">"
            pos, fmt = 12, b""
            while pos + 8 <= size:
                f.seek(pos)
                chunk = f.read(8)
                if len(chunk) < 8:
                    return None
                cid, csize = chunk[:4], struct.unpack(endian + "I", chunk[4:])[0]
                if cid == b"fmt ":
                    fmt = f.read(min(csize, 26))
                elif cid == b"data":
                    if len(fmt) < 16:
                        return None
                    tag, ch, rate, byte_rate, align, bits = struct.unpack(endian + "HHIIHH", fmt[:16])
                    if tag == 0xFFFE and len(fmt) >= 26:  # extensible: the real tag heads its sub-format
                        tag = struct.unpack(endian + "H", fmt[24:26])[0]
                    return WavLayout(endian, tag, ch, rate, byte_rate, align, bits, pos + 8, csize, size)
                pos += 8 + csize + (csize & 1)
    except OSError:
        return None
    return None


def wav_shortfall(path: Path) -> tuple[float, float] | None:
    """(seconds the WAV header declares, seconds the file holds) when its data ends early."""
    w = wav_layout(path)
    if w is None or w.data_size in (0, 0xFFFFFFFF) or not w.byte_rate:  # length unknown (streamed)
        return None
    # A few samples short is a damaged file, not a call cut short: its end is there.
    return (w.data_size / w.byte_rate, w.held / w.byte_rate) \
        if (w.data_size - w.held) / w.byte_rate > TRUNCATION_SLACK_S else None


def _truncated_note(path: Path, declared: float, have: float, how: str = "header") -> str:
    return (f"{path.name}: recording is truncated: its {how} says {declared:.1f} s of audio, "
            f"the file holds {have:.1f} s")


def _read_up_to_damage(f: sf.SoundFile, coll: _Collector) -> None:
    """After a block failed to decode (a file cut short mid-stream): read on from the last good
    block in small steps, so up to 0.1 s, not a whole block, is lost before the damage."""
    step = max(1, coll.rate // 10)
    try:
        f.seek(coll.frames)
        while len(x := f.read(step, dtype="float32", always_2d=True)):
            coll.add(x)
    except (sf.LibsndfileError, RuntimeError):
        pass


class _Region:
    """The samples of a file as a file of their own (from 0 to their end), for libsndfile to read
    as raw: it seeks from the start of what it is given and takes its length to be all audio."""

    def __init__(self, f, start: int, size: int) -> None:
        self._f, self._start, self._size, self._pos = f, start, size, 0

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = max(0, min(self._size, base + offset))
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read(self, n: int = -1) -> bytes:
        n = self._size - self._pos if n is None or n < 0 else min(n, self._size - self._pos)
        self._f.seek(self._start + self._pos)
        data = self._f.read(n)
        self._pos += len(data)
        return data

    def close(self) -> None:
        self._f.close()


def _open_soundfile(path: Path) -> tuple[sf.SoundFile, str]:
    """The file opened for reading, and a warning when its header had to be worked around.

    A WAV whose data size says 0 (a recorder that stopped before going back to write it) holds
    its samples all the same; libsndfile believes the header and reads none, so the samples
    after the header are read as raw in the format the header gives."""
    w = wav_layout(path)
    if w is not None and not w.rate:
        raise AudioError(f"{path.name}: the WAV header gives a sample rate of 0 Hz: a damaged header")
    if w is not None and w.data_size == 0 and w.held and w.subtype() and w.channels and w.block_align:
        raw = _Region(open(path, "rb"), w.data_pos, w.held // w.block_align * w.block_align)
        try:
            f = sf.SoundFile(raw, format="RAW", subtype=w.subtype(), samplerate=w.rate, channels=w.channels,
                             endian="LITTLE" if w.endian == "<" else "BIG")
        except BaseException:
            raw.close()
            raise
        weakref.finalize(f, raw.close)  # libsndfile does not close a file object it was given
        return f, ("the WAV header says it holds no audio (a recorder that stopped "
                   f"before finishing the file); read the "
                   f"{w.held / max(1, w.byte_rate):.1f} s of audio after it")
    # as bytes: a name that is not UTF-8 (GBK from a Windows share) cannot be encoded back as UTF-8
    return sf.SoundFile(os.fsencode(path)), ""  # raises for files libsndfile cannot read


def _load_soundfile(path: Path, roles: ChannelRoles) -> CallAudio:
    opened, warning = _open_soundfile(path)
    with opened as f:
        rate, n, declared = f.samplerate, f.channels, f.frames
        if 0 < declared and declared / rate > MAX_DURATION_S:
            raise too_long(path, declared / rate)
        coll = _Collector(path, rate, n, roles)
        fmt = f.format
        note = ""
        try:
            for block in f.blocks(blocksize=coll._block, dtype="float32", always_2d=True):
                coll.add(block)
        except (sf.LibsndfileError, RuntimeError) as exc:
            _read_up_to_damage(f, coll)  # the failed block's audio before the damage is still there
            if coll.frames == 0:
                raise
            note = (f"{path.name}: recording is truncated: decoding stopped at "
                    f"{coll.seconds():.1f} s ({exc})")
    call = CallAudio(path=path, source_rate=rate, source_channels=n, channels=coll.finish(),
                     warnings=(warning,) if warning else ())
    short = wav_shortfall(path) if fmt in ("WAV", "WAVEX") else None
    if short:
        note = _truncated_note(path, *short)
    elif not note and fmt not in ("MP3",) and declared > 0 and \
            (declared - coll.frames) / rate > TRUNCATION_SLACK_S:
        note = _truncated_note(path, declared / rate, coll.seconds())
    call.truncated, call.note = bool(note), note
    return call


def _frame_array(frame) -> np.ndarray:
    arr = frame.to_ndarray()
    n = frame.layout.nb_channels if hasattr(frame.layout, "nb_channels") else len(frame.layout.channels)
    arr = arr.T if frame.format.is_planar else arr.reshape(-1, n)
    if arr.dtype.kind in "iu":
        arr = arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)
    return arr.astype(np.float32, copy=False)


class _Overrun(Exception):
    """The container said the audio is shorter than it turns out to be."""


def _audio_stream(path: Path, container):
    stream = next((s for s in container.streams if s.type == "audio"), None)
    if stream is None:
        raise AudioError(f"{path.name}: no audio stream in the file")
    return stream


def _av_count(path: Path) -> float:
    """Seconds of audio in the file, decoded and thrown away; refuses past the limit."""
    import av

    seconds = 0.0
    with av.open(str(path)) as container:
        stream = _audio_stream(path, container)
        try:
            for frame in container.decode(stream):
                seconds += frame.samples / (frame.sample_rate or stream.rate or SAMPLE_RATE)
                if seconds > MAX_DURATION_S:
                    raise too_long(path)
        except AudioError:
            raise
        except Exception:  # noqa: BLE001, S110 - damage: the collecting pass reports it
            pass
    return seconds


def _av_collect(path: Path, roles: ChannelRoles, bound: float | None) -> tuple[_Collector | None, str]:
    import av

    coll: _Collector | None = None
    with av.open(str(path)) as container:
        stream = _audio_stream(path, container)
        try:
            for frame in container.decode(stream):
                block = _frame_array(frame)
                if coll is None:
                    coll = _Collector(path, int(frame.sample_rate or stream.rate), block.shape[1], roles)
                coll.add(block)
                if bound is not None and coll.seconds() > bound:
                    raise _Overrun
        except (AudioError, _Overrun, MemoryError):
            raise
        except Exception as exc:
            if coll is None or coll.frames == 0:
                raise
            return coll, (f"{path.name}: recording is truncated: decoding stopped at "
                          f"{coll.seconds():.1f} s ({exc.__class__.__name__})")
    return coll, ""


def _load_av(path: Path, roles: ChannelRoles) -> CallAudio:
    import av  # imported lazily: only for formats libsndfile does not read

    try:
        with av.open(str(path)) as container:
            stream = _audio_stream(path, container)
            declared = container.duration / 1e6 if container.duration else None
            if declared is None and stream.duration and stream.time_base:
                declared = float(stream.duration * stream.time_base)
        if declared and declared > MAX_DURATION_S:
            raise too_long(path, declared)
        if declared:  # trusted only as far as it goes: more audio than said means count first
            bound = declared * 1.01 + TRUNCATION_SLACK_S
        else:  # no length in the container: count what it holds first, keeping nothing
            bound = _av_count(path) + TRUNCATION_SLACK_S
        try:
            coll, note = _av_collect(path, roles, bound)
        except _Overrun:
            _av_count(path)  # refuses a file past the limit before anything is kept
            coll, note = _av_collect(path, roles, None)
    except (AudioError, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - PyAV raises many error types; the user needs one line
        raise AudioError(f"{path.name}: cannot decode audio ({exc.__class__.__name__}: {exc})") from None
    if coll is None:
        raise AudioError(f"{path.name}: the file holds no audio samples")
    call = CallAudio(path=path, source_rate=coll.rate, source_channels=coll.n_channels,
                     channels=coll.finish())
    if not note and declared and declared - coll.seconds() > max(TRUNCATION_SLACK_S, 0.01 * declared):
        note = _truncated_note(path, declared, coll.seconds(), "container")
    call.truncated, call.note = bool(note), note
    return call


def resample(x: np.ndarray, rate: int) -> np.ndarray:
    if rate == SAMPLE_RATE:
        return np.ascontiguousarray(x, dtype=np.float32)
    return soxr.resample(x, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)


def load_call(path: str | Path, roles: ChannelRoles = ChannelRoles()) -> CallAudio:
    """Decode a call recording; a mono file yields only the agent channel."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path.name}: the file is empty")
    try:
        call = _load_soundfile(path, roles)
    except AudioError:
        raise
    except (sf.LibsndfileError, RuntimeError, TypeError):
        call = _load_av(path, roles)
    if call.duration < MIN_DURATION_S:
        raise AudioError(f"{path.name}: {call.duration:.2f} s of audio is too short to be a call "
                         f"(at least {MIN_DURATION_S:g} s)")
    peak = max((float(np.max(np.abs(x))) for x in call.channels.values() if len(x)), default=0.0)
    if peak < 10.0 ** (SILENT_PEAK_DBFS / 20.0):
        raise AudioError(f"{path.name}: silent on every channel (no sound louder than {SILENT_PEAK_DBFS:g} dBFS): "
                         "an empty or failed recording, not a call to judge")
    return call


def expand_inputs(paths: list[str | Path]) -> tuple[list[Path], list[str]]:
    """Files to score: folders expand to their audio files (sorted); returns (files, errors)."""
    files: list[Path] = []
    errors: list[str] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found: list[Path] = []

            def unreadable(exc: OSError) -> None:  # a subfolder it may not list is said, not skipped
                errors.append(readable(f"{exc.filename}: cannot read this folder ({exc.strerror})"))

            for folder, _, names in os.walk(p, onerror=unreadable):
                for n in names:
                    q = Path(folder) / n
                    if q.suffix.lower() not in AUDIO_SUFFIXES:
                        continue
                    if q.is_file():
                        found.append(q)
                    elif q.is_symlink():
                        errors.append(readable(f"{q}: a link to a file that is not there"))
            if not found:
                errors.append(f"{p}: no audio files in this folder")
            files.extend(sorted(found))
        elif p.exists():
            files.append(p)
        else:
            errors.append(f"{p}: no such file or folder")
    return files, errors


def readable(text: str) -> str:
    """Text that holds a file name, fit to print and to write: bytes the system could not decode
    (kept as surrogates: a GBK name from a Windows share) read as GB18030, else as replacement
    marks; control characters (an escape sequence in a name would drive the terminal) as marks."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "surrogateescape")
        try:
            text = raw.decode("gb18030")
        except UnicodeDecodeError:
            text = raw.decode("utf-8", "replace")
    return _CONTROL.sub("\ufffd", text)


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")  # C0 and C1 but tab: one line, no escapes


def call_key(call: str) -> str:
    """A call's name or path without the audio file's extension: its key in a profile map or a
    --meta CSV (dev-000.wav and dev-000 alike; day1/0001 for a file that shares its name with
    another day's)."""
    suffix = Path(call).suffix
    return call[:-len(suffix)] if suffix.lower() in AUDIO_SUFFIXES else call


def call_names(files: list[Path]) -> dict[Path, str]:
    """The name each call goes by in the report: its file name, or where two files share one
    (day1/0001.wav, day2/0001.wav, found in one folder's subfolders), its path from the folder the
    files with that name share, so that their rows, --profile-map keys and CSV lines stay apart."""
    by_name: dict[str, list[Path]] = {}
    for f in files:
        by_name.setdefault(f.name, []).append(f)
    names: dict[Path, str] = {}
    for name, same in by_name.items():
        where = {Path(os.path.abspath(f)) for f in same}  # a symlink keeps its own name and folder
        if len(where) == 1:
            names.update((f, readable(name)) for f in same)
            continue
        base = Path(os.path.commonpath([w.parent for w in where]))
        names.update((f, readable(Path(os.path.abspath(f)).relative_to(base).as_posix())) for f in same)
    return names

