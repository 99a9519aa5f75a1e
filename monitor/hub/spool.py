"""The desk's local spool: alerts not yet acknowledged by the hub (SQLite, WAL).

An alert is written here before `DeskClient.send()` returns and deleted only when the hub
acks it, so a hub outage, a restart of the hub or of the desk loses nothing.
"""
from __future__ import annotations

import sqlite3
import time
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    n      INTEGER PRIMARY KEY AUTOINCREMENT,   -- send order
    id     TEXT NOT NULL UNIQUE,
    frame  TEXT NOT NULL                        -- the exact JSON frame to (re)send
);
CREATE TABLE IF NOT EXISTS rejected (           -- alerts the hub refused as invalid
    id     TEXT NOT NULL,
    frame  TEXT NOT NULL,
    reason TEXT NOT NULL,
    at     REAL NOT NULL
);
"""


class Spool:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path))
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL: survives a crash of the desk process; the WAL keeps commits cheap.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self.count = int(self._db.execute("SELECT COUNT(*) FROM spool").fetchone()[0])

    def add(self, alert_id: str, frame: str) -> None:
        with self._db:
            self._db.execute("INSERT INTO spool (id, frame) VALUES (?, ?)", (alert_id, frame))
        self.count += 1

    def after(self, n: int, limit: int) -> list[tuple[int, str, str]]:
        return self._db.execute("SELECT n, id, frame FROM spool WHERE n > ? ORDER BY n LIMIT ?",
                                (n, limit)).fetchall()

    def remove(self, alert_id: str) -> bool:
        with self._db:
            gone = self._db.execute("DELETE FROM spool WHERE id = ?", (alert_id,)).rowcount == 1
        if gone:
            self.count -= 1
        return gone

    def reject(self, alert_id: str, reason: str) -> None:
        with self._db:
            row = self._db.execute("SELECT frame FROM spool WHERE id = ?", (alert_id,)).fetchone()
            if row is None:
                return
            self._db.execute("INSERT INTO rejected (id, frame, reason, at) VALUES (?,?,?,?)",
                             (alert_id, row[0], reason, time.time()))
            self._db.execute("DELETE FROM spool WHERE id = ?", (alert_id,))
        self.count -= 1

    def rejected(self) -> list[tuple[str, str]]:
        return self._db.execute("SELECT id, reason FROM rejected ORDER BY rowid").fetchall()

    def close(self) -> None:
        self._db.close()
