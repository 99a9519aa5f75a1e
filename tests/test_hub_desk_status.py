"""Desk status: call start/end, heartbeats and connection state in GET /api/desks and in
"desk" frames to consoles; the last call survives a hub restart; bad status is refused."""
from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from test_hub_support import (
    CONSOLE_TOKEN,
    DESK_TOKEN,
    body,
    close_of,
    console_ws,
    desk_ws,
    options,
    raw,
    recv_json,
    recv_type,
    run,
)

from monitor.hub.desk_client import DeskClient
from monitor.hub.protocol import DeskStatus, LastCall, ProtocolError, parse_message
from monitor.hub.server import Hub

pytestmark = pytest.mark.timeout(60)

T0 = 1_700_000_000.5  # a call start, unix seconds


def get(url: str, token: str | None = CONSOLE_TOKEN, method: str = "GET",
        headers: dict | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, method=method, headers=headers or {})
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


async def desks(hub: Hub) -> dict[str, dict]:
    status, data = await asyncio.to_thread(get, f"{hub.http_url}/api/desks")
    assert status == 200, data
    return {d["desk"]: d for d in data["desks"]}


async def desks_until(hub: Hub, ok: Callable[[dict[str, dict]], bool],
                      timeout: float = 5.0) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    while True:
        d = await desks(hub)
        if ok(d):
            return d
        assert time.monotonic() < deadline, f"timed out; /api/desks says {d}"
        await asyncio.sleep(0.05)


def client(hub: Hub, tmp_path: Path, desk: str = "desk-1", **kw: object) -> DeskClient:
    kw.setdefault("heartbeat_s", 0.2)
    return DeskClient(hub.url, DESK_TOKEN, desk, tmp_path / f"{desk}.spool",  # type: ignore[arg-type]
                      backoff_min=0.05, backoff_max=0.2, **kw)


def test_call_start_and_end_show_in_api_desks(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Hub(options(tmp_path)) as hub:
            assert await desks(hub) == {}
            other = await desk_ws(hub.url, "a-desk")  # sorts before desk-1
            d = client(hub, tmp_path)
            await d.start()
            await d.call_started("c-1", T0, "zte", peer="10086")
            got = await desks_until(hub, lambda s: bool(s.get("desk-1", {}).get("on_call")))
            one = got["desk-1"]
            assert one["connected"] and not one["stale"] and one["heartbeat"] == 0.2
            assert (one["call_id"], one["call_started"], one["profile"], one["peer"]) == \
                ("c-1", T0, "zte", "10086")
            assert one["last_call"] is None and one["last_alert"] is None
            assert abs(one["last_seen"] - time.time()) < 5
            _, data = await asyncio.to_thread(get, f"{hub.http_url}/api/desks")
            assert [x["desk"] for x in data["desks"]] == ["a-desk", "desk-1"]

            await d.send(body(1, rule="closing"))
            assert await d.flush(5)
            await d.call_ended("c-1", T0 + 60, 92.5, 2)
            one = (await desks_until(hub, lambda s: not s["desk-1"]["on_call"]))["desk-1"]
            assert one["call_id"] is None and one["call_started"] is None
            assert one["profile"] is None and one["peer"] is None
            assert one["last_call"] == {"call_id": "c-1", "score": 92.5, "ended": T0 + 60,
                                        "violations": 2}
            assert one["last_alert"]["rule"] == "closing" and one["last_alert"]["seq"] == 1

            # Heartbeats keep it fresh well past 3 heartbeat intervals.
            await asyncio.sleep(0.8)
            assert not (await desks(hub))["desk-1"]["stale"]

            await d.close()
            one = (await desks_until(hub, lambda s: not s["desk-1"]["connected"]))["desk-1"]
            assert one["last_call"]["score"] == 92.5  # its last state is kept
            await other.close()
    run(scenario())


def test_a_desk_whose_softphone_is_away_shows_it_and_keeps_it_across_calls(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Hub(options(tmp_path)) as hub:
            d = client(hub, tmp_path)
            await d.start()
            d.softphone("baresip away")  # no call is followed meanwhile: the board must say so
            got = await desks_until(hub, lambda s: s.get("desk-1", {}).get("softphone") == "baresip away")
            assert not got["desk-1"]["on_call"]
            d.softphone("baresip connected")
            await d.call_started("c-1", T0, "zte")
            got = await desks_until(hub, lambda s: bool(s.get("desk-1", {}).get("on_call")))
            assert got["desk-1"]["softphone"] == "baresip connected"
            await d.call_ended("c-1", T0 + 30, 85.0, 1)
            got = await desks_until(hub, lambda s: not s["desk-1"]["on_call"])
            assert got["desk-1"]["softphone"] == "baresip connected"
            await d.close()

    run(scenario())


def test_last_call_survives_a_hub_restart(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Hub(options(tmp_path)) as hub:
            d = client(hub, tmp_path, "desk-2")
            await d.start()
            await d.send(body(1))
            await d.call_started("c-9", T0, None)
            await d.call_ended("c-9", T0 + 30, 40.0, 3)
            assert await d.flush(5)
            await desks_until(hub, lambda s: s.get("desk-2", {}).get("last_call") is not None)
            await d.close()
            port = hub.port
        async with Hub(options(tmp_path, port=port)) as hub:
            two = (await desks(hub))["desk-2"]
            assert two["last_call"] == {"call_id": "c-9", "score": 40.0, "ended": T0 + 30,
                                        "violations": 3}
            assert two["last_alert"]["seq"] == 1 and two["last_alert"]["rule"] == "forbidden"
            assert not two["connected"] and not two["on_call"] and two["stale"]
            assert two["last_seen"] is None  # not seen since this hub started
            # A desk that comes back without a last call of its own does not erase it.
            d = client(hub, tmp_path, "desk-2")
            await d.start()
            two = (await desks_until(hub, lambda s: s["desk-2"]["connected"]))["desk-2"]
            await asyncio.sleep(0.1)
            assert (await desks(hub))["desk-2"]["last_call"]["call_id"] == "c-9"
            await d.close()
    run(scenario())


def test_consoles_get_desk_frames(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Hub(options(tmp_path)) as hub:
            c = await console_ws(hub.url)
            assert (await recv_json(c))["type"] == "caught_up"
            d = client(hub, tmp_path)
            await d.start()
            f = await recv_type(c, "desk")
            assert f["desk"] == "desk-1" and f["connected"] and not f["on_call"]
            await d.call_started("c-1", T0, "zte")
            while not (f := await recv_type(c, "desk"))["on_call"]:
                pass
            assert f["call_id"] == "c-1" and f["profile"] == "zte" and f["last_call"] is None
            # A console that joins later gets every desk's state right after caught_up.
            late = await console_ws(hub.url)
            assert (await recv_json(late))["type"] == "caught_up"
            snap = await recv_json(late)
            assert snap["type"] == "desk" and snap["on_call"] and snap["call_id"] == "c-1"
            # Heartbeats alone push nothing.
            with pytest.raises(TimeoutError):
                await recv_type(late, "desk", timeout=0.6)
            await d.call_ended("c-1", T0 + 5, 100, 0)
            f = await recv_type(c, "desk")
            assert not f["on_call"] and f["last_call"]["score"] == 100
            await d.close()
            f = await recv_type(c, "desk")
            assert not f["connected"] and f["last_call"]["call_id"] == "c-1"
            await c.close()
            await late.close()
    run(scenario())


def test_a_silent_desk_shows_stale_and_fresh_again(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Hub(options(tmp_path)) as hub:
            c = await console_ws(hub.url)
            await recv_type(c, "caught_up")
            ws = await raw(hub.url, {"type": "hello", "role": "desk", "token": DESK_TOKEN,
                                     "desk": "desk-3", "heartbeat": 0.1})
            assert (await recv_json(ws))["status"] is True
            assert not (await recv_type(c, "desk"))["stale"]
            f = await recv_type(c, "desk", timeout=3)  # no heartbeat for > 0.3 s
            assert f["stale"] and f["connected"]
            assert (await desks(hub))["desk-3"]["stale"]
            await ws.send(json.dumps({"type": "heartbeat"}))
            f = await recv_type(c, "desk")
            assert not f["stale"]
            await ws.close()
    run(scenario())


def test_api_desks_needs_a_console_token(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Hub(options(tmp_path)) as hub:
            api = f"{hub.http_url}/api/desks"
            status, data = await asyncio.to_thread(get, api, None)
            assert status == 401 and data == {"error": "missing token"}
            assert (await asyncio.to_thread(get, api, "wrong"))[0] == 401
            assert (await asyncio.to_thread(get, api, DESK_TOKEN))[0] == 401
            assert (await asyncio.to_thread(get, api, CONSOLE_TOKEN, "POST",
                                            {"Content-Length": "0"}))[0] == 405
            assert (await asyncio.to_thread(get, api, CONSOLE_TOKEN, "GET",
                                            {"Origin": "http://evil.example"}))[0] == 403
            status, data = await asyncio.to_thread(get, api)
            assert status == 200 and data["desks"] == [] and data["now"] > 0
    run(scenario())


def test_a_desk_bound_token_reports_only_its_own_desk(tmp_path: Path) -> None:
    async def scenario() -> None:
        opts = options(tmp_path, desk_tokens={"only-desk-7-token": "desk-7"})
        async with Hub(opts) as hub:
            problems: list[str] = []
            d = DeskClient(hub.url, "only-desk-7-token", "desk-8", tmp_path / "d8.spool",
                           on_problem=problems.append)
            await d.start()
            await d.call_started("c-1", T0, "zte")
            for _ in range(100):
                if problems:
                    break
                await asyncio.sleep(0.02)
            assert problems == ["hub refused desk desk-8: invalid token"]
            await d.close()
            ws = await raw(hub.url, {"type": "hello", "role": "desk",
                                     "token": "only-desk-7-token", "desk": "desk-7"})
            await recv_type(ws, "welcome")
            await ws.send(json.dumps({"type": "status", "desk": "desk-8", "status": {
                "state": "on_call", "call_id": "c-1", "call_started": T0}}))
            err = await recv_type(ws, "error")
            assert err["code"] == "not_allowed"
            seen = await desks(hub)
            assert "desk-8" not in seen and not seen["desk-7"]["on_call"]
            # Naming its own desk is fine.
            await ws.send(json.dumps({"type": "status", "desk": "desk-7", "status": {
                "state": "on_call", "call_id": "c-1", "call_started": T0}}))
            await desks_until(hub, lambda s: s["desk-7"]["on_call"])
            await ws.close()
    run(scenario())


BAD_STATUS = [
    ('{"type":"status"}', "bad_schema"),
    ('{"type":"status","status":[]}', "bad_schema"),
    ('{"type":"status","status":{"state":"busy"}}', "bad_value"),
    ('{"type":"status","status":{"state":"on_call","call_started":1}}', "bad_schema"),
    ('{"type":"status","status":{"state":"on_call","call_id":"c","call_started":NaN}}',
     "bad_json"),
    ('{"type":"status","status":{"state":"on_call","call_id":"c","call_started":"now"}}',
     "bad_type"),
    ('{"type":"status","status":{"state":"on_call","call_id":"c","call_started":true}}',
     "bad_type"),
    ('{"type":"status","status":{"state":"on_call","call_id":"c","call_started":-5}}',
     "bad_value"),
    ('{"type":"status","status":{"state":"on_call","call_id":"c","call_started":1e300}}',
     "bad_value"),
    (json.dumps({"type": "status", "status": {"state": "on_call", "call_id": "c" * 129,
                                              "call_started": 1}}), "too_long"),
    (json.dumps({"type": "status", "status": {"state": "on_call", "call_id": "c",
                                              "call_started": 1, "profile": "a\nb"}}),
     "bad_value"),
    (json.dumps({"type": "status", "status": {"state": "idle", "last_call": "c-1"}}),
     "bad_schema"),
    (json.dumps({"type": "status", "status": {"state": "idle", "last_call": {
        "call_id": "c", "score": 1, "ended": 1, "violations": -1}}}), "bad_type"),
    (json.dumps({"type": "status", "status": {"state": "idle", "last_call": {
        "call_id": "c", "score": 1, "ended": 1, "violations": 1.5}}}), "bad_type"),
    (json.dumps({"type": "status", "status": {"state": "idle", "last_call": {
        "call_id": "c", "score": 1e7, "ended": 1, "violations": 0}}}), "bad_value"),
    (json.dumps({"type": "status", "status": {"state": "idle", "last_call": {
        "call_id": "c", "ended": 1, "violations": 0}}}), "bad_type"),
    (json.dumps({"type": "status", "desk": "no such/desk", "status": {"state": "idle"}}),
     "bad_value"),
]


@pytest.mark.parametrize("frame,code", BAD_STATUS)
def test_bad_status_is_refused_by_the_parser(frame: str, code: str) -> None:
    with pytest.raises(ProtocolError) as exc:
        parse_message(frame)
    assert exc.value.code == code


def test_status_round_trips_and_idle_drops_call_fields() -> None:
    s = DeskStatus("on_call", "c-1", T0, "zte", "10086", LastCall("c-0", 88.0, T0 - 5, 1))
    assert DeskStatus.from_wire(json.loads(json.dumps(s.to_wire()))) == s
    idle = DeskStatus.from_wire({"state": "idle", "call_id": "c-1", "profile": "x"})
    assert idle == DeskStatus() and not idle.on_call
    with pytest.raises(ProtocolError):
        parse_message(json.dumps({"type": "hello", "role": "desk", "token": "t",
                                  "desk": "d", "heartbeat": 0}))


def test_malformed_status_frames_are_refused_and_counted(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Hub(options(tmp_path)) as hub:
            ws = await desk_ws(hub.url, "desk-4")
            for frame, code in BAD_STATUS:
                await ws.send(frame)
                reply = await recv_json(ws)
                assert reply["type"] == "error" and reply["code"] == code, (frame, reply)
            # The connection still works, for status and alerts alike.
            await ws.send(json.dumps({"type": "status", "status": {
                "state": "on_call", "call_id": "c-1", "call_started": T0}}))
            await ws.send(json.dumps({"type": "alert", "id": "a:1", "alert": body(1)}))
            assert (await recv_json(ws))["type"] == "ack"
            four = (await desks(hub))["desk-4"]
            assert four["on_call"] and four["call_id"] == "c-1" and four["connected"]
        async with Hub(options(tmp_path, max_errors=3)) as hub:
            ws = await desk_ws(hub.url, "desk-5")
            for frame, _ in BAD_STATUS[:4]:
                await ws.send(frame)
            assert (await close_of(ws))[0] == 1008  # too many invalid messages
            five = (await desks_until(hub, lambda s: not s["desk-5"]["connected"]))["desk-5"]
            assert not five["on_call"]
    run(scenario())


def test_desk_client_refuses_bad_status_values(tmp_path: Path) -> None:
    async def scenario() -> None:
        d = DeskClient("ws://127.0.0.1:9/ws", DESK_TOKEN, "desk-6", tmp_path / "d6.spool",
                       on_problem=lambda line: None)
        with pytest.raises(ValueError, match="call_started"):
            await d.call_started("c-1", float("nan"), "zte")
        with pytest.raises(ValueError, match="call_id"):
            await d.call_started("c" * 129, T0, "zte")
        # Display-only fields are made to fit instead of failing the call.
        await d.call_started("c-1", T0, "", peer="sip:" + "9" * 300 + "@pbx\r\n")
        assert d.status.profile is None and d.status.peer is not None
        assert len(d.status.peer) == 256 and d.status.peer.isprintable()
        with pytest.raises(ValueError, match="score"):
            await d.call_ended("c-1", T0, float("inf"), 0)
        await d.call_ended("c-1", T0, 95, ["one", "two"])  # violations as a list: counted
        assert d.status.last_call == LastCall("c-1", 95.0, T0, 2)
        with pytest.raises(ValueError, match="heartbeat"):
            DeskClient("ws://127.0.0.1:9/ws", DESK_TOKEN, "d", tmp_path / "x.spool",
                       heartbeat_s=0)
        with pytest.raises(ValueError, match="bad hub URL"):
            DeskClient("http://127.0.0.1:9/ws", DESK_TOKEN, "d", tmp_path / "x.spool")
        await d.close()
    run(scenario())
