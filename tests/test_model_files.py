"""The embedded model is joined once from its two wheels, verified, and never downloaded."""
import pytest

from monitor.asr.model_files import MARKER, ModelError, embedded_model_dir, resolve_model_dir


def test_joining_the_two_wheel_parts_gives_a_verified_model_dir(tmp_path):
    d = embedded_model_dir(tmp_path)
    assert (d / "model.bin").stat().st_size > 100_000_000
    assert (d / MARKER).is_file() and (d / "tokenizer.json").is_file()
    mtime = (d / "model.bin").stat().st_mtime_ns
    assert embedded_model_dir(tmp_path) == d
    assert (d / "model.bin").stat().st_mtime_ns == mtime  # the second call reuses the join


def test_a_damaged_join_is_redone(tmp_path):
    d = embedded_model_dir(tmp_path)
    with open(d / "model.bin", "r+b") as f:
        f.truncate(1000)
    again = embedded_model_dir(tmp_path)
    assert (again / "model.bin").stat().st_size > 100_000_000


def test_a_named_model_dir_must_look_like_a_whisper_model(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        resolve_model_dir(tmp_path / "nope")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "model.bin").write_bytes(b"x")
    with pytest.raises(ModelError, match="missing config.json"):
        resolve_model_dir(tmp_path / "half")
