"""Recorded calls in the formats a quality team has; bad files get one clear line."""
import numpy as np
import pytest
import soundfile as sf

from monitor.audio.files import AudioError, ChannelRoles, call_names, expand_inputs, load_call

SR = 16000


def stereo(rate: int, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return np.stack([0.3 * np.sin(2 * np.pi * 300 * t), 0.3 * np.sin(2 * np.pi * 500 * t)], axis=1)


@pytest.mark.parametrize("name, fmt, subtype, rate", [
    ("pcm.wav", "WAV", "PCM_16", 16000),
    ("ulaw.wav", "WAV", "ULAW", 8000),
    ("alaw.wav", "WAV", "ALAW", 8000),
    ("call.flac", "FLAC", "PCM_16", 44100),
    ("call.ogg", "OGG", "VORBIS", 48000),
    ("call.mp3", "MP3", "MPEG_LAYER_III", 22050),
])
def test_every_supported_format_loads_as_16k_channels_by_role(tmp_path, name, fmt, subtype, rate):
    path = tmp_path / name
    sf.write(path, stereo(rate, 2.0), rate, format=fmt, subtype=subtype)
    call = load_call(path)
    assert call.roles == ("agent", "caller")
    assert call.source_rate == rate
    assert call.duration == pytest.approx(2.0, abs=0.1)
    for role, freq in (("agent", 300), ("caller", 500)):
        x = call.channels[role]
        assert x.dtype == np.float32
        spectrum = np.abs(np.fft.rfft(x[:SR]))
        assert abs(np.argmax(spectrum) - freq) <= 3, f"{role} channel carries the wrong tone"


def test_channel_roles_can_be_swapped(tmp_path):
    path = tmp_path / "swapped.wav"
    sf.write(path, stereo(16000), 16000)
    call = load_call(path, ChannelRoles(agent=1, caller=0))
    assert np.argmax(np.abs(np.fft.rfft(call.channels["agent"][:SR]))) == pytest.approx(500, abs=3)


def test_mono_file_has_only_the_agent(tmp_path):
    path = tmp_path / "mono.wav"
    sf.write(path, stereo(8000)[:, 0], 8000)
    assert load_call(path).roles == ("agent",)


@pytest.mark.parametrize("content, needle", [
    (b"", "empty"),
    (b"this is not audio at all" * 20, "cannot decode"),
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", "cannot decode"),  # truncated header
])
def test_bad_files_raise_one_clear_line(tmp_path, content, needle):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError) as err:
        load_call(path)
    msg = str(err.value)
    assert "\n" not in msg and "bad.wav" in msg and needle in msg


def test_missing_channel_is_reported(tmp_path):
    path = tmp_path / "stereo.wav"
    sf.write(path, stereo(16000), 16000)
    with pytest.raises(AudioError, match="channel 3"):
        load_call(path, ChannelRoles(agent=0, caller=3))


def test_a_wav_with_no_samples_is_reported(tmp_path):
    path = tmp_path / "nothing.wav"
    sf.write(path, np.zeros((0, 2)), 16000)
    with pytest.raises(AudioError, match="no audio samples"):
        load_call(path)


def test_sample_rate_below_telephone_band_is_refused(tmp_path):
    path = tmp_path / "low.wav"
    sf.write(path, stereo(4000), 4000)
    with pytest.raises(AudioError, match="4000 Hz"):
        load_call(path)


def test_folders_expand_to_their_audio_files_and_empty_folders_are_reported(tmp_path):
    (tmp_path / "calls").mkdir()
    (tmp_path / "empty").mkdir()
    for n in ("b.wav", "a.flac"):
        sf.write(tmp_path / "calls" / n, stereo(8000), 8000)
    (tmp_path / "calls" / "notes.txt").write_text("x")
    files, errors = expand_inputs([tmp_path / "calls", tmp_path / "empty", tmp_path / "nope.wav"])
    assert [f.name for f in files] == ["a.flac", "b.wav"]
    assert len(errors) == 2 and "no audio files" in errors[0] and "no such file" in errors[1]
    # a recording whose link points nowhere is said, not skipped
    (tmp_path / "calls" / "moved.wav").symlink_to(tmp_path / "archive" / "moved.wav")
    files, errors = expand_inputs([tmp_path / "calls"])
    assert [f.name for f in files] == ["a.flac", "b.wav"] and errors == [f"{tmp_path / 'calls' / 'moved.wav'}: a link to a file that is not there"]


def test_calls_that_share_a_file_name_in_subfolders_are_told_apart_by_their_path(tmp_path):
    for day in ("day1", "day2"):
        (tmp_path / "week" / day).mkdir(parents=True)
        sf.write(tmp_path / "week" / day / "0001.wav", stereo(8000), 8000)
    sf.write(tmp_path / "week" / "0002.wav", stereo(8000), 8000)
    files, _ = expand_inputs([tmp_path / "week"])
    names = call_names(files)
    assert sorted(names.values()) == ["0002.wav", "day1/0001.wav", "day2/0001.wav"]
    # the same file given twice is one call, under its own name
    again = tmp_path / "week" / "0002.wav"
    assert call_names([again, again]) == {again: "0002.wav"}
    # a name that would drive the terminal (an escape sequence) or break the line is shown with marks
    odd = tmp_path / "week" / "a\x1b[31m\nb.wav"
    assert call_names([odd]) == {odd: "a\ufffd[31m\ufffdb.wav"}
    # links into an archive keep their own names and folders, not their targets'
    for day in ("mon", "tue"):
        (tmp_path / "links" / day).mkdir(parents=True)
        (tmp_path / "links" / day / "0001.wav").symlink_to(tmp_path / "week" / "day1" / "0001.wav")
    files, _ = expand_inputs([tmp_path / "links"])
    assert sorted(call_names(files).values()) == ["mon/0001.wav", "tue/0001.wav"]


def test_a_huge_file_is_refused_before_it_is_read(tmp_path):
    """A 3-hour recording is not a call; it must not be loaded into memory."""
    import struct

    rate, seconds = 8000, 3 * 3600
    data_bytes = rate * seconds * 2
    header = (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVEfmt " +
              struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16) + b"data" + struct.pack("<I", data_bytes))
    path = tmp_path / "huge.wav"
    with open(path, "wb") as f:
        f.write(header)
        f.truncate(len(header) + data_bytes)  # sparse: costs no disk
    with pytest.raises(AudioError, match="too long for one call"):
        load_call(path)
