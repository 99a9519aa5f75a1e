"""Shared fixtures."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The labelled dev calls: $MONITOR_CORPUS, else <repo>/../shared/corpus/dev.

    Fails (never skips) when missing, so a run without the corpus cannot pass
    by silently testing nothing.
    """
    path = Path(os.environ.get("MONITOR_CORPUS") or REPO.parent / "shared" / "corpus" / "dev")
    if not (path / "manifest.jsonl").is_file():
        pytest.fail(f"corpus not found: {path} has no manifest.jsonl "
                    "(set MONITOR_CORPUS to the directory holding the dev calls)")
    return path


SAMPLES = REPO / "samples"


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    return SAMPLES


@pytest.fixture(scope="session")
def whisper_factory():
    """Real Whisper base transcribers, one per hot-word set, shared by the session (loading costs ~1 s)."""
    from monitor.asr.whisper import AsrOptions, WhisperTranscriber

    made: dict[tuple, WhisperTranscriber] = {}

    def get(hotwords: tuple[str, ...] = ()) -> WhisperTranscriber:
        if hotwords not in made:
            made[hotwords] = WhisperTranscriber(AsrOptions(hotwords=hotwords, cpu_threads=2))
        return made[hotwords]

    return get


def load_labels(path: Path) -> dict:
    import json

    return json.loads(path.read_text(encoding="utf-8"))
