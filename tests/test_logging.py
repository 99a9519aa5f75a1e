"""`--log-level` on every command; log lines carry an ISO timestamp, the level and the logger."""
from __future__ import annotations

import argparse
import io
import logging
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitor import logs
from monitor.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
MONITOR = str(Path(sys.executable).parent / "monitor")
LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d (DEBUG|INFO|WARNING|ERROR) [\w.]+: ")


def commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, p in action.choices.items():
                out.append((prefix + (name,), p))
                out.extend(commands(p, prefix + (name,)))
    return out


def test_every_command_takes_log_level() -> None:
    found = commands(build_parser())
    names = {" ".join(n) for n, _ in found}
    assert {"score", "live", "replay", "hub", "console", "call", "devices", "model", "phrasebook list"} <= names
    for name, p in found:
        assert "--log-level" in p._option_string_actions, name
    args = build_parser().parse_args(["score", "a.wav", "--log-level", "DEBUG"])
    assert args.log_level == "debug"
    args = build_parser().parse_args(["--log-level", "error", "call", "end"])
    assert args.log_level == "error"  # before the command too
    with pytest.raises(SystemExit):
        build_parser().parse_args(["model", "--log-level", "loud"])


def test_lines_have_iso_time_level_and_logger() -> None:
    buf = io.StringIO()
    try:
        logs.setup("info", buf)
        logging.getLogger("monitor.test").info("hello %d", 1)
        logging.getLogger("monitor.test").debug("not shown")
        logs.setup("debug", buf)  # the last setup wins: no duplicate handlers
        logging.getLogger("monitor.test").debug("shown")
    finally:
        logs.setup("warning")
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2 and all(LINE.match(x) for x in lines), lines
    assert lines[0].endswith("INFO monitor.test: hello 1") and lines[1].endswith("DEBUG monitor.test: shown")


def hub_stderr(tmp_path: Path, *level: str) -> str:
    proc = subprocess.Popen([MONITOR, "hub", "--port", "0", "--db", str(tmp_path / "hub.sqlite3"), *level],
                            cwd=tmp_path, stderr=subprocess.PIPE, text=True,
                            env={"PATH": "/usr/bin:/bin", "MONITOR_HUB_TOKEN": "desk-token-for-logs-0001"})
    time.sleep(2.0)
    proc.terminate()
    _, err = proc.communicate(timeout=10)
    return err


def test_hub_log_level_changes_what_the_hub_says(tmp_path: Path) -> None:
    default = hub_stderr(tmp_path)
    debug = hub_stderr(tmp_path, "--log-level", "debug")
    quiet = hub_stderr(tmp_path, "--log-level", "warning")
    top = subprocess.run([MONITOR, "--log-level", "debug", "hub", "--help"], capture_output=True, text=True)
    assert top.returncode == 0
    assert "hub listening on ws://127.0.0.1:" in default and " DEBUG " not in default
    assert all(LINE.match(x) for x in default.splitlines()), default
    assert " DEBUG " in debug and "hub listening" in debug
    assert all(LINE.match(x) for x in debug.splitlines()), debug
    assert "hub listening" not in quiet and quiet.strip() == ""


def test_a_hub_at_debug_never_logs_a_desks_token_or_the_words_of_its_frames(tmp_path: Path) -> None:
    """At debug websockets logged every frame whole: the hello with the desk's token, the line of
    a transcript with the caller's phone number before the hub masks it."""
    import asyncio

    from test_hub_support import free_port, raw, recv_json, wait_port

    token, port = "desk-token-for-logs-0001", free_port()
    proc = subprocess.Popen([MONITOR, "hub", "--port", str(port), "--db", str(tmp_path / "hub.sqlite3"),
                             "--log-level", "debug"], cwd=tmp_path, stderr=subprocess.PIPE, text=True,
                            env={"PATH": "/usr/bin:/bin", "MONITOR_HUB_TOKEN": token})
    try:
        async def desk() -> None:
            await wait_port(port)
            ws = await raw(f"ws://127.0.0.1:{port}/ws", {"type": "hello", "role": "desk", "token": token,
                                                         "desk": "desk-7"})
            assert (await recv_json(ws))["type"] == "welcome"
            await ws.send('{"type": "line", "text": "我的号码是13912345678"}')
            await asyncio.sleep(0.5)
            await ws.close()
        asyncio.run(desk())
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert " DEBUG " in err and "desk-7" in err  # still a debug log, naming the desk
    assert token not in err and "13912345678" not in err, err
