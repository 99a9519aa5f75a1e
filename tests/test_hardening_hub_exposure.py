"""Finding 7 (hub part): what the hub exposes.

The database was created world-readable; tokens could only be given on the command line
(visible in /proc/PID/cmdline); duplicate Host/Origin/Authorization headers gave HTTP 500
and a huge `start` value closed the desk with 1011 and a traceback.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from test_hardening_hub_support import get, http, ws_upgrade
from test_hub_support import (
    CONSOLE_TOKEN,
    DESK_TOKEN,
    ROOT,
    body,
    desk_ws,
    free_port,
    options,
    push,
    recv_json,
    run,
    wait_port,
)

from monitor.hub.server import Hub
from monitor.hub.store import AlertStore

pytestmark = pytest.mark.timeout(60)


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_database_files_are_private(tmp_path: Path) -> None:
    db = tmp_path / "new" / "dir" / "hub.db"
    old = os.umask(0o022)
    try:
        async def scenario() -> None:
            async with Hub(options(tmp_path, db=db)) as hub:
                d = await desk_ws(hub.url)
                await push(d, "d:1", body(1))
                for f in (db, Path(f"{db}-wal"), Path(f"{db}.mark")):
                    assert mode(f) == 0o600, f
                assert mode(db.parent) == 0o700 and mode(db.parent.parent) == 0o700
        run(scenario())
    finally:
        os.umask(old)
    loose = tmp_path / "loose.db"
    loose.touch(mode=0o644)
    os.chmod(loose, 0o644)
    AlertStore(loose).close()
    assert mode(loose) == 0o600  # an existing world-readable database is tightened


def test_tokens_from_file_and_environment_stay_out_of_cmdline(tmp_path: Path) -> None:
    tok, ctok = tmp_path / "desk.tok", tmp_path / "console.tok"
    tok.write_text(DESK_TOKEN + "\n")
    ctok.write_text(CONSOLE_TOKEN + "\n")
    tok.chmod(0o600)
    ctok.chmod(0o600)
    port = free_port()
    log = tmp_path / "hub.log"
    env = {**os.environ, "MONITOR_CONSOLE_TOKEN": "", "MONITOR_HUB_TOKEN": ""}
    cmd = [sys.executable, "-m", "monitor.hub", "--port", str(port), "--db",
           str(tmp_path / "h.db"), "--token-file", str(tok), "--console-token-file", str(ctok)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=log.open("wb"), env=env)
    try:
        async def scenario() -> None:
            await wait_port(port)
            d = await desk_ws(f"ws://127.0.0.1:{port}/ws")
            assert (await push(d, "d:1", body(1)))["type"] == "ack"
            await d.close()
        run(scenario())
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        assert DESK_TOKEN.encode() not in cmdline and CONSOLE_TOKEN.encode() not in cmdline
    finally:
        proc.terminate()
        proc.wait(10)
    assert "visible" not in log.read_text()

    # The environment works too; a short token is warned about (once the hub runs).
    port = free_port()
    env = {**os.environ, "MONITOR_HUB_TOKEN": "short", "MONITOR_CONSOLE_TOKEN": ""}
    proc = subprocess.Popen([sys.executable, "-m", "monitor.hub", "--port", str(port), "--db",
                             str(tmp_path / "e.db")], cwd=ROOT, stderr=log.open("wb"),
                            env=env)
    try:
        async def env_scenario() -> None:
            await wait_port(port)
            from test_hub_support import raw
            ws = await raw(f"ws://127.0.0.1:{port}/ws",
                           {"type": "hello", "role": "desk", "token": "short", "desk": "d"})
            assert (await recv_json(ws))["type"] == "welcome"
            await ws.close()
        run(env_scenario())
    finally:
        proc.terminate()
        proc.wait(10)
    assert "shorter than 16" in log.read_text()

    out = subprocess.run([sys.executable, "-m", "monitor.hub", "hub", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=20).stdout
    assert "--token-file" in out and "MONITOR_HUB_TOKEN" in out and "/proc" in out


@pytest.mark.parametrize("request_bytes", [
    ws_upgrade("Host: a", "Host: b"),
    ws_upgrade("Host: a", "Origin: http://a", "Origin: http://b"),
    get("/api/alerts", "Host: a", f"Authorization: Bearer {CONSOLE_TOKEN}",
        f"Authorization: Bearer {CONSOLE_TOKEN}"),
    get("/api/alerts", "Host: a", "Host: b", f"Authorization: Bearer {CONSOLE_TOKEN}"),
    get("/api/alerts", "Host: a", "Origin: http://a", "Origin: http://b",
        f"Authorization: Bearer {CONSOLE_TOKEN}"),
])
def test_duplicate_headers_are_a_bad_request(tmp_path: Path, request_bytes: bytes) -> None:
    async def scenario() -> None:
        async with Hub(options(tmp_path)) as hub:
            status, _, data = await http(hub.port, request_bytes)
            assert status == 400 and b"more than one" in data
    run(scenario())


def test_huge_numbers_are_refused_cleanly(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Hub(options(tmp_path)) as hub:
            d = await desk_ws(hub.url)
            for field in ("start", "end", "emitted"):
                b = body(1)
                b[field] = 10 ** 400
                reply = await push(d, f"h:{field}", b)
                assert reply["type"] == "reject" and reply["code"] == "bad_value"
            # still connected and working: no 1011
            assert (await push(d, "ok:1", body(1)))["type"] == "ack"
            from test_hub_support import close_of, raw
            ws = await raw(hub.url, {"type": "hello", "role": "desk", "token": DESK_TOKEN,
                                     "desk": "d", "heartbeat": 10 ** 400})
            assert (await close_of(ws))[0] == 4400
            await d.send(json.dumps({"type": "status", "status": {
                "state": "on_call", "call_id": "c", "call_started": 10 ** 400}}))
            assert (await recv_json(d))["type"] == "error"
    run(scenario())
