"""`monitor hub` / `monitor console` (via `python -m monitor.hub`) and the terminal view."""
from __future__ import annotations

import asyncio
import io
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from test_hub_support import (
    CONSOLE_TOKEN,
    DESK_TOKEN,
    ROOT,
    body,
    desk_ws,
    free_port,
    hub_process,
    options,
    push,
    run,
    wait_port,
)

from monitor.hub.console_client import ConsoleRefused
from monitor.hub.console_tui import run_console
from monitor.hub.server import Hub

pytestmark = pytest.mark.timeout(60)


def cli(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "monitor.hub", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def one_error_line(p: subprocess.CompletedProcess, prog: str) -> str:
    assert p.returncode != 0
    assert "Traceback" not in p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"monitor {prog}: error: "), p.stderr
    return lines[0]


def test_help_explains_both_commands() -> None:
    for cmd in ("hub", "console"):
        p = cli(cmd, "--help")
        assert p.returncode == 0 and "--token" in p.stdout
    assert "resume" in cli("console", "--help").stdout
    assert "SQLite" in cli("hub", "--help").stdout


def test_bad_hub_input_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = one_error_line(cli("--port", str(port), "--db", str(tmp_path / "a.db"),
                                  "--token", DESK_TOKEN), "hub")
        assert f"cannot listen on 127.0.0.1:{port}" in line and "in use" in line
    line = one_error_line(cli("--port", "0", "--db", str(tmp_path / "a.db"), "--token", "t",
                              "--cert", str(tmp_path / "nope.pem")), "hub")
    assert "nope.pem" in line
    (tmp_path / "afile").write_text("")  # missing folders are created (0700), not a file's
    line = one_error_line(cli("--port", "0", "--db", str(tmp_path / "afile/sub/a.db"),
                              "--token", "t"), "hub")
    assert "cannot create folder" in line
    env_free = subprocess.run([sys.executable, "-m", "monitor.hub", "--port", "0"], cwd=ROOT,
                              capture_output=True, text=True, timeout=20,
                              env={"PATH": "/usr/bin:/bin"})
    assert "no token" in one_error_line(env_free, "hub")
    p = cli("--port", "99999")
    assert p.returncode == 2 and "port must be 0-65535" in p.stderr


def test_console_command_prints_alerts_and_refuses_bad_tokens(tmp_path: Path) -> None:
    port = free_port()
    hub = hub_process(port, tmp_path / "hub.db")
    try:
        async def seed() -> None:
            await wait_port(port)
            d = await desk_ws(f"ws://127.0.0.1:{port}/ws", "desk-9")
            for i in range(3):
                await push(d, f"x:{i}", body(i))
            await d.close()
        run(seed())
        url = f"ws://127.0.0.1:{port}/ws"
        line = one_error_line(cli("console", "--url", url, "--token", "wrong"), "console")
        assert "invalid token" in line
        line = one_error_line(cli("console", "--url", url, "--token", DESK_TOKEN), "console")
        assert "invalid token" in line  # the hub does not say the token is a desk's
        assert "ws://" in one_error_line(cli("console", "--url", "http://x", "--token", "t"),
                                         "console")
        proc = subprocess.Popen([sys.executable, "-m", "monitor.hub", "console", "--url", url,
                                 "--token", CONSOLE_TOKEN, "--since", "1"], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            lines = [proc.stdout.readline() for _ in range(2)]  # type: ignore[union-attr]
        finally:
            proc.terminate()
            proc.wait(10)
        assert lines[0].startswith("#2 ") and "desk-9 forbidden" in lines[0]
        assert lines[1].startswith("#3 ") and "找领导去" in lines[1]
    finally:
        hub.terminate()
        hub.wait(10)


def test_terminal_view_resumes_and_neutralises_control_characters(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Hub(options(tmp_path)) as hub:
            d = await desk_ws(hub.url, "desk-1")
            await push(d, "a:1", body(1, text="\x1b[2J\x1b]0;pwned\x07 清屏\n第二行"))
            out, err = io.StringIO(), io.StringIO()
            task = asyncio.create_task(run_console(hub.url, CONSOLE_TOKEN, 0, out=out,
                                                   err=err, limit=3))
            await asyncio.sleep(0.2)
            await push(d, "a:2", body(2))
            await asyncio.sleep(0.2)
            # Stop the hub (drops every connection); the view reconnects to the new one and
            # resumes after seq 2.
            await hub.close()
            async with Hub(options(tmp_path, port=hub.port)) as hub2:
                d2 = await desk_ws(hub2.url, "desk-1")
                await push(d2, "a:3", body(3))
                assert await asyncio.wait_for(task, 10) == 3
            lines = out.getvalue().splitlines()
            assert [ln.split()[0] for ln in lines] == ["#1", "#2", "#3"]
            assert "\x1b" not in lines[0] and "\x07" not in lines[0] and "第二行" in lines[0]
            assert "disconnected" in err.getvalue()
    run(scenario())


def test_terminal_view_stops_on_a_refused_token(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Hub(options(tmp_path)) as hub:
            with pytest.raises(ConsoleRefused, match="invalid token"):
                await run_console(hub.url, "wrong-token", out=io.StringIO(), err=io.StringIO())
    run(scenario())


def test_a_second_hub_on_the_same_database_is_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Hub(options(tmp_path)):
            p = await asyncio.to_thread(cli, "--port", "0", "--db", str(tmp_path / "hub.sqlite3"),
                                        "--token", DESK_TOKEN)
            assert "another hub is using it" in one_error_line(p, "hub")
    run(scenario())
