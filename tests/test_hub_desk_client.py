"""Desk client: alerts spooled while the hub is away are resent; nothing lost or doubled."""
from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pytest
from test_hub_support import (
    CONSOLE_TOKEN,
    DESK_TOKEN,
    body,
    console_ws,
    free_port,
    hub_process,
    options,
    raw,
    recv_json,
    run,
    wait_port,
)

from monitor.hub.console_client import ConsoleClient
from monitor.hub.desk_client import DeskClient
from monitor.hub.protocol import Alert
from monitor.hub.server import Hub

pytestmark = pytest.mark.timeout(60)


async def all_alerts(url: str, expect: int, timeout: float = 10.0) -> list[dict]:
    """Every stored alert, read by a fresh console from seq 0."""
    ws = await console_ws(url)
    alerts: list[dict] = []
    while True:
        msg = await recv_json(ws, timeout)
        if msg["type"] == "alert":
            alerts.append(msg)
        elif msg["type"] == "caught_up" and len(alerts) >= expect:
            break
    await ws.close()
    return alerts


def test_alerts_queued_before_the_hub_starts_are_delivered(tmp_path: Path) -> None:
    async def scenario() -> None:
        port = free_port()
        desk = DeskClient(f"ws://127.0.0.1:{port}/ws", DESK_TOKEN, "desk-1",
                          tmp_path / "desk-1.spool", backoff_min=0.05, backoff_max=0.2)
        await desk.start()
        ids = [await desk.send(body(i)) for i in range(20)]
        await desk.send(Alert("ignored-desk-field", "call-x", "closing", 1.0, 2.0, 2.1,
                              "好的", "no 再见"))
        await asyncio.sleep(0.3)
        assert desk.pending == 21 and not desk.connected and desk.last_error
        assert not await desk.flush(0.1)
        async with Hub(options(tmp_path, port=port)) as hub:
            assert await desk.flush(10)
            alerts = await all_alerts(hub.url, 21)
            assert [a["seq"] for a in alerts] == list(range(1, 22))
            assert [a["id"] for a in alerts[:20]] == ids
            assert alerts[20]["desk"] == "desk-1"  # the hub names the desk, not the payload
        await desk.close()
    run(scenario())


def test_unacked_alerts_survive_a_desk_restart(tmp_path: Path) -> None:
    async def scenario() -> None:
        port = free_port()
        url = f"ws://127.0.0.1:{port}/ws"
        spool = tmp_path / "desk-2.spool"
        desk = DeskClient(url, DESK_TOKEN, "desk-2", spool, backoff_min=0.05)
        await desk.start()
        for i in range(5):
            await desk.send(body(i))
        await desk.close()  # desk process goes away with 5 alerts unsent
        async with Hub(options(tmp_path, port=port)) as hub:
            desk = DeskClient(url, DESK_TOKEN, "desk-2", spool, backoff_min=0.05)
            assert desk.pending == 5
            await desk.start()
            assert await desk.flush(10)
            await desk.close()
            assert len(await all_alerts(hub.url, 5)) == 5
    run(scenario())


def test_hub_sigkill_and_restart_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        port, db = free_port(), tmp_path / "hub.sqlite3"
        url = f"ws://127.0.0.1:{port}/ws"
        proc = hub_process(port, db, log=tmp_path / "hub.log")
        desks: list[DeskClient] = []
        console = ConsoleClient(url, CONSOLE_TOKEN, dedupe=False, backoff_min=0.05,
                                backoff_max=0.3)
        received: list[dict] = []

        async def watch() -> None:
            async for f in console.frames():
                if f["type"] == "alert":
                    received.append(f)
        try:
            await wait_port(port)
            watcher = asyncio.create_task(watch())
            desks = [DeskClient(url, DESK_TOKEN, f"desk-{i}", tmp_path / f"d{i}.spool",
                                backoff_min=0.05, backoff_max=0.3) for i in range(3)]
            for d in desks:
                await d.start()
            sent = []
            for i in range(60):
                sent.append(await desks[i % 3].send(body(i)))
                await asyncio.sleep(0.003)
                if i == 30:
                    proc.send_signal(signal.SIGKILL)  # mid-stream, acks in flight
                    proc.wait()
            await asyncio.sleep(0.3)
            assert sum(d.pending for d in desks) > 0  # spooled while the hub is down
            proc = hub_process(port, db, log=tmp_path / "hub.log")
            for d in desks:
                assert await d.flush(15)
            for _ in range(200):
                if len(received) >= len(sent):
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)
            ids = [a["id"] for a in received]
            assert sorted(ids) == sorted(sent)  # each alert exactly once
            assert [a["seq"] for a in received] == list(range(1, len(sent) + 1))
            await console.close()
            await watcher
        finally:
            for d in desks:
                await d.close()
            proc.terminate()
            proc.wait(10)
    run(scenario(), timeout=45)


def test_invalid_alerts_fail_at_send_and_hub_rejects_are_parked(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Hub(options(tmp_path)) as hub:
            desk = DeskClient(hub.url, DESK_TOKEN, "desk-3", tmp_path / "d3.spool")
            await desk.start()
            with pytest.raises(ValueError):
                await desk.send(body(1, start=float("nan")))
            with pytest.raises(ValueError):
                await desk.send(body(1, rule="not a rule name"))
            # An alert that slipped into the spool but the hub refuses is parked, not
            # resent forever.
            bad = {"type": "alert", "id": "desk-3:bad", "alert": body(1, text=7)}
            desk._spool.add("desk-3:bad", json.dumps(bad))
            desk._update_events()
            desk._new.set()
            assert await desk.flush(5)
            assert desk.rejected()[0][0] == "desk-3:bad"
            await desk.close()
    run(scenario())


def test_wrong_desk_token_is_reported_and_alerts_stay_spooled(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Hub(options(tmp_path)) as hub:
            desk = DeskClient(hub.url, CONSOLE_TOKEN, "desk-4", tmp_path / "d4.spool",
                              backoff_min=0.05)
            await desk.start()
            await desk.send(body(1))
            for _ in range(100):
                if desk.last_error:
                    break
                await asyncio.sleep(0.02)
            assert desk.last_error == "hub refused desk desk-4: invalid token"
            assert desk.pending == 1
            await desk.close()
            ws = await raw(hub.url, {"type": "hello", "role": "console", "token": CONSOLE_TOKEN})
            assert (await recv_json(ws))["last_seq"] == 0
    run(scenario())
