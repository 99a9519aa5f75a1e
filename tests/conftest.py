"""Shared fixtures."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import monitor  # noqa: F401  (first: it pins numpy's BLAS threads before any test loads numpy)

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
            made[hotwords] = WhisperTranscriber(AsrOptions(hotwords=hotwords))  # as the CLI decodes
        return made[hotwords]

    return get


def load_labels(path: Path) -> dict:
    import json

    return json.loads(path.read_text(encoding="utf-8"))


# A few dev calls scored once per session with the real model (rescore, metrics and HTML tests share them):
# greeting, forbidden (zte and unicom), hold, caller and agent hang-ups; clean, telephone and noisy audio.
DEV_SUBSET = ("dev-001", "dev-002", "dev-009", "dev-013", "dev-016", "dev-017")


@pytest.fixture(scope="session")
def scored_dev_subset(corpus_dir, whisper_factory):
    """{call id: (CallReport, labels)} for DEV_SUBSET, each scored with its labelled profile."""
    import json

    from monitor.phrasebook import load_profile
    from monitor.pipeline import score_call

    manifest = {m["call_id"]: m for m in map(json.loads, (corpus_dir / "manifest.jsonl").read_text().splitlines())}
    out = {}
    for cid in DEV_SUBSET:
        labels = load_labels(corpus_dir / manifest[cid]["labels"])
        profile = load_profile(labels["profile"])
        out[cid] = (score_call(corpus_dir / manifest[cid]["audio"], profile, whisper_factory(profile.hotwords)), labels)
    return out
