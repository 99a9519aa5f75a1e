"""A damaged desk spool: never lose unsent alerts silently, never crash with a traceback.

Real damaged files: a spool holding unsent alerts is truncated, has bytes flipped in its
header or in the middle, is replaced by a file that is not SQLite, by an empty file or by a
folder. A damaged spool is moved aside (kept, named in an error), whatever can still be
read from it goes into a new spool and reaches the hub.
"""
from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from test_hub_support import (
    DESK_TOKEN,
    body,
    console_ws,
    free_port,
    options,
    recv_json,
    run,
)

from monitor.hub.desk_client import DeskClient
from monitor.hub.server import Hub
from monitor.hub.spool import Spool

pytestmark = pytest.mark.timeout(120)

PAGE = 4096


def make_spool(path: Path, n: int, text: str = "") -> list[str]:
    """A spool left behind by a desk that could not reach its hub: n unsent alerts."""
    async def go() -> list[str]:
        desk = DeskClient(f"ws://127.0.0.1:{free_port()}/ws", DESK_TOKEN, "desk-1", path,
                          backoff_min=5, backoff_max=5)
        ids = [await desk.send(body(i, text=f"{text}alert #{i}")) for i in range(n)]
        await desk.close()
        return ids
    ids = run(go())
    assert not path.with_name(path.name + "-wal").exists()  # all in the main file
    return ids


def flip(data: bytes, at: int, n: int) -> bytes:
    b = bytearray(data)
    for i in range(at, at + n):
        b[i] ^= 0xA5
    return bytes(b)


def quarantined(path: Path) -> list[Path]:
    return sorted(p for p in path.parent.glob(path.name + ".corrupt-*") if not p.name.endswith(("-wal", "-shm")))


async def hub_alert_ids(url: str, expect: int) -> set[str]:
    ws = await console_ws(url)
    got: set[str] = set()
    while True:
        msg = await recv_json(ws, 10)
        if msg["type"] == "alert":
            got.add(msg["id"])
        elif msg["type"] == "caught_up" and len(got) >= expect:
            break
    await ws.close()
    return got


def deliver(tmp_path: Path, spool: Path) -> tuple[int, set[str]]:
    """Start a desk on the spool with a hub up; (pending at start, ids the hub stored)."""
    async def go() -> tuple[int, set[str]]:
        async with Hub(options(tmp_path, db=tmp_path / "hub.sqlite3")) as hub:
            desk = DeskClient(hub.url, DESK_TOKEN, "desk-1", spool, backoff_min=0.05)
            pending = desk.pending
            await desk.start()
            assert await desk.flush(10)
            await desk.close()
            return pending, await hub_alert_ids(hub.url, pending) if pending else set()
    return run(go())


# -- damaged files ------------------------------------------------------------------------

DAMAGE = {
    # (how the bytes are damaged, must every alert come back?)
    "truncated after the alerts' page": (lambda b: b[:2 * PAGE + 100], True),
    "truncated to its first page": (lambda b: b[:PAGE], False),
    "truncated mid-page": (lambda b: b[:len(b) // 2 + 7], False),
    "magic header flipped": (lambda b: flip(b, 0, 16), True),
    "page size flipped": (lambda b: flip(b, 16, 2), True),
    "header fields flipped": (lambda b: flip(b, 16, 40), True),
    "alerts page header flipped": (lambda b: flip(b, PAGE, 12), True),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_spool_is_quarantined_and_its_alerts_still_reach_the_hub(tmp_path, caplog, case):
    spool = tmp_path / "desk-1.spool"
    ids = make_spool(spool, 3)
    damage, all_back = DAMAGE[case]
    damaged = damage(spool.read_bytes())
    spool.write_bytes(damaged)
    with caplog.at_level(logging.WARNING):
        pending, stored = deliver(tmp_path, spool)
    (q,) = quarantined(spool)
    assert q.read_bytes() == damaged, "the damaged file must be kept as it was"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(str(q) in r.getMessage() for r in errors), "the error must name the quarantined file"
    assert stored <= set(ids) and len(stored) == pending
    if all_back:
        assert stored == set(ids), f"{case}: readable alerts were not salvaged"
    else:
        assert "may be lost" in errors[0].getMessage()
    # The new spool is a healthy one.
    db = sqlite3.connect(spool)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.close()


def test_bytes_flipped_in_the_middle_of_a_large_spool(tmp_path, caplog):
    spool = tmp_path / "desk-1.spool"
    ids = make_spool(spool, 300, text="长一点的告警文字，" * 5)
    data = spool.read_bytes()
    mid = len(data) // 2
    spool.write_bytes(flip(data, mid - 32, 64))
    with caplog.at_level(logging.WARNING):
        desk = DeskClient(f"ws://127.0.0.1:{free_port()}/ws", DESK_TOKEN, "desk-1", spool)
        pending, rejected = desk.pending, desk.rejected()
        desk._spool.close()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors, "damage in the middle went unnoticed"
    # Every alert is either still to be sent or kept as damaged; 64 bytes touch at most 2.
    assert pending + len(rejected) >= len(ids) - 2
    assert all("damaged" in reason for _, reason in rejected)


def test_a_frame_damaged_inside_its_text_is_parked_not_sent_forever(tmp_path, caplog):
    spool = tmp_path / "desk-1.spool"
    ids = make_spool(spool, 3)
    data = spool.read_bytes()
    at = data.index(b'"rule":"forbidden"')  # inside one frame: SQLite cannot notice
    spool.write_bytes(data[:at] + b'"rule"\xff"forbidden"' + data[at + 18:])  # same length
    with caplog.at_level(logging.WARNING):
        pending, stored = deliver(tmp_path, spool)
    assert pending == 2 and len(stored) == 2 and stored < set(ids)
    assert any("damaged" in r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    s = Spool(spool)
    assert [reason for _, reason in s.rejected()] == [
        "damaged in the desk spool file (not a valid alert frame)"]
    s.close()


def test_a_file_that_is_not_sqlite_is_kept_and_reported(tmp_path, caplog):
    spool = tmp_path / "desk-1.spool"
    junk = b"this is somebody's notes, not a spool\n" * 50
    spool.write_bytes(junk)
    with caplog.at_level(logging.WARNING):
        pending, _ = deliver(tmp_path, spool)
    (q,) = quarantined(spool)
    assert q.read_bytes() == junk and pending == 0
    assert any(str(q) in r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)


def test_a_zero_length_spool_is_reported_not_silently_reused(tmp_path, caplog):
    spool = tmp_path / "desk-1.spool"
    spool.write_bytes(b"")
    with caplog.at_level(logging.WARNING):
        pending, _ = deliver(tmp_path, spool)
    (q,) = quarantined(spool)
    assert pending == 0 and q.stat().st_size == 0
    msgs = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(str(q) in m and "empty" in m for m in msgs)


def test_a_folder_in_place_of_the_spool_is_one_clear_error(tmp_path):
    spool = tmp_path / "desk-1.spool"
    spool.mkdir()
    (spool / "keep.txt").write_text("x")
    with pytest.raises(ValueError, match="is a folder"):
        DeskClient("ws://127.0.0.1:1/ws", DESK_TOKEN, "desk-1", spool)
    assert (spool / "keep.txt").read_text() == "x"


def test_another_programs_database_is_refused_untouched(tmp_path):
    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE notes (x)")
    db.commit()
    db.close()
    before = path.read_bytes()
    with pytest.raises(ValueError, match="not a desk spool"):
        Spool(path)
    assert path.read_bytes() == before and not quarantined(path)


def test_a_spool_left_in_its_wal_by_a_crash_is_read_normally(tmp_path, caplog):
    """The normal crash case is not damage: SQLite replays the WAL; nothing is quarantined."""
    spool = tmp_path / "desk-1.spool"
    code = f"""
import os, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from monitor.hub.spool import Spool
s = Spool({str(spool)!r})
for i in range(3):
    s.add(f"desk-1:{{i}}", '{{"type":"alert","id":"desk-1:%d","alert":{{}}}}' % i)
os._exit(0)  # killed: no checkpoint
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert spool.with_name(spool.name + "-wal").stat().st_size > 0
    with caplog.at_level(logging.WARNING):
        s = Spool(spool)
    assert s.count == 3 and not quarantined(spool)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    s.close()


def test_a_damaged_main_file_beside_a_crash_left_wal_loses_nothing(tmp_path, caplog):
    """A desk killed with alerts still in the WAL, then the main file is zeroed."""
    spool = tmp_path / "desk-1.spool"
    code = f"""
import asyncio, os, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_hub_support import DESK_TOKEN, body, free_port
from monitor.hub.desk_client import DeskClient
async def go():
    d = DeskClient(f"ws://127.0.0.1:{{free_port()}}/ws", DESK_TOKEN, "desk-1", {str(spool)!r},
                   backoff_min=5, backoff_max=5)
    ids = [await d.send(body(i)) for i in range(4)]
    print(" ".join(ids))
    os._exit(0)
asyncio.run(go())
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, timeout=60, capture_output=True,
                         text=True).stdout.split()
    spool.write_bytes(bytes(spool.stat().st_size))  # the main file zeroed
    with caplog.at_level(logging.WARNING):
        pending, stored = deliver(tmp_path, spool)
    assert stored == set(out) and pending == 4
    for q in quarantined(spool):  # if it was moved aside, its WAL went with it
        assert q.with_name(q.name + "-wal").exists()


def test_rejected_alerts_survive_a_quarantine(tmp_path, caplog):
    spool = tmp_path / "desk-1.spool"
    ids = make_spool(spool, 3)
    s = Spool(spool)
    s.reject(ids[0], "bad_schema: field text")
    s.close()
    spool.write_bytes(flip(spool.read_bytes(), 0, 16))
    with caplog.at_level(logging.WARNING):
        s = Spool(spool)
    assert s.count == 2 and [i for i, _ in s.rejected()] == [ids[0]]
    assert [i for _, i, _ in s.after(0, 10)] == ids[1:]
    s.close()


def test_quarantine_names_do_not_collide(tmp_path, caplog):
    spool = tmp_path / "desk-1.spool"
    for _ in range(3):
        spool.write_bytes(b"not a database at all" * 10)
        Spool(spool).close()
    assert len(quarantined(spool)) == 3


def test_a_withdrawal_spooled_after_its_alert_is_salvaged_with_it_from_a_damaged_spool(tmp_path, caplog):
    spool = tmp_path / "desk-1.spool"

    async def go() -> tuple[str, str]:
        desk = DeskClient(f"ws://127.0.0.1:{free_port()}/ws", DESK_TOKEN, "desk-1", spool,
                          backoff_min=5, backoff_max=5)
        alert_id = await desk.send(body(0))
        wid = await desk.withdraw(alert_id, "caller_line")
        await desk.close()
        return alert_id, wid
    alert_id, wid = run(go())
    spool.write_bytes(flip(spool.read_bytes(), 0, 16))  # the file no longer opens as SQLite: carved

    async def deliver_and_read() -> tuple[int, dict]:
        async with Hub(options(tmp_path, db=tmp_path / "hub.sqlite3")) as hub:
            desk = DeskClient(hub.url, DESK_TOKEN, "desk-1", spool, backoff_min=0.05)
            pending = desk.pending
            await desk.start()
            assert await desk.flush(10) and desk.rejected() == []
            await desk.close()
            ws = await console_ws(hub.url)
            while True:
                msg = await recv_json(ws, 10)
                if msg["type"] == "alert":
                    return pending, msg
    with caplog.at_level(logging.WARNING):
        pending, alert = run(deliver_and_read())
    assert pending == 2  # the alert and its withdrawal, in that order
    assert (alert["id"], alert["withdrawn"]) == (alert_id, "caller_line")
