"""Protocol fuzz: random frames at a running in-process hub, then the guarantees.

For a bounded time (FUZZ_SECONDS) Hypothesis throws random frames (broken JSON, wrong
types, lone surrogates, huge numbers, deep nesting, binary, unknown types, valid frames
with damaged fields) at the hub as an authenticated desk, as a console and before
authenticating, while a legitimate desk pushes alerts and a console watches. Afterwards:
the hub is alive, every legitimate alert is stored exactly once, the watching console saw
only committed seqs, and consoles resuming from 0 or from the middle get every committed
seq in order, with no gap and no duplicate.
"""
from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from test_hub_support import (
    CONSOLE_TOKEN,
    DESK_TOKEN,
    body,
    console_ws,
    desk_ws,
    options,
    push,
    recv_json,
)
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import connect as sync_connect

from monitor.hub.server import Hub

pytestmark = pytest.mark.timeout(120)

FUZZ_SECONDS = 4.0
LEGIT = 60
MAX_EXAMPLES = 400  # and at most FUZZ_SECONDS of sending: whichever comes first

weird_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["\ud800", "\udfff", "a\udc80b", "", "\x00", "\u202e", "\n", "x" * 5000,
                     "desk-1", "../../etc/passwd", "' OR 1=1 --"]),
)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70),
    st.sampled_from([10**400, -10**400, 2**63, 2**62 + 1, -1, 0]),
    st.floats(allow_nan=True, allow_infinity=True), weird_text)
values = st.recursive(scalars, lambda c: st.lists(c, max_size=4)
                      | st.dictionaries(weird_text, c, max_size=4), max_leaves=12)
FIELDS = ["call_id", "rule", "start", "end", "emitted", "text", "evidence", "phrase",
          "severity"]
alert_bodies = st.builds(lambda i, over, drop: {k: v for k, v in {**body(i), **over}.items()
                                                if k not in drop},
                         st.integers(0, 1000), st.one_of(st.just({}), st.dictionaries(
                             st.sampled_from(FIELDS), values, max_size=3)),
                         st.sets(st.sampled_from(FIELDS), max_size=2))
objects = st.one_of(
    st.builds(lambda i, b: {"type": "alert", "id": i, "alert": b},
              st.one_of(st.from_regex(r"fz:[a-z0-9]{1,8}", fullmatch=True), values),
              st.one_of(alert_bodies, values)),
    st.builds(lambda i, b: {"type": "alert", "id": i, "alert": b},  # near-valid alerts
              st.from_regex(r"fz:[a-z0-9]{1,8}", fullmatch=True), alert_bodies),
    st.builds(lambda s: {"type": "ack_alert", "seq": s}, st.one_of(st.integers(0, 80),
                                                                   values)),
    st.builds(lambda s, d: {"type": "status", "status": s, "desk": d},
              st.one_of(values, st.fixed_dictionaries(
                  {"state": st.sampled_from(["idle", "on_call", "x"])},
                  optional={k: values for k in ("call_id", "call_started", "profile", "peer",
                                                "last_call")})),
              st.one_of(st.none(), weird_text)),
    st.builds(lambda r, t, extra: {"type": "hello", "role": r, "token": t, **extra},
              st.sampled_from(["desk", "console", "admin"]),
              st.one_of(st.sampled_from([DESK_TOKEN, CONSOLE_TOKEN]), weird_text),
              st.dictionaries(st.sampled_from(["desk", "since", "tail", "epoch", "heartbeat",
                                               "ack_since", "name"]), values, max_size=3)),
    st.just({"type": "heartbeat"}),
    st.dictionaries(weird_text, values, max_size=4),
)
frames = st.one_of(
    objects.map(lambda o: json.dumps(o, allow_nan=True)),  # ensure_ascii: "\ud800" escapes
    st.binary(max_size=64),
    st.text(max_size=64),
    st.sampled_from(["[" * 50000, '{"type":"alert"' * 10, "NaN", "1e999999", "{}", "null"]),
)


class HubThread:
    """The hub on its own event loop in a thread, so Hypothesis can drive plain sockets."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.call(hub.start())

    def call(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.call(self.hub.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def throw_frames(port: int, src: str, hello: dict | None, batch: list) -> None:
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5,
                                        source_address=(src, 0))
        with sync_connect(f"ws://127.0.0.1:{port}/ws", sock=sock, open_timeout=5,
                          close_timeout=0.5, compression=None, max_size=None) as ws:
            if hello is not None:
                ws.send(json.dumps(hello))
                ws.recv(timeout=5)  # welcome
            for f in batch:
                ws.send(f)
            while True:  # read what the hub answers until it goes quiet or closes
                ws.recv(timeout=0.02)
    except (InvalidHandshake, ConnectionClosed, TimeoutError, OSError):
        pass  # refused (e.g. this address is blocked after bad hellos), closed, or quiet


# The strategies hold deliberately huge values (their repr is long), and the websockets
# client draws its masks from `random` while a frame is sent: both only warn.
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
def test_random_frames_do_not_break_storage_or_resume(tmp_path: Path) -> None:
    hub = Hub(options(tmp_path, max_errors=10))
    ht = HubThread(hub)
    port = hub.port
    watch: dict[str, Any] = {"seqs": []}
    try:
        async def start_legit() -> None:
            watch["desk"] = await desk_ws(hub.url, "legit")
            watch["console"] = c = await console_ws(hub.url)

            async def read() -> None:
                try:
                    while True:
                        m = await recv_json(c, 60)
                        if m["type"] == "alert":
                            watch["seqs"].append(m["seq"])
                except (ConnectionClosed, asyncio.CancelledError):
                    pass
            watch["reader"] = asyncio.create_task(read())
        ht.call(start_legit())
        acks: list[dict] = []

        async def push_legit(lo: int, hi: int) -> None:
            for i in range(lo, hi):
                acks.append(await push(watch["desk"], f"legit:{i}", body(i)))

        end = time.monotonic() + FUZZ_SECONDS
        sent = {"examples": 0}
        errors: list[str] = []

        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
                  phases=[Phase.generate], suppress_health_check=list(HealthCheck))
        @given(who=st.sampled_from(["desk", "console", "anon"]),
               batch=st.lists(frames, min_size=1, max_size=6))
        def throw(who: str, batch: list) -> None:
            if time.monotonic() > end:
                return
            sent["examples"] += 1
            if sent["examples"] % 25 == 0:  # legit traffic interleaved with the fuzz
                n = len(acks)
                ht.call(push_legit(n, min(LEGIT, n + 3)))
            hello = {"desk": {"type": "hello", "role": "desk", "token": DESK_TOKEN,
                              "desk": "fuzz"},
                     "console": {"type": "hello", "role": "console", "token": CONSOLE_TOKEN,
                                 "since": 0, "tail": 5},
                     "anon": None}[who]
            src = "127.0.0.10" if who == "anon" else "127.0.0.9"
            try:
                throw_frames(port, src, hello, batch)
            except Exception as exc:  # recorded, not raised: Hypothesis would replay it
                errors.append(f"{who} {batch!r:.300}: {exc!r}")

        throw()
        assert not errors, errors[:5]
        assert sent["examples"] > 50, sent
        ht.call(push_legit(len(acks), LEGIT))

        async def check() -> None:
            assert hub.store is not None and not hub.store._db.in_transaction
            assert [a["type"] for a in acks] == ["ack"] * LEGIT
            assert all(not a["duplicate"] for a in acks)
            stored = hub.store.fetch_after(0, 100_000)
            legit = [a for a in stored if a.desk == "legit"]
            assert sorted(a.id for a in legit) == sorted(f"legit:{i}" for i in range(LEGIT))
            assert {a["seq"] for a in acks} == {a.seq for a in legit}
            all_seqs = [a.seq for a in stored]
            print(f"fuzz: {sent['examples']} examples, {len(stored) - LEGIT} fuzz alerts "
                  f"stored, {hub.store.last_ack_seq()} acks")
            assert all_seqs == sorted(set(all_seqs))
            await asyncio.sleep(0.2)
            watch["reader"].cancel()
            seen = watch["seqs"]
            assert set(seen) <= set(all_seqs)  # no seq that was never committed
            assert seen == all_seqs  # the live console missed nothing
            for since in (0, all_seqs[len(all_seqs) // 2]):
                c = await console_ws(hub.url, since=since)
                got = []
                while True:
                    m = await recv_json(c)
                    if m["type"] == "caught_up":
                        break
                    if m["type"] == "alert":
                        got.append(m["seq"])
                assert got == [s for s in all_seqs if s > since]
                await c.close()
            # the hub still serves a fresh desk normally
            d = await desk_ws(hub.url, "after")
            assert (await push(d, "after:1", body(1)))["type"] == "ack"
            await d.close()
            await watch["desk"].close()
            await watch["console"].close()
        ht.call(check())
    finally:
        ht.stop()
