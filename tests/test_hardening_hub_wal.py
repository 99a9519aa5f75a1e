"""Finding 2: a damaged -wal silently lost acknowledged alerts and reused their seqs.

After SIGKILL, flipping, truncating or deleting the WAL lost alerts desks had been acked
for; the hub restarted without a word under the same epoch and gave the lost seqs to new
alerts, so a console resuming from an old seq skipped them. Now the store keeps a
high-water mark beside the database; a restart that finds fewer rows says so loudly,
starts a new epoch and numbers new alerts after the mark.
"""
from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest
from test_hub_support import (
    CONSOLE_TOKEN,
    body,
    desk_ws,
    free_port,
    hub_process,
    push,
    raw,
    recv_json,
    recv_type,
    run,
    wait_port,
)

from monitor.hub.protocol import Alert
from monitor.hub.store import AlertStore

pytestmark = pytest.mark.timeout(60)


def rec(i: int) -> Alert:
    return Alert("", "c", "r", 0.0, 1.0, 1.0, f"alert {i}", "e", id=f"a:{i}")


def crash_image(tmp_path: Path, n: int) -> tuple[Path, str]:
    """Files as a SIGKILL would leave them: n alerts committed (one per batch), all of
    them only in the -wal. Returns (folder, epoch)."""
    live = tmp_path / "live"
    live.mkdir()
    store = AlertStore(live / "hub.db")
    for i in range(n):
        store.insert_many([("desk-1", rec(i))])
    img = tmp_path / "img"
    img.mkdir()
    for f in live.iterdir():  # copied while open: nothing checkpointed, nothing closed
        shutil.copy(f, img / f.name)
    epoch = store.epoch
    store.close()
    return img, epoch


def damage(wal: Path, how: str) -> None:
    if how == "delete":
        wal.unlink()
    elif how == "truncate":
        with wal.open("r+b") as f:
            f.truncate(wal.stat().st_size // 2)
    else:  # flip one byte in the middle of the log: its frame's checksum no longer holds
        data = bytearray(wal.read_bytes())
        data[len(data) // 2] ^= 0xFF
        wal.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["flip", "truncate", "delete"])
def test_damaged_wal_starts_a_new_epoch_and_never_reuses_a_seq(tmp_path: Path,
                                                               how: str) -> None:
    img, old_epoch = crash_image(tmp_path, 40)
    assert (img / "hub.db-wal").exists()
    damage(img / "hub.db-wal", how)
    store = AlertStore(img / "hub.db")
    assert store.count() < 40  # alerts that were acked are gone...
    assert store.problem and "40" in store.problem  # ...and the store says so
    assert store.epoch != old_epoch  # consoles re-sync instead of skipping
    assert store.last_seq() >= 40
    assert store.insert_many([("desk-1", rec(99))])[0].alert.seq == 41  # never reused
    store.close()
    again = AlertStore(img / "hub.db")  # a clean restart after that is quiet
    assert again.problem is None and again.last_seq() == 41
    again.close()


def test_intact_restart_keeps_the_epoch(tmp_path: Path) -> None:
    img, epoch = crash_image(tmp_path, 10)
    store = AlertStore(img / "hub.db")
    assert store.problem is None and store.epoch == epoch and store.count() == 10
    assert store.durability().startswith("journal_mode=WAL synchronous=FULL")
    store.close()


def test_missing_mark_beside_a_full_database_is_not_trusted(tmp_path: Path) -> None:
    img, epoch = crash_image(tmp_path, 5)
    (img / "hub.db.mark").unlink()
    store = AlertStore(img / "hub.db")
    assert store.problem and store.epoch != epoch
    store.close()


def test_sigkill_and_deleted_wal_make_resuming_consoles_resync(tmp_path: Path) -> None:
    """The probe's scenario end to end: hub process, SIGKILL, WAL deleted, restart."""
    port, db, log = free_port(), tmp_path / "hub.db", tmp_path / "hub.log"
    url = f"ws://127.0.0.1:{port}/ws"

    async def before() -> tuple[str, int]:
        await wait_port(port)
        d = await desk_ws(url)
        for i in range(30):
            assert (await push(d, f"d:{i}", body(i)))["type"] == "ack"
        c = await raw(url, {"type": "hello", "role": "console", "token": CONSOLE_TOKEN})
        welcome = await recv_json(c)
        return welcome["epoch"], (await recv_type(c, "caught_up"))["seq"]

    async def after(epoch: str, since: int) -> None:
        await wait_port(port)
        c = await raw(url, {"type": "hello", "role": "console", "token": CONSOLE_TOKEN,
                            "since": since, "epoch": epoch})
        welcome = await recv_json(c)
        assert welcome["reset"] is True and welcome["epoch"] != epoch
        assert welcome["since"] == 0
        await recv_type(c, "caught_up")
        d = await desk_ws(url)
        for i in range(20):
            assert (await push(d, f"new:{i}", body(i)))["seq"] > since
        got = [(await recv_type(c, "alert"))["id"] for _ in range(20)]
        assert got == [f"new:{i}" for i in range(20)]  # none skipped

    proc = hub_process(port, db, log=log)
    try:
        epoch, seen = run(before())
        assert seen == 30
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        os.unlink(f"{db}-wal")
        proc = hub_process(port, db, log=log)
        run(after(epoch, seen))
    finally:
        proc.kill()
        proc.wait()
    text = log.read_text()
    assert "CANNOT BE TRUSTED" in text and "were committed" in text
