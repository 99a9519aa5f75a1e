"""Finding 4: no limits per address or per token.

Wrong tokens were answered at full speed with no slow-down; the close reason told a
guesser when a token was another desk's valid token; one desk token flooded thousands of
alerts a second and grew the database without bound. Now: failed authentications block
the address for a growing time (HTTP 429), every refusal reads the same, each desk has a
rate and a size quota (over it: a "reject" frame with the reason), and --retain-days
prunes old alerts.
"""
from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from test_hardening_hub_support import get, http, raw_from
from test_hub_support import (
    CONSOLE_TOKEN,
    DESK_TOKEN,
    body,
    close_of,
    console_ws,
    desk_ws,
    options,
    push,
    recv_json,
    recv_type,
    run,
)
from websockets.exceptions import InvalidStatus

from monitor.hub.desk_client import DeskClient
from monitor.hub.protocol import Alert
from monitor.hub.server import Hub
from monitor.hub.store import AlertStore

pytestmark = pytest.mark.timeout(60)


def test_wrong_tokens_block_the_address_not_everyone(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Hub(options(tmp_path, auth_failures=5)) as hub:
            outcomes = []
            t0 = time.monotonic()
            for i in range(30):
                try:
                    ws = await raw_from(hub.url, "127.0.0.4", {
                        "type": "hello", "role": "console", "token": f"guess-{i:04d}"})
                    outcomes.append(await close_of(ws))
                except InvalidStatus as exc:
                    outcomes.append(exc.response.status_code)
                    assert int(exc.response.headers["Retry-After"]) >= 1
            assert time.monotonic() - t0 < 10
            answered = [o for o in outcomes if o != 429]
            assert answered == [(4401, "invalid token")] * 5  # then blocked
            assert outcomes.count(429) == 25
            # The right token from another address is not affected.
            c = await console_ws(hub.url)
            assert (await recv_json(c))["type"] == "caught_up"
            # The HTTP API counts and blocks the same way.
            statuses = [(await http(hub.port, get("/api/alerts", "Host: x",
                                                  f"Authorization: Bearer nope{i}"),
                                    src="127.0.0.5"))[0] for i in range(8)]
            assert statuses == [401] * 5 + [429] * 3
            # The block ends (1 s, doubling); a success clears the count.
            await asyncio.sleep(1.1)
            status, _, _ = await http(hub.port, get("/api/alerts", "Host: x",
                                                    f"Authorization: Bearer {CONSOLE_TOKEN}"),
                                      src="127.0.0.5")
            assert status == 200
    run(scenario())


def test_every_refusal_reads_the_same(tmp_path: Path) -> None:
    async def scenario() -> None:
        opts = options(tmp_path, desk_tokens={"bound-token-for-desk-7": "desk-7"})
        async with Hub(opts) as hub:
            hellos = [
                {"type": "hello", "role": "console", "token": "not-a-token-at-all"},
                {"type": "hello", "role": "console", "token": DESK_TOKEN},
                {"type": "hello", "role": "desk", "token": CONSOLE_TOKEN, "desk": "d"},
                {"type": "hello", "role": "desk", "token": "bound-token-for-desk-7",
                 "desk": "desk-8"},
                {"type": "hello", "role": "desk", "token": "not-a-token-at-all", "desk": "d"},
            ]
            got = []
            for i, h in enumerate(hellos):
                ws = await raw_from(hub.url, f"127.0.1.{i + 1}", h)
                got.append(await close_of(ws))
            assert got == [(4401, "invalid token")] * len(hellos)
    run(scenario())


def test_desk_rate_quota_rejects_with_a_reason(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Hub(options(tmp_path, desk_rate=2.0, desk_burst=10)) as hub:
            d = await desk_ws(hub.url, "desk-flood")
            other = await desk_ws(hub.url, "desk-calm")
            for i in range(40):
                await d.send(json.dumps({"type": "alert", "id": f"f:{i}", "alert": body(i)}))
            replies = [await recv_json(d) for _ in range(40)]
            acks = [r for r in replies if r["type"] == "ack"]
            rejects = [r for r in replies if r["type"] == "reject"]
            assert 10 <= len(acks) <= 11 and len(acks) + len(rejects) == 40
            assert all(r["code"] == "over_quota" and r["reason"].startswith("over quota")
                       for r in rejects)
            # Over quota is not a protocol error: the desk stays connected...
            assert (await push(d, "f:0", body(0)))["duplicate"] is True  # ...resend is free
            # ...and another desk has its own quota.
            assert (await push(other, "c:1", body(1)))["type"] == "ack"
            assert hub.store.count() == len(acks) + 1
    run(scenario())


def test_desk_size_quota(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Hub(options(tmp_path, desk_bytes_per_day=3000)) as hub:
            d = await desk_ws(hub.url)
            kinds = [(await push(d, f"s:{i}", body(i, text="x" * 400)))["type"]
                     for i in range(12)]
            assert kinds[:4] == ["ack"] * 4 and kinds[-1] == "reject"
    run(scenario())


def test_desk_client_keeps_and_logs_over_quota_alerts(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Hub(options(tmp_path, desk_rate=0.5, desk_burst=3)) as hub:
            client = DeskClient(hub.url, DESK_TOKEN, "desk-1", tmp_path / "spool.db",
                                backoff_min=0.05, backoff_max=0.2)
            await client.start()
            for i in range(6):
                await client.send(body(i))
            await client.flush(10)
            rejected = client.rejected()
            assert len(rejected) >= 2 and all("over quota" in r for _, r in rejected)
            assert hub.store.count() + len(rejected) == 6
            await client.close()
    run(scenario())


def test_retain_days_prunes_old_alerts_and_keeps_seqs(tmp_path: Path) -> None:
    db = tmp_path / "hub.sqlite3"
    store = AlertStore(db)
    for i in range(30):
        store.insert_many([("desk-1", Alert("", "c", "r", 0.0, 1.0, 1.0,
                                                  "t", "e", id=f"a:{i}"))])
    store.ack(3, "sup")
    store._db.execute("UPDATE alerts SET received = received - 10 * 86400 WHERE seq <= 20")
    store.close()

    async def scenario() -> None:
        async with Hub(options(tmp_path, db=db, retain_days=7)) as hub:
            for _ in range(100):
                if hub.store.count() == 10:
                    break
                await asyncio.sleep(0.02)
            assert [a.seq for a in hub.store.fetch_after(0)] == list(range(21, 31))
            assert hub.store.acks_after(0) == []
            d = await desk_ws(hub.url)
            assert (await push(d, "new", body(1)))["seq"] == 31
            c = await console_ws(hub.url)
            assert (await recv_type(c, "caught_up"))["seq"] == 31
    run(scenario())
