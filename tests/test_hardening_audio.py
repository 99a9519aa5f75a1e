"""Audio decoding limits and truncated recordings.

A 3-hour silent Matroska file is 3.4 MB on disk: it must be refused by its decoded length
(also when renamed .wav, when its container states no length or a false one) without
decoding it into memory. A WAV whose data ends before its header says is scored with a
warning, `truncated: true` in the report, and no hang-up judgement.
"""
from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from monitor.audio.files import AudioError, ChannelRoles, load_call
from monitor.events import Transcript
from monitor.phrasebook import load_profile
from monitor.pipeline import score_call

REPO = Path(__file__).resolve().parents[1]
RSS_LIMIT_MB = 400  # the refused 3-hour file: a fraction of this (it was 4.99 GB)
AS_LIMIT = 3 << 30  # address space of the measuring subprocess: the old code fails, not the host


def silent_matroska(path: Path, seconds: int, seekable: bool = True) -> Path:
    """Near-silent 8 kHz stereo FLAC in Matroska (a -54 dBFS buzz: digital silence is refused as an
    empty recording); not seekable: the muxer cannot write the length."""
    import av

    with open(path, "wb") as out:
        class Pipe(io.RawIOBase):
            def writable(self) -> bool:
                return True

            def write(self, b) -> int:
                return out.write(b)

        with av.open(out if seekable else Pipe(), "w", format="matroska") as c:
            s = c.add_stream("flac", rate=8000, layout="stereo")
            block = 8000 * 60
            for n in range(0, 8000 * seconds, block):
                buzz = (np.arange(2 * block, dtype=np.int16) % 2) * 128 - 64
                fr = av.AudioFrame.from_ndarray(buzz.reshape(1, -1), format="s16", layout="stereo")
                fr.rate, fr.pts = 8000, n
                for p in s.encode(fr):
                    c.mux(p)
            for p in s.encode(None):
                c.mux(p)
    return path


def lie_about_length(src: Path, dst: Path, seconds: float) -> Path:
    """The same file with the Matroska Duration element saying `seconds`."""
    data = bytearray(src.read_bytes())
    at = data.find(b"\x44\x89\x88")  # Duration, 8-byte float, in ms (TimecodeScale 1e6)
    assert at > 0
    data[at + 3:at + 11] = struct.pack(">d", seconds * 1000.0)
    dst.write_bytes(bytes(data))
    return dst


@pytest.fixture(scope="module")
def long_files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("long")
    mka = silent_matroska(d / "silent-3h.mka", 3 * 3600)
    assert mka.stat().st_size < 5_000_000
    renamed = d / "call.wav"
    shutil.copy(mka, renamed)
    return {
        "mka": mka,
        "renamed to .wav": renamed,
        "no length in the container": silent_matroska(d / "nolength.mka", 3 * 3600, seekable=False),
        "container says 10 minutes": lie_about_length(mka, d / "lying.mka", 600),
    }


MEASURE = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
from monitor.audio.files import AudioError, load_call
try:
    load_call(sys.argv[1])
    out = "loaded"
except AudioError as exc:
    out = "AudioError: " + str(exc)
except MemoryError:
    out = "MemoryError"
# VmHWM, not ru_maxrss: ru_maxrss survives exec and would count the forked parent (pytest, maybe a model).
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({{"out": out, "rss_mb": hwm / 1024}}))
"""


@pytest.mark.parametrize("case", ["mka", "renamed to .wav", "no length in the container",
                                  "container says 10 minutes"])
def test_a_three_hour_file_is_refused_by_decoded_length_with_bounded_memory(long_files, case):
    path = long_files[case]
    r = subprocess.run([sys.executable, "-c", MEASURE.format(limit=AS_LIMIT), str(path)],
                       capture_output=True, text=True, timeout=120, cwd=REPO, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["out"].startswith(f"AudioError: {path.name}: ") and "too long for one call" in got["out"], got
    assert "\n" not in got["out"]
    assert got["rss_mb"] < RSS_LIMIT_MB, f"{case}: peak RSS {got['rss_mb']:.0f} MB"


def test_a_long_call_under_the_limit_still_loads(tmp_path):
    path = silent_matroska(tmp_path / "ten-minutes.mka", 600)
    call = load_call(path)
    assert call.roles == ("agent", "caller") and call.duration == pytest.approx(600, abs=0.1)
    assert not call.truncated


def test_streamed_resampling_matches_the_whole_file_resampling(tmp_path):
    """Decoding in blocks must not change the audio the rest of the pipeline hears."""
    import soxr

    rate = 8000
    t = np.arange(rate * 25) / rate
    x = np.stack([0.3 * np.sin(2 * np.pi * 300 * t), 0.2 * np.sin(2 * np.pi * 700 * t)], 1)
    sf.write(tmp_path / "a.wav", x, rate, subtype="PCM_16")
    ref, _ = sf.read(tmp_path / "a.wav", dtype="float32")
    call = load_call(tmp_path / "a.wav")
    for role, col in (("agent", 0), ("caller", 1)):
        whole = soxr.resample(ref[:, col], rate, 16000, quality="HQ")
        assert np.array_equal(call.channels[role], whole.astype(np.float32))


# -- truncated recordings ------------------------------------------------------------------

def cut_wav(src_audio: Path, dst: Path, keep: float) -> Path:
    """A WAV whose data stops at `keep` of what its header declares (a crash mid-recording)."""
    x, rate = sf.read(src_audio, dtype="int16")
    buf = io.BytesIO()
    sf.write(buf, x, rate, format="WAV", subtype="PCM_16")
    data = buf.getvalue()
    header = data.index(b"data") + 8
    dst.write_bytes(data[:header + int((len(data) - header) * keep) // 4 * 4])
    return dst


def test_a_wav_cut_short_is_loaded_and_marked_truncated(tmp_path):
    rate = 8000
    t = np.arange(rate * 10) / rate
    sf.write(tmp_path / "full.wav", np.stack([np.sin(t), np.cos(t)], 1) * 0.3, rate, subtype="PCM_16")
    cut = cut_wav(tmp_path / "full.wav", tmp_path / "cut.wav", 0.6)
    call = load_call(cut)
    assert call.truncated and call.duration == pytest.approx(6.0, abs=0.05)
    assert call.note.startswith("cut.wav: ") and "10.0 s" in call.note and "6.0 s" in call.note
    assert "\n" not in call.note
    assert not load_call(tmp_path / "full.wav").truncated
    from monitor.audio.files import wav_shortfall

    assert wav_shortfall(tmp_path / "full.wav") is None
    # A few samples short still holds the call's end: judged as whole, no warning.
    few = cut_wav(tmp_path / "full.wav", tmp_path / "few.wav", 0.999)
    assert not load_call(few).truncated and wav_shortfall(few) is None


def test_a_flac_cut_short_keeps_the_audio_before_the_damage(tmp_path, samples_dir):
    """Decoding stops inside a 10 s block: the block's audio before the damage is read too."""
    data = (samples_dir / "demo-zte.flac").read_bytes()
    (tmp_path / "cut.flac").write_bytes(data[:int(len(data) * 0.56)])
    x, rate = sf.read(samples_dir / "demo-zte.flac", dtype="float32", always_2d=True)
    with sf.SoundFile(tmp_path / "cut.flac") as f:  # what the file still holds, read small
        readable = 0
        try:
            while len(block := f.read(rate // 100, always_2d=True)):
                readable += len(block)
        except sf.LibsndfileError:
            pass
    assert 0.4 * len(x) < readable < 0.7 * len(x) and readable % (10 * rate) > rate  # inside a block
    call = load_call(tmp_path / "cut.flac")
    assert call.truncated and "decoding stopped" in call.note
    assert call.duration == pytest.approx(readable / rate, abs=0.15)


def test_a_streamed_wav_with_an_unknown_length_is_not_truncated(tmp_path):
    rate = 8000
    t = np.arange(rate * 2) / rate
    sf.write(tmp_path / "s.wav", 0.1 * np.stack([np.sin(2 * np.pi * 300 * t)] * 2, axis=1), rate, subtype="PCM_16")
    data = bytearray((tmp_path / "s.wav").read_bytes())
    at = data.index(b"data")
    data[at + 4:at + 8] = b"\xff\xff\xff\xff"  # what a writer that never finished the header leaves
    (tmp_path / "s.wav").write_bytes(bytes(data))
    call = load_call(tmp_path / "s.wav")
    assert not call.truncated and call.duration == pytest.approx(2.0, abs=0.01)


class NoWords:
    """A transcriber that hears nothing: enough to run the rules on the audio's shape."""

    def transcribe(self, utts, before=None):
        return [Transcript(u.role, u.start, u.end, "", speech=False, dropped_because="empty") for u in utts]


def test_a_truncated_call_is_not_judged_for_its_end(tmp_path, samples_dir):
    """The recording stops before its header says: who hung up, and whether the goodbye came, are
    in the part that is missing."""
    cut = cut_wav(samples_dir / "demo-zte.flac", tmp_path / "cut.wav", 0.8)
    report = score_call(cut, load_profile("zte"), NoWords())
    assert report.truncated and {"hangup", "closing"} <= set(report.not_judged)
    assert not {"hangup", "closing", "closing_offer"} & {v.rule for v in report.violations}
    d = report.to_dict()
    assert d["truncated"] is True and "truncated" in d["note"] and "hangup" in d["not_judged"]
    whole = score_call(samples_dir / "demo-zte.flac", load_profile("zte"), NoWords())
    assert "closing" in {v.rule for v in whole.violations}  # heard no words: no goodbye either
    assert whole.to_dict()["truncated"] is False and "note" not in whole.to_dict()
    assert not {"hangup", "closing"} & set(whole.not_judged)


def test_replaying_a_truncated_call_does_not_judge_its_end_either(tmp_path, samples_dir):
    from tests.live_support import replay_in_process

    cut = cut_wav(samples_dir / "demo-zte.flac", tmp_path / "cut.wav", 0.8)
    profile = load_profile("zte")
    batch = score_call(cut, profile, NoWords())
    live = replay_in_process(cut, profile, NoWords())
    assert not {"closing", "closing_offer", "hangup"} & {v.rule for v in live.violations}
    assert live.to_dict()["not_judged"] == ["closing", "hangup"] and live.why_ended == "recording truncated"
    assert sorted(v.rule for v in live.violations) == sorted(v.rule for v in batch.violations)


def monitor(*args, cwd=REPO):
    exe = REPO / ".venv" / "bin" / "monitor"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "monitor.cli"]
    return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, cwd=cwd,
                          timeout=600, check=False, preexec_fn=lambda: __import__("resource").setrlimit(
                              __import__("resource").RLIMIT_AS, (6 << 30, 6 << 30)))


def test_score_refuses_long_files_in_one_line_warns_on_truncated_and_goes_on(tmp_path, samples_dir,
                                                                              long_files):
    cut = cut_wav(samples_dir / "demo-zte.flac", tmp_path / "cut.wav", 0.8)
    out = tmp_path / "r.jsonl"
    r = monitor("score", cut, long_files["mka"], long_files["renamed to .wav"], "--out", out)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    errors = [x for x in r.stderr.splitlines() if x.startswith("monitor: error:")]
    assert errors == [(f"monitor: error: {long_files['mka'].name}: 3.0 h of audio is too long for one "
                       "call (the limit is 2 h)"),
                      "monitor: error: call.wav: 3.0 h of audio is too long for one call (the limit is 2 h)"]
    warnings = [x for x in r.stderr.splitlines() if x.startswith("monitor: warning:")]
    assert len(warnings) == 1 and "cut.wav" in warnings[0] and "truncated" in warnings[0]
    lines = {d["call"]: d for d in map(json.loads, out.read_text().splitlines())}
    d = lines["cut.wav"]
    assert d["truncated"] is True and "truncated" in d["note"]
    assert "hangup" in d["not_judged"] and "hangup" not in {v["rule"] for v in d["violations"]}
    assert "error" in lines["call.wav"] and "error" in lines[long_files["mka"].name]
    assert "not judged (recording truncated): closing, hangup" in r.stdout


def test_a_file_of_three_channels_is_refused_unless_the_two_sides_are_named(tmp_path, samples_dir):
    x, rate = sf.read(samples_dir / "demo-zte.flac", dtype="float32", always_2d=True)
    three = tmp_path / "three.wav"
    sf.write(three, np.c_[x, 0.5 * (x[:, 0] + x[:, 1])], rate)  # a recorder's third track: the mix
    r = monitor("score", three, "--out", tmp_path / "r.jsonl")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert [x for x in r.stderr.splitlines() if x.startswith("monitor: error:")] == [
        "monitor: error: three.wav: 3 channels; a call recording has 1 (both sides mixed) or 2 (agent, caller): "
        "name the two with --agent-channel and --caller-channel"]
    call = load_call(three, ChannelRoles(0, 1, named=True))  # named: the two asked for are read
    assert sorted(call.channels) == ["agent", "caller"] and call.source_channels == 3


def test_a_recording_too_short_to_be_a_call_is_refused_in_one_line(tmp_path):
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros((1600, 2), np.float32), 16000)  # 0.1 s
    r = monitor("score", short, "--out", tmp_path / "r.jsonl")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "monitor: error: short.wav: 0.10 s of audio is too short to be a call (at least 1 s)" in r.stderr


def _unfinished(data: bytes) -> bytes:
    """A WAV as a recorder leaves it when it stops before going back to write the lengths."""
    out = bytearray(data)
    out[4:8] = b"\0\0\0\0"
    at = out.index(b"data")
    out[at + 4:at + 8] = b"\0\0\0\0"
    return bytes(out)


@pytest.mark.parametrize("subtype,channels", [("PCM_16", 2), ("ULAW", 1), ("FLOAT", 2), ("PCM_24", 2)])
def test_a_wav_whose_header_was_never_finished_is_read_whole_with_a_warning(tmp_path, subtype, channels):
    """A recorder that crashed leaves data size 0 in the header: libsndfile reads no samples and the
    call was refused as holding no audio, although every sample is in the file."""
    rate = 8000
    t = np.arange(rate * 6) / rate
    x = (np.stack([np.sin(2 * np.pi * 300 * t), np.sin(2 * np.pi * 500 * t)], 1)[:, :channels] * 0.3)
    sf.write(tmp_path / "full.wav", x, rate, subtype=subtype)
    (tmp_path / "crashed.wav").write_bytes(_unfinished((tmp_path / "full.wav").read_bytes()))
    whole, crashed = load_call(tmp_path / "full.wav"), load_call(tmp_path / "crashed.wav")
    assert crashed.duration == pytest.approx(whole.duration, abs=1e-3) == pytest.approx(6.0, abs=1e-3)
    for role in whole.channels:
        assert np.array_equal(whole.channels[role], crashed.channels[role])
    assert not crashed.truncated and not whole.warnings
    assert len(crashed.warnings) == 1 and "6.0 s of audio" in crashed.warnings[0]


@pytest.mark.parametrize("rate,said", [(0x7FFFFFFF, "2147483647 Hz is no audio rate"), (0, "sample rate of 0 Hz")])
def test_a_wav_header_with_a_garbage_sample_rate_is_refused_as_damaged(tmp_path, rate, said):
    sf.write(tmp_path / "ok.wav", np.full((8000 * 3, 2), 0.1), 8000, subtype="PCM_16")
    data = bytearray((tmp_path / "ok.wav").read_bytes())
    at = data.index(b"fmt ") + 12
    data[at:at + 4] = rate.to_bytes(4, "little")
    (tmp_path / "bad.wav").write_bytes(bytes(data))
    with pytest.raises(AudioError, match=said) as err:
        load_call(tmp_path / "bad.wav")
    assert "\n" not in str(err.value) and str(err.value).startswith("bad.wav: ")


def test_an_unfinished_wav_with_a_list_chunk_is_read_right_past_the_first_block(tmp_path):
    """ffmpeg writes a 26-byte LIST chunk before the samples, so they start at byte 78, not on a
    frame: read as raw in 10 s blocks, everything after the first block came out shifted noise."""
    rate = 8000
    t = np.arange(rate * 25) / rate
    x = np.stack([np.sin(2 * np.pi * 300 * t), np.sin(2 * np.pi * 500 * t)], 1) * 0.3
    sf.write(tmp_path / "full.wav", x, rate, subtype="PCM_16")
    data = (tmp_path / "full.wav").read_bytes()
    at = data.index(b"data")
    info = b"LIST" + struct.pack("<I", 18) + b"INFOISFT" + struct.pack("<I", 6) + b"Lavf6\0"
    (tmp_path / "ffmpeg.wav").write_bytes(_unfinished(data[:at] + info + data[at:]))
    whole, crashed = load_call(tmp_path / "full.wav"), load_call(tmp_path / "ffmpeg.wav")
    assert crashed.warnings and crashed.duration == pytest.approx(whole.duration, abs=1e-3)
    for role in whole.channels:
        assert np.array_equal(whole.channels[role], crashed.channels[role])
