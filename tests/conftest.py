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
