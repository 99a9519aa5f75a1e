"""Untrusted input: malformed, wrongly typed and oversized frames; duplicate alerts."""
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
    recv_json,
    recv_type,
    run,
)

from monitor.hub.server import Hub

pytestmark = pytest.mark.timeout(60)


def test_malformed_frames_get_errors_and_the_desk_keeps_working(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Hub(options(tmp_path)) as hub:
            d = await desk_ws(hub.url)
            for frame, code in [("{oops", "bad_json"), ("42", "bad_schema"),
                                (b"\x01\x02", "binary"),
                                (json.dumps({"type": "warp"}), "unknown_type"),
                                (json.dumps({"type": "ack_alert", "seq": 1}), "not_allowed")]:
                await d.send(frame)
                reply = await recv_json(d)
                assert reply == {"type": "error", "code": code, "message": reply["message"]}
            # Readable frame, invalid alert: a reject naming the id, so a desk stops resending.
            reply = await push(d, "d1:bad", body(1, start="soon"))
            assert reply["type"] == "reject" and reply["id"] == "d1:bad"
            assert reply["code"] == "bad_type"
            # Same connection still stores good alerts.
            assert (await push(d, "d1:good", body(2)))["type"] == "ack"
            assert hub.store is not None and hub.store.count() == 1
    run(scenario())


def test_too_many_errors_close_the_connection(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Hub(options(tmp_path, max_errors=3)) as hub:
            d = await desk_ws(hub.url)
            for _ in range(4):
                await d.send("{")
            assert (await close_of(d))[0] == 1008
    run(scenario())


def test_oversized_frame_closes_only_that_client(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Hub(options(tmp_path, max_message_bytes=4096)) as hub:
            c = await console_ws(hub.url)
            assert (await recv_json(c))["type"] == "caught_up"
            good = await desk_ws(hub.url, "desk-good")
            bad = await desk_ws(hub.url, "desk-bad")
            await bad.send(json.dumps({"type": "alert", "id": "b:1",
                                       "alert": body(1, text="字" * 3000)}))
            assert (await close_of(bad))[0] == 1009  # message too big
            # Everyone else is unaffected.
            assert (await push(good, "g:1", body(1)))["seq"] == 1
            alert = await recv_type(c, "alert")
            assert alert["desk"] == "desk-good" and alert["seq"] == 1
    run(scenario())


def test_duplicate_alerts_are_stored_once_and_acked_again(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Hub(options(tmp_path)) as hub:
            c = await console_ws(hub.url)
            assert (await recv_json(c))["type"] == "caught_up"
            d = await desk_ws(hub.url, "desk-1")
            first = await push(d, "desk-1:000001", body(1))
            again = await push(d, "desk-1:000001", body(1))
            assert first == {"type": "ack", "id": "desk-1:000001", "seq": 1, "duplicate": False}
            assert again == {"type": "ack", "id": "desk-1:000001", "seq": 1, "duplicate": True}
            # A resend on a new connection (after a lost ack) is also recognised.
            await d.close()
            d = await desk_ws(hub.url, "desk-1")
            assert (await push(d, "desk-1:000001", body(1)))["duplicate"] is True
            # The same id from another desk is another alert: ids are scoped by desk.
            other = await desk_ws(hub.url, "desk-2")
            assert (await push(other, "desk-1:000001", body(1)))["seq"] == 2
            assert (await push(d, "desk-1:000002", body(2)))["seq"] == 3
            seqs = [(await recv_type(c, "alert"))["seq"] for _ in range(3)]
            assert seqs == [1, 2, 3]
            assert hub.store is not None and hub.store.count() == 3
    run(scenario())


def test_alert_fields_are_stored_as_sent(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Hub(options(tmp_path)) as hub:
            d = await desk_ws(hub.url, "desk-5")
            await push(d, "desk-5:1", body(7, severity="critical"))
            c = await console_ws(hub.url)
            a = await recv_type(c, "alert")
            b = body(7, severity="critical")
            for k in ("call_id", "rule", "start", "end", "emitted", "text", "evidence",
                      "phrase", "severity"):
                assert a[k] == b[k], k
            assert a["desk"] == "desk-5" and a["id"] == "desk-5:1" and a["received"] > 0
    run(scenario())


def test_keepalive_drops_a_silent_peer(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Hub(options(tmp_path, ping_interval=0.2, ping_timeout=0.3,
                               close_timeout=0.3)) as hub:
            c = await console_ws(hub.url)
            assert (await recv_json(c))["type"] == "caught_up"
            assert len(hub._consoles) == 1
            c.transport.pause_reading()  # a frozen client: never answers the hub's pings
            for _ in range(50):
                if not hub._consoles:
                    break
                await asyncio.sleep(0.05)
            assert not hub._consoles  # the hub noticed and let it go
            live = await console_ws(hub.url)  # a responsive one stays
            await asyncio.sleep(0.8)
            assert len(hub._consoles) == 1
            await live.close()
    run(scenario())
