"""Finding 3: websockets that never authenticate locked the desks out.

5,100 sockets that never sent a hello filled the 5,000-connection limit and desks got 503
or handshake time-outs. Now connections before authentication sit in a pool capped per
address and overall, kept apart from the room for authenticated sessions, with one
deadline from TCP accept.
"""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from test_hardening_hub_support import raw_from
from test_hub_support import (
    body,
    close_of,
    console_ws,
    desk_ws,
    options,
    push,
    raw,
    recv_type,
    run,
)
from websockets.exceptions import InvalidStatus

from monitor.hub.server import Hub

pytestmark = pytest.mark.timeout(60)


async def squat(url: str, src: str, n: int) -> list:
    """Open n websockets from `src` that never say hello; keep those that opened."""
    got = await asyncio.gather(*(raw_from(url, src) for _ in range(n)),
                               return_exceptions=True)
    return [ws for ws in got if not isinstance(ws, BaseException)]


async def tcp_squat(port: int, src: str, n: int) -> list:
    """Open n TCP connections from `src` that never send a byte."""
    out = []
    for _ in range(n):
        try:
            out.append(await asyncio.open_connection("127.0.0.1", port, local_addr=(src, 0)))
        except OSError:
            pass
    return out


def test_silent_sockets_from_one_address_do_not_lock_desks_out(tmp_path: Path) -> None:
    async def scenario() -> None:
        opts = options(tmp_path, max_connections=40, max_preauth=30,
                       max_preauth_per_address=8, hello_timeout=5.0)
        async with Hub(opts) as hub:
            held = await squat(hub.url, "127.0.0.2", 60)
            tcp = await tcp_squat(hub.port, "127.0.0.2", 20)
            assert len(hub._pre) <= 8  # the address's share, not the hub's capacity
            t0 = time.monotonic()
            d = await desk_ws(hub.url)  # from 127.0.0.1
            assert (await push(d, "d:1", body(1)))["type"] == "ack"
            assert time.monotonic() - t0 < 2
            c = await console_ws(hub.url)
            assert (await recv_type(c, "caught_up"))["seq"] == 1
            for ws in held:
                ws.transport.abort()
            for _, w in tcp:
                w.close()
    run(scenario())


def test_silent_sockets_from_many_addresses_leave_room_for_desks(tmp_path: Path) -> None:
    async def scenario() -> None:
        opts = options(tmp_path, max_connections=40, max_preauth=20,
                       max_preauth_per_address=8, preauth_evict_after=0.2,
                       hello_timeout=5.0)
        async with Hub(opts) as hub:
            early = await desk_ws(hub.url, "desk-early")  # authenticated before the flood
            held = []
            for k in range(2, 12):  # 10 addresses x 6 sockets: 60 > max_preauth
                held += await squat(hub.url, f"127.0.0.{k}", 6)
            assert len(hub._pre) <= 20
            assert (await push(early, "e:1", body(1)))["type"] == "ack"
            await asyncio.sleep(0.3)  # the squatters are now older than preauth_evict_after
            desks = [await desk_ws(hub.url, f"desk-{i}") for i in range(5)]
            for i, d in enumerate(desks):
                assert (await push(d, f"n:{i}", body(i)))["type"] == "ack"
            for ws in held:
                ws.transport.abort()
    run(scenario())


def test_authenticated_capacity_is_separate_and_full_hub_says_try_again(
        tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Hub(options(tmp_path, max_connections=3)) as hub:
            desks = [await desk_ws(hub.url, f"desk-{i}") for i in range(3)]
            with pytest.raises(InvalidStatus) as exc:  # full: refused before the handshake
                await raw(hub.url)
            assert exc.value.response.status_code == 503
            await desks[0].close()
            await asyncio.sleep(0.1)
            d = await desk_ws(hub.url, "desk-9")
            assert (await push(d, "x:1", body(1)))["type"] == "ack"
    run(scenario())


def test_pre_auth_window_counts_from_tcp_accept(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Hub(options(tmp_path, hello_timeout=0.6)) as hub:
            t0 = time.monotonic()
            ws = await raw(hub.url)
            assert (await close_of(ws))[0] == 4408
            assert time.monotonic() - t0 < 1.5
            # a connection that never even sends its HTTP request is dropped as well
            r, w = await asyncio.open_connection("127.0.0.1", hub.port)
            assert await asyncio.wait_for(r.read(), 3) is not None
            w.close()
            assert not hub._pre
    run(scenario())
