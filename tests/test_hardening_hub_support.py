"""Raw attack clients for the hub hardening tests (holds no tests).

Everything here speaks to the hub directly (bare TCP, bare HTTP, bare websockets), not
through the desk or console client, so the tests see exactly what a hostile peer sees.
`src` picks the source address: all of 127.0.0.0/8 is loopback on Linux, so an
"attacker" on 127.0.0.2 and a desk on 127.0.0.1 count as different addresses.
"""
from __future__ import annotations

import asyncio
import json
from typing import Any

from test_hub_support import raw
from websockets.asyncio.client import ClientConnection


async def raw_from(url: str, src: str, hello: dict | None = None,
                   **kw: Any) -> ClientConnection:
    """A bare websocket opened from source address `src`."""
    return await raw(url, hello, local_addr=(src, 0), **kw)


async def http(port: int, request: bytes, src: str = "127.0.0.1",
               timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """Send one raw HTTP request; return (status, headers (last value wins), body)."""
    r, w = await asyncio.open_connection("127.0.0.1", port, local_addr=(src, 0))
    try:
        w.write(request)
        await w.drain()
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), timeout)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0"))
        data = await asyncio.wait_for(r.readexactly(n), timeout) if n else b""
        return status, headers, data
    finally:
        w.close()


def get(path: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", *headers, "", ""]
    return "\r\n".join(lines).encode()


def ws_upgrade(*headers: str) -> bytes:
    return get("/ws", "Upgrade: websocket", "Connection: Upgrade",
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13",
               *headers)


def alert_frame(alert_id: str, b: dict) -> str:
    # ensure_ascii (the default) writes a lone surrogate as the escape "\ud800", which is
    # how a hostile desk gets one past UTF-8 framing.
    return json.dumps({"type": "alert", "id": alert_id, "alert": b})
