"""Consoles: resume from a seq with no gap and no duplicate while alerts keep arriving;
slow consoles are dropped and resume; acknowledgements reach every console."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from test_hub_support import (
    body,
    close_of,
    console_ws,
    desk_ws,
    options,
    push,
    raw,
    recv_json,
    recv_type,
    run,
)
from websockets.asyncio.client import ClientConnection

from monitor.hub.server import Hub

pytestmark = pytest.mark.timeout(60)

PRELOAD = 1200  # > one catch-up page (500), so catch-up and live inserts interleave
LIVE = 1000


async def read_alerts(ws: ClientConnection, n: int, timeout: float = 20.0) -> list[int]:
    seqs: list[int] = []
    while len(seqs) < n:
        msg = await recv_json(ws, timeout)
        if msg["type"] == "alert":
            seqs.append(msg["seq"])
    return seqs


def test_resume_has_no_gap_or_duplicate_while_live_alerts_flow(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Hub(options(tmp_path)) as hub:
            d1, d2 = await desk_ws(hub.url, "desk-1"), await desk_ws(hub.url, "desk-2")
            for i in range(PRELOAD):
                await push(d1 if i % 2 else d2, f"pre:{i}", body(i))
            total = PRELOAD + LIVE

            async def produce(ws: ClientConnection, name: str, count: int) -> None:
                for i in range(count):
                    assert (await push(ws, f"{name}:{i}", body(i)))["type"] == "ack"
                    await asyncio.sleep(0.0005)  # a steady flow, so handovers overlap commits

            async def hopping_console() -> list[int]:
                """Catches up, takes a few live alerts, drops the link, resumes; again and
                again, so many history->live handovers happen while alerts are committed."""
                seen: list[int] = []
                while len(seen) < total:
                    ws = await console_ws(hub.url, since=seen[-1] if seen else 0)
                    live = -1  # counts alerts after caught_up
                    while live < 3 and len(seen) < total:
                        msg = await recv_json(ws, 10)
                        if msg["type"] == "caught_up":
                            live = 0
                        elif msg["type"] == "alert":
                            seen.append(msg["seq"])
                            live += live >= 0
                    ws.transport.abort()  # the link drops mid-stream
                return seen

            async def late_console() -> list[int]:
                await asyncio.sleep(0.05)  # joins while the producers are busy
                ws = await console_ws(hub.url, since=100)
                seqs = await read_alerts(ws, total - 100)
                await ws.close()
                return seqs

            results = await asyncio.gather(
                produce(d1, "live1", LIVE // 2), produce(d2, "live2", LIVE // 2),
                hopping_console(), hopping_console(), hopping_console(), late_console())
            for seen in results[2:5]:
                assert seen == list(range(1, total + 1))
            assert results[5] == list(range(101, total + 1))
    run(scenario(), timeout=30)


def test_slow_console_is_disconnected_and_resumes_without_loss(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Hub(options(tmp_path, queue_size=5)) as hub:
            fast = await console_ws(hub.url)
            assert (await recv_json(fast))["type"] == "caught_up"
            slow = await console_ws(hub.url)
            assert (await recv_json(slow))["type"] == "caught_up"
            # Make the hub's side of the slow console stall, as if its network were stuck.
            stalled = [c for c in hub._consoles if c.ws.remote_address[1] ==
                       slow.local_address[1]][0]
            never = asyncio.Event()

            async def stuck_send(message: str) -> None:
                await never.wait()
            stalled.ws.send = stuck_send  # type: ignore[method-assign]

            d = await desk_ws(hub.url)
            for i in range(12):
                await push(d, f"d:{i}", body(i))
            assert await close_of(slow) == (4429, "too slow: reconnect and resume from your "
                                                  "last seq")
            assert await read_alerts(fast, 12) == list(range(1, 13))
            again = await console_ws(hub.url, since=0)
            assert await read_alerts(again, 12) == list(range(1, 13))
    run(scenario())


def test_acknowledgements_reach_every_console(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Hub(options(tmp_path)) as hub:
            d = await desk_ws(hub.url)
            for i in range(3):
                await push(d, f"d:{i}", body(i))
            a, b = await console_ws(hub.url), await console_ws(hub.url)
            for c in (a, b):
                await recv_type(c, "caught_up")
            await a.send(json.dumps({"type": "ack_alert", "seq": 2, }))
            for c in (a, b):
                acked = await recv_type(c, "acked")
                assert acked["seq"] == 2 and acked["ack_seq"] == 1 and acked["by"] == "console"
            await b.send(json.dumps({"type": "ack_alert", "seq": 99}))
            err = await recv_type(b, "error")
            assert err["code"] == "no_such_alert"
            # A console that was away replays the acks it missed (ack_since) and sees the
            # acked state on the alerts themselves.
            # A console may not push alerts: an error, and the connection stays usable.
            await a.send(json.dumps({"type": "alert", "id": "x:1", "alert": body(1)}))
            assert (await recv_type(a, "error"))["code"] == "not_allowed"
            c = await raw(hub.url, {"type": "hello", "role": "console",
                                    "token": "console-token-for-tests-0001", "since": 0,
                                    "ack_since": 0, "name": "late"})
            frames = []
            while True:
                f = await recv_json(c)
                frames.append(f)
                if f["type"] == "caught_up":
                    break
            alerts = {f["seq"]: f for f in frames if f["type"] == "alert"}
            assert alerts[2]["acked_by"] == "console" and "acked_at" not in alerts[1]
            assert [f["seq"] for f in frames if f["type"] == "acked"] == [2]
    run(scenario())


def test_a_replaced_hub_database_restarts_the_console_from_zero(tmp_path: Path) -> None:
    async def scenario() -> None:
        from monitor.hub.console_client import ConsoleClient
        hub = Hub(options(tmp_path, db=tmp_path / "first.sqlite3"))
        await hub.start()
        port = hub.port
        d = await desk_ws(hub.url)
        for i in range(3):
            await push(d, f"d:{i}", body(i))
        client = ConsoleClient(hub.url, "console-token-for-tests-0001", backoff_min=0.05,
                               backoff_max=0.2)
        frames = client.frames()
        seqs = []
        while len(seqs) < 3:
            f = await asyncio.wait_for(frames.__anext__(), 5)
            if f["type"] == "alert":
                seqs.append(f["seq"])
        await hub.close()
        # A new, empty database behind the same address: its seq 1 is a new alert.
        async with Hub(options(tmp_path, db=tmp_path / "second.sqlite3", port=port)) as hub2:
            d = await desk_ws(hub2.url)
            await push(d, "new:1", body(9))
            kinds = []
            while True:
                f = await asyncio.wait_for(frames.__anext__(), 5)
                kinds.append(f["type"])
                if f["type"] == "alert":
                    assert f["seq"] == 1 and f["id"] == "new:1"
                    break
            assert "reset" in kinds
            await client.close()
            await frames.aclose()
    run(scenario())
