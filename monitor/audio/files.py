"""Read a recorded call into 16 kHz float32 channels, one per role.

libsndfile (via soundfile) reads WAV (PCM, mu-law, A-law), FLAC, OGG and MP3;
anything it refuses is tried once more through PyAV (FFmpeg), which
faster-whisper already depends on.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from monitor.events import Role

SAMPLE_RATE = 16000
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac",
                            ".au", ".aiff", ".aif", ".caf", ".wma", ".webm"})
MAX_DURATION_S = 2 * 3600.0  # a service call longer than this is a wrong file, not a call


class AudioError(Exception):
    """A call's audio cannot be used; the message is one line for the user."""


@dataclass(frozen=True)
class ChannelRoles:
    """Which input channel carries which side of the call."""

    agent: int = 0
    caller: int = 1

    def __post_init__(self) -> None:
        if self.agent < 0 or self.caller < 0 or self.agent == self.caller:
            raise ValueError("agent and caller must be two different channel numbers >= 0")


@dataclass
class CallAudio:
    path: Path
    source_rate: int
    source_channels: int
    channels: dict[Role, np.ndarray] = field(default_factory=dict)  # 16 kHz float32

    @property
    def duration(self) -> float:
        return max((len(x) for x in self.channels.values()), default=0) / SAMPLE_RATE

    @property
    def roles(self) -> tuple[Role, ...]:
        return tuple(self.channels)


def _decode_soundfile(path: Path) -> tuple[np.ndarray, int]:
    with sf.SoundFile(str(path)) as f:
        if f.frames > 0 and f.frames / f.samplerate > MAX_DURATION_S:
            raise AudioError(f"{path.name}: {f.frames / f.samplerate / 3600:.1f} h of audio is too long for one call")
        data = f.read(dtype="float32", always_2d=True)
        return data, f.samplerate


def _decode_av(path: Path) -> tuple[np.ndarray, int]:
    import av  # imported lazily: only for formats libsndfile does not read

    try:
        with av.open(str(path)) as container:
            stream = next((s for s in container.streams if s.type == "audio"), None)
            if stream is None:
                raise AudioError(f"{path.name}: no audio stream in the file")
            rate = stream.rate or stream.codec_context.sample_rate
            blocks = []
            for frame in container.decode(stream):
                arr = frame.to_ndarray()
                if frame.format.is_planar:
                    arr = arr.T
                else:
                    arr = arr.reshape(-1, frame.layout.nb_channels if hasattr(frame.layout, "nb_channels") else len(frame.layout.channels))
                if arr.dtype.kind == "i":
                    arr = arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)
                blocks.append(arr.astype(np.float32))
    except AudioError:
        raise
    except Exception as exc:  # PyAV raises many error types; the user needs one line
        raise AudioError(f"{path.name}: cannot decode audio ({exc.__class__.__name__}: {exc})") from None
    if not blocks:
        raise AudioError(f"{path.name}: the file holds no audio samples")
    return np.concatenate(blocks, axis=0), int(rate)


def decode(path: Path) -> tuple[np.ndarray, int]:
    """Samples as float32 [frames, channels] and the file's sample rate."""
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path.name}: the file is empty")
    try:
        data, rate = _decode_soundfile(path)
    except AudioError:
        raise
    except (sf.LibsndfileError, RuntimeError, TypeError):
        data, rate = _decode_av(path)
    if data.shape[0] == 0:
        raise AudioError(f"{path.name}: the file holds no audio samples")
    if not np.all(np.isfinite(data)):
        raise AudioError(f"{path.name}: the audio holds NaN or infinite samples")
    return data, rate


def resample(x: np.ndarray, rate: int) -> np.ndarray:
    if rate == SAMPLE_RATE:
        return np.ascontiguousarray(x, dtype=np.float32)
    return soxr.resample(x, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)


def load_call(path: str | Path, roles: ChannelRoles = ChannelRoles()) -> CallAudio:
    """Decode a call recording; a mono file yields only the agent channel."""
    path = Path(path)
    data, rate = decode(path)
    if rate < 8000:
        raise AudioError(f"{path.name}: sample rate {rate} Hz is below telephone band (8000 Hz)")
    n = data.shape[1]
    call = CallAudio(path=path, source_rate=rate, source_channels=n)
    if n == 1:
        call.channels["agent"] = resample(data[:, 0], rate)
        return call
    for role, index in (("agent", roles.agent), ("caller", roles.caller)):
        if index >= n:
            raise AudioError(f"{path.name}: {role} channel {index} asked for, but the file has {n} channels")
        call.channels[role] = resample(data[:, index], rate)
    return call


def expand_inputs(paths: list[str | Path]) -> tuple[list[Path], list[str]]:
    """Files to score: folders expand to their audio files (sorted); returns (files, errors)."""
    files: list[Path] = []
    errors: list[str] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in AUDIO_SUFFIXES)
            if not found:
                errors.append(f"{p}: no audio files in this folder")
            files.extend(found)
        elif p.exists():
            files.append(p)
        else:
            errors.append(f"{p}: no such file or folder")
    return files, errors
