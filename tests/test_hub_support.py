"""Shared helpers for the hub tests (named test_hub_* to stay with them; holds no tests)."""
from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT))

from websockets.asyncio.client import ClientConnection, connect  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402

from monitor.hub.options import HubOptions  # noqa: E402

DESK_TOKEN = "desk-token-for-tests-0001"
CONSOLE_TOKEN = "console-token-for-tests-0001"


def options(tmp_path: Path, **kw: Any) -> HubOptions:
    base: dict[str, Any] = dict(host="127.0.0.1", port=0, db=tmp_path / "hub.sqlite3",
                                token=DESK_TOKEN, console_token=CONSOLE_TOKEN,
                                ping_interval=5.0, ping_timeout=5.0)
    base.update(kw)
    return HubOptions(**base)


def body(i: int = 0, **over: Any) -> dict:
    b = {"call_id": f"call-{i // 10}", "rule": "forbidden", "start": float(i), "end": i + 1.5,
         "emitted": i + 1.6, "text": f"我不知道，你找领导去 #{i}", "evidence": "pinyin match",
         "phrase": "找领导去", "severity": "major"}
    b.update(over)
    return b


def run(coro: Any, timeout: float = 30.0) -> Any:
    """Run one async scenario with a hard time limit."""
    async def limited() -> Any:
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(limited())


async def raw(url: str, hello: dict | None = None, **kw: Any) -> ClientConnection:
    """A bare websocket to the hub, optionally sending a hello frame first."""
    # close_timeout short: websockets' client does not read the server's close frame while
    # its receive buffer is full, so close() on a busy console would wait the whole timeout.
    kw.setdefault("close_timeout", 0.5)
    ws = await connect(url, compression=None, open_timeout=5, **kw)
    if hello is not None:
        await ws.send(json.dumps(hello))
    return ws


async def desk_ws(url: str, desk: str = "desk-1") -> ClientConnection:
    ws = await raw(url, {"type": "hello", "role": "desk", "token": DESK_TOKEN, "desk": desk})
    welcome = json.loads(await ws.recv())
    assert welcome["type"] == "welcome", welcome
    return ws


async def console_ws(url: str, since: int = 0) -> ClientConnection:
    ws = await raw(url, {"type": "hello", "role": "console", "token": CONSOLE_TOKEN,
                         "since": since})
    welcome = json.loads(await ws.recv())
    assert welcome["type"] == "welcome", welcome
    return ws


async def recv_json(ws: ClientConnection, timeout: float = 5.0) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_type(ws: ClientConnection, kind: str, timeout: float = 5.0) -> dict:
    """Next frame of `kind`, skipping others."""
    deadline = time.monotonic() + timeout
    while True:
        msg = await recv_json(ws, max(0.01, deadline - time.monotonic()))
        if msg["type"] == kind:
            return msg


async def close_of(ws: ClientConnection, timeout: float = 5.0) -> tuple[int, str]:
    """Wait for the hub to close `ws`; return (code, reason) of its close frame."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except ConnectionClosed as exc:
        assert exc.rcvd is not None, "closed without a close frame"
        return exc.rcvd.code, exc.rcvd.reason


async def push(ws: ClientConnection, alert_id: str, b: dict) -> dict:
    """Send one alert on a raw desk socket and return the hub's reply."""
    await ws.send(json.dumps({"type": "alert", "id": alert_id, "alert": b}))
    return await recv_json(ws)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hub_process(port: int, db: Path, *extra: str, log: Path | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "monitor.hub", "--host", "127.0.0.1", "--port", str(port),
           "--db", str(db), "--token", DESK_TOKEN, "--console-token", CONSOLE_TOKEN,
           "--log-level", "warning", *extra]
    out = open(log, "ab") if log else subprocess.DEVNULL
    return subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=out)


async def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise TimeoutError(f"nothing listening on port {port}")


def make_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost, made with the openssl CLI."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key
