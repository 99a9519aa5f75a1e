"""Spools and reports hold what callers and agents said: private to their user.

With the usual umask 022, files the tool creates are 0600 and folders it creates 0700.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from test_hub_support import DESK_TOKEN, body, free_port, run

from monitor.hub.desk_client import DeskClient
from monitor.hub.spool import Spool
from monitor.pipeline import CallReport
from monitor.report import JsonlWriter, write_csv

REPO = Path(__file__).resolve().parents[1]


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.fixture
def umask022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_a_new_spool_and_its_folders_are_private(tmp_path, umask022):
    spool = tmp_path / "a" / "b" / "desk-1.spool"

    async def go() -> None:
        desk = DeskClient(f"ws://127.0.0.1:{free_port()}/ws", DESK_TOKEN, "desk-1", spool,
                          backoff_min=5, backoff_max=5)
        await desk.send(body(1))
        # While the desk runs the alert sits in the WAL: it must be as private as the spool.
        for side in ("", "-wal", "-shm"):
            p = spool.with_name(spool.name + side)
            assert p.exists() and mode(p) == 0o600, f"{p.name}: {oct(mode(p))}"
        await desk.close()
    run(go())
    assert mode(spool) == 0o600
    assert mode(tmp_path / "a") == 0o700 and mode(tmp_path / "a" / "b") == 0o700


def test_an_existing_world_readable_spool_is_made_private(tmp_path, umask022):
    path = tmp_path / "old.spool"
    Spool(path).close()
    os.chmod(path, 0o644)
    Spool(path).close()
    assert mode(path) == 0o600


def test_a_quarantined_spool_stays_private(tmp_path, umask022, caplog):
    path = tmp_path / "desk.spool"
    path.write_bytes(b"not sqlite" * 100)
    os.chmod(path, 0o600)
    Spool(path).close()
    (q,) = tmp_path.glob("desk.spool.corrupt-*")
    assert mode(q) == 0o600 and mode(path) == 0o600


def report() -> CallReport:
    return CallReport(call="a.wav", path="a.wav", duration=1.0, profile="zte", score=100.0,
                      violations=[], transcript=[])


def test_reports_and_their_folders_are_private(tmp_path, umask022):
    out = tmp_path / "new" / "dir" / "r.jsonl"
    w = JsonlWriter(out)
    w.write(report())
    w.close()
    calls, violations = write_csv(tmp_path / "new" / "c" / "r.csv", [report()])
    assert mode(out) == 0o600 and mode(calls) == 0o600 and mode(violations) == 0o600
    for d in (tmp_path / "new", tmp_path / "new" / "dir", tmp_path / "new" / "c"):
        assert mode(d) == 0o700, d
    assert json.loads(out.read_text())["call"] == "a.wav"


def test_monitor_score_writes_private_reports(tmp_path):
    (tmp_path / "broken.wav").write_bytes(b"RIFF....WAVEjunk" * 10)
    exe = REPO / ".venv" / "bin" / "monitor"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "monitor.cli"]
    r = subprocess.run(cmd + ["score", str(tmp_path / "broken.wav"), "--out", str(tmp_path / "o" / "r.jsonl"),
                              "--csv", str(tmp_path / "o" / "r.csv")],
                       capture_output=True, text=True, timeout=300, check=False, preexec_fn=lambda: os.umask(0o022))
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert mode(tmp_path / "o") == 0o700
    assert mode(tmp_path / "o" / "r.jsonl") == 0o600
    assert mode(tmp_path / "o" / "r-calls.csv") == 0o600 and mode(tmp_path / "o" / "r-violations.csv") == 0o600


def test_an_unwritable_report_path_is_one_line(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"RIFF....WAVEjunk" * 10)
    (tmp_path / "file").write_text("x")
    exe = REPO / ".venv" / "bin" / "monitor"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "monitor.cli"]
    r = subprocess.run(cmd + ["score", str(tmp_path / "a.wav"), "--out", str(tmp_path / "file" / "r.jsonl")],
                       capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("monitor: error: ")
