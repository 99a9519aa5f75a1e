"""Durable alert log in SQLite (WAL), plus each desk's last finished call.

`seq` is an AUTOINCREMENT key, so it only ever grows (never reused, even after a delete)
and a console can resume from the last seq it saw. An alert is committed before the desk
gets its ack. (desk, alert_id) is UNIQUE: a desk that resends after a lost ack is answered
with the seq it already has instead of a second copy.

Calls are synchronous and meant to run on the hub's event-loop thread: commits are small
(WAL, no fsync per commit with sync="normal") and running them on the loop makes
"commit, then fan out to consoles" atomic with respect to a console's catch-up query,
which is what gives resume-without-gaps-or-duplicates without any locks.
"""
from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .protocol import AlertRecord, LastCall

SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    desk      TEXT NOT NULL,
    alert_id  TEXT NOT NULL,
    call_id   TEXT NOT NULL,
    rule      TEXT NOT NULL,
    start     REAL NOT NULL,
    "end"     REAL NOT NULL,
    emitted   REAL NOT NULL,
    text      TEXT NOT NULL,
    evidence  TEXT NOT NULL,
    phrase    TEXT,
    severity  TEXT NOT NULL,
    received  REAL NOT NULL,      -- hub wall clock (unix seconds) when stored
    acked_at  REAL,
    acked_by  TEXT,
    UNIQUE (desk, alert_id)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS desk_calls (  -- each desk's last finished call, for /api/desks
    desk       TEXT PRIMARY KEY,
    call_id    TEXT NOT NULL,
    score      REAL NOT NULL,
    ended      REAL NOT NULL,     -- desk wall clock (unix seconds)
    violations INTEGER NOT NULL,
    stored     REAL NOT NULL      -- hub wall clock when reported
);
CREATE TABLE IF NOT EXISTS acks (
    ack_seq   INTEGER PRIMARY KEY AUTOINCREMENT,
    seq       INTEGER NOT NULL UNIQUE REFERENCES alerts(seq),
    by        TEXT NOT NULL,
    at        REAL NOT NULL
);
"""

_COLS = ('seq, desk, alert_id, call_id, rule, start, "end", emitted, text, evidence, phrase, '
         'severity, received, acked_at, acked_by')


class StoreError(RuntimeError):
    """The database could not be opened or written."""


@dataclass(frozen=True)
class StoredAlert:
    seq: int
    desk: str
    id: str
    call_id: str
    rule: str
    start: float
    end: float
    emitted: float
    text: str
    evidence: str
    phrase: str | None
    severity: str
    received: float
    acked_at: float | None = None
    acked_by: str | None = None

    def to_message(self) -> dict:
        """The `alert` frame consoles get (and /api/alerts returns)."""
        d = {"type": "alert", "seq": self.seq, "id": self.id, "desk": self.desk,
             "call_id": self.call_id, "rule": self.rule, "start": self.start, "end": self.end,
             "emitted": self.emitted, "text": self.text, "evidence": self.evidence,
             "severity": self.severity, "received": self.received}
        if self.phrase is not None:
            d["phrase"] = self.phrase
        if self.acked_at is not None:
            d["acked_at"] = self.acked_at
            d["acked_by"] = self.acked_by
        return d


@dataclass(frozen=True)
class AckRecord:
    ack_seq: int
    seq: int
    by: str
    at: float

    def to_message(self) -> dict:
        return {"type": "acked", "ack_seq": self.ack_seq, "seq": self.seq, "by": self.by,
                "at": self.at}


@dataclass(frozen=True)
class InsertResult:
    alert: StoredAlert
    duplicate: bool


class AlertStore:
    """SQLite alert log; one instance per hub process."""

    def __init__(self, path: Path | str, sync: Literal["normal", "full"] = "normal") -> None:
        self.path = Path(path)
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves so a batch is one commit.
            self._db = sqlite3.connect(str(self.path), isolation_level=None, timeout=0.5)
            # One hub per database: a second hub would fan out only its own commits, and its
            # consoles could skip past alerts the other one stored. EXCLUSIVE (set before
            # WAL) holds the file lock for the life of the connection; the OS drops it if
            # the hub dies, so a restart after a crash is not blocked.
            self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL: a commit survives a crash or SIGKILL of the hub (it is in the WAL);
            # FULL also survives power loss, at one fsync per batch.
            self._db.execute(f"PRAGMA synchronous={'FULL' if sync == 'full' else 'NORMAL'}")
            self._db.executescript(SCHEMA)
            # The epoch names this database: seqs only mean something within one epoch, so
            # a console that last saw another epoch (database replaced) starts from 0.
            self._db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('epoch', ?)",
                             (uuid.uuid4().hex,))
            self.epoch: str = self._db.execute(
                "SELECT value FROM meta WHERE key='epoch'").fetchone()[0]
            self._db.execute("BEGIN IMMEDIATE")  # take the write lock now, not at 1st alert
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            hint = " (another hub is using it)" if "locked" in str(exc) else ""
            raise StoreError(f"cannot open database {self.path}: {exc}{hint}") from None

    def close(self) -> None:
        self._db.close()

    def insert_many(self, desk_records: Iterable[tuple[str, AlertRecord]]) -> list[InsertResult]:
        """Store alerts in one transaction; duplicates come back with their existing row."""
        now = time.time()
        out: list[InsertResult] = []
        cur = self._db.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE")
            for desk, r in desk_records:
                # Look first instead of INSERT OR IGNORE: an ignored insert still uses up an
                # AUTOINCREMENT value, and seqs should stay dense so gaps mean something.
                row = cur.execute(f"SELECT {_COLS} FROM alerts WHERE desk=? AND alert_id=?",
                                  (desk, r.id)).fetchone()
                if row is not None:
                    out.append(InsertResult(StoredAlert(*row), True))
                    continue
                cur.execute(
                    'INSERT INTO alerts (desk, alert_id, call_id, rule, start, "end", '
                    'emitted, text, evidence, phrase, severity, received) '
                    'VALUES (?,?,?,?,?,?,?,?,?,?,?,?)',
                    (desk, r.id, r.call_id, r.rule, r.start, r.end, r.emitted, r.text,
                     r.evidence, r.phrase, r.severity, now))
                out.append(InsertResult(StoredAlert(
                    cur.lastrowid, desk, r.id, r.call_id, r.rule, r.start, r.end,  # type: ignore[arg-type]
                    r.emitted, r.text, r.evidence, r.phrase, r.severity, now), False))
            cur.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise StoreError(f"cannot store alerts in {self.path}: {exc}") from None
        return out

    def fetch_after(self, seq: int, limit: int = 500) -> list[StoredAlert]:
        rows = self._db.execute(f"SELECT {_COLS} FROM alerts WHERE seq > ? ORDER BY seq LIMIT ?",
                                (seq, limit)).fetchall()
        return [StoredAlert(*row) for row in rows]

    def acks_after(self, ack_seq: int, limit: int = 500) -> list[AckRecord]:
        rows = self._db.execute("SELECT ack_seq, seq, by, at FROM acks WHERE ack_seq > ? "
                                "ORDER BY ack_seq LIMIT ?", (ack_seq, limit)).fetchall()
        return [AckRecord(*row) for row in rows]

    def ack(self, seq: int, by: str) -> tuple[AckRecord | None, bool]:
        """Acknowledge alert `seq`. Returns (record, newly_acked); record None if no such seq."""
        now = time.time()
        try:
            self._db.execute("BEGIN IMMEDIATE")
            if self._db.execute("SELECT 1 FROM alerts WHERE seq=?", (seq,)).fetchone() is None:
                self._db.execute("ROLLBACK")
                return None, False
            new = self._db.execute("SELECT 1 FROM acks WHERE seq=?", (seq,)).fetchone() is None
            if new:
                self._db.execute("INSERT INTO acks (seq, by, at) VALUES (?,?,?)", (seq, by, now))
                self._db.execute("UPDATE alerts SET acked_at=?, acked_by=? WHERE seq=?",
                                 (now, by, seq))
            row = self._db.execute("SELECT ack_seq, seq, by, at FROM acks WHERE seq=?",
                                   (seq,)).fetchone()
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise StoreError(f"cannot store acknowledgement in {self.path}: {exc}") from None
        return AckRecord(*row), new

    def last_seq(self) -> int:
        row = self._db.execute("SELECT MAX(seq) FROM alerts").fetchone()
        return int(row[0] or 0)

    def last_ack_seq(self) -> int:
        row = self._db.execute("SELECT MAX(ack_seq) FROM acks").fetchone()
        return int(row[0] or 0)

    def save_last_call(self, desk: str, call: LastCall) -> None:
        try:
            self._db.execute(
                "INSERT OR REPLACE INTO desk_calls (desk, call_id, score, ended, violations, "
                "stored) VALUES (?,?,?,?,?,?)",
                (desk, call.call_id, call.score, call.ended, call.violations, time.time()))
        except sqlite3.Error as exc:
            raise StoreError(f"cannot store the last call of {desk} in {self.path}: {exc}"
                             ) from None

    def last_calls(self) -> dict[str, LastCall]:
        rows = self._db.execute("SELECT desk, call_id, score, ended, violations "
                                "FROM desk_calls").fetchall()
        return {desk: LastCall(call_id, score, ended, violations)
                for desk, call_id, score, ended, violations in rows}

    def last_alerts(self) -> dict[str, tuple[int, float, str]]:
        """desk -> (seq, received, rule) of its newest stored alert."""
        rows = self._db.execute(
            "SELECT desk, seq, received, rule FROM alerts WHERE seq IN "
            "(SELECT MAX(seq) FROM alerts GROUP BY desk)").fetchall()
        return {desk: (seq, received, rule) for desk, seq, received, rule in rows}

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM alerts").fetchone()[0])
