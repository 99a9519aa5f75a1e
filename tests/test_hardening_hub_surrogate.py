"""Finding 1: one desk's alert text with a lone surrogate stalled every desk.

The text raised UnicodeEncodeError in the store, which only caught sqlite3.Error: the
transaction stayed open, other desks' writes failed, the sender was never disconnected,
and a console that joined meanwhile was shown a seq that was never committed.
"""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from test_hardening_hub_support import alert_frame
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

from monitor.hub.protocol import Alert, ProtocolError, parse_message
from monitor.hub.server import Hub, _Pending
from monitor.hub.store import AlertStore, StoreError

pytestmark = pytest.mark.timeout(60)

BAD = "\ud800"


def test_lone_surrogate_is_refused_at_the_protocol_edge() -> None:
    for field in ("text", "evidence", "call_id", "phrase"):
        with pytest.raises(ProtocolError) as exc:
            parse_message(alert_frame("d:1", body(1, **{field: f"abc{BAD}def"})))
        assert exc.value.code == "bad_value" and exc.value.ref == "d:1"
    with pytest.raises(ProtocolError):  # a desk status label too
        parse_message(json.dumps({"type": "status", "status": {
            "state": "on_call", "call_id": "c", "call_started": 1.0, "peer": BAD}}))


def test_a_failed_write_rolls_back_and_uses_no_seq(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "s.db")
    rec = Alert("", "c", "r", 0.0, 1.0, 1.0, f"bad {BAD}", "e", id="x:1")
    good = Alert("", "c", "r", 0.0, 1.0, 1.0, "good", "e", id="x:2")
    with pytest.raises(StoreError) as exc:
        store.insert_many([("desk-1", good), ("desk-1", rec)])
    assert not exc.value.transient  # the data, not the database: never retry it
    assert not store._db.in_transaction
    assert store.last_seq() == 0 and store.fetch_after(0) == []
    res = store.insert_many([("desk-1", good)])
    assert res[0].alert.seq == 1  # the failed batch used up no seq
    store.close()


def test_bad_desk_cannot_stall_others_or_leak_a_seq(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Hub(options(tmp_path, max_errors=5)) as hub:
            bad = await desk_ws(hub.url, "desk-bad")
            good = await desk_ws(hub.url, "desk-good")
            await bad.send(alert_frame("bad:0", body(0, text=f"x{BAD}y")))
            rej = await recv_type(bad, "reject")
            assert rej["id"] == "bad:0" and "surrogate" in rej["reason"]
            console = await console_ws(hub.url)
            assert (await recv_json(console))["type"] == "caught_up"
            for i in range(20):
                assert (await push(good, f"good:{i}", body(i)))["type"] == "ack"
            # A desk that keeps sending bad frames is disconnected.
            for i in range(1, 10):
                await bad.send(alert_frame(f"bad:{i}", body(i, evidence=BAD)))
            assert (await close_of(bad))[0] == 1008
            seen = [m["seq"] for m in [await recv_type(console, "alert") for _ in range(20)]]
            assert seen == list(range(1, 21))
            assert not hub.store._db.in_transaction
            assert [a.seq for a in hub.store.fetch_after(0)] == seen  # all committed
    run(scenario())


def test_a_poisoned_batch_does_not_fail_the_other_alerts_in_it(tmp_path: Path) -> None:
    """Even if something the protocol let through makes the store fail, only that alert
    fails: the batch is retried one by one and the others are committed and shown."""
    async def scenario() -> None:
        async with Hub(options(tmp_path)) as hub:
            console = await console_ws(hub.url)
            await recv_type(console, "caught_up")
            loop = asyncio.get_running_loop()
            recs = [Alert("", "c", "r", 0.0, 1.0, 1.0,
                                BAD if i == 2 else f"ok {i}", "e", id=f"p:{i}") for i in range(5)]
            pend = [_Pending("desk-1", r, loop.create_future()) for r in recs]
            hub._commit(pend)
            assert isinstance(pend[2].done.exception(), StoreError)
            assert [p.done.result().alert.seq for i, p in enumerate(pend) if i != 2] == \
                [1, 2, 3, 4]
            seen = [(await recv_type(console, "alert"))["id"] for _ in range(4)]
            assert seen == ["p:0", "p:1", "p:3", "p:4"]
    run(scenario())
