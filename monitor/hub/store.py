"""Durable alert log in SQLite (WAL), plus each desk's last finished call.

`seq` is an AUTOINCREMENT key, so it only ever grows (never reused, even after a delete)
and a console can resume from the last seq it saw. An alert is committed before the desk
gets its ack. (desk, alert_id) is UNIQUE: a desk that resends after a lost ack is answered
with the seq it already has instead of a second copy.

Calls are synchronous and meant to run on the hub's event-loop thread: commits are small
(WAL, one commit and fsync per batch) and running them on the loop makes
"commit, then fan out to consoles" atomic with respect to a console's catch-up query,
which is what gives resume-without-gaps-or-duplicates without any locks.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import stat
import time
import uuid
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from monitor.private import make_private_dirs

from .protocol import Alert, LastCall, TranscriptLine

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
CREATE TABLE IF NOT EXISTS transcripts (  -- what was said on calls: personal data, pruned
    id        INTEGER PRIMARY KEY,
    desk      TEXT NOT NULL,
    call_id   TEXT NOT NULL,
    role      TEXT NOT NULL,
    start     REAL NOT NULL,
    "end"     REAL NOT NULL,
    text      TEXT NOT NULL,
    received  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS transcripts_call ON transcripts (desk, call_id, start);
CREATE INDEX IF NOT EXISTS transcripts_received ON transcripts (received);
CREATE INDEX IF NOT EXISTS alerts_received ON alerts (received);
"""
# Columns added after the first release: added to an older database at open.
# withdrawn: why the desk took the alert back (NULL: it stands); on an ack row, the same, so a
# console replaying the acknowledgements learns it.
MIGRATIONS = (("alerts", "ack_note", "TEXT"), ("acks", "note", "TEXT"), ("alerts", "role_confidence", "REAL"),
              ("alerts", "withdrawn", "TEXT"), ("acks", "withdrawn", "TEXT"))

log = logging.getLogger("monitor.hub")
MARK_SIZE = 128


def _create_private(path: Path) -> None:
    """Make the database file (and missing parent folders) readable by this user only:
    it holds every alert's text. An existing file open to others is tightened."""
    try:
        make_private_dirs(path.parent)
    except OSError as exc:
        raise StoreError(f"cannot create folder {exc.filename or path.parent}: {exc.strerror}") from None
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        return
    except FileExistsError:
        pass
    except OSError as exc:
        raise StoreError(f"cannot create database {path}: {exc.strerror}") from None
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"),
              path.with_name(path.name + ".mark")):
        try:
            mode = stat.S_IMODE(p.stat().st_mode)
            if mode & 0o077:
                p.chmod(mode & 0o700)
                log.warning("%s was readable by others (mode %o): now %o", p, mode,
                            mode & 0o700)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("cannot restrict the permissions of %s: %s", p, exc.strerror)


_COLS = ('seq, desk, alert_id, call_id, rule, start, "end", emitted, text, evidence, phrase, '
         'severity, received, acked_at, acked_by, ack_note, role_confidence, withdrawn')
_ACK_COLS = "ack_seq, seq, by, at, note, withdrawn"


class StoreError(RuntimeError):
    """The database could not be opened or written.

    transient: the database itself failed (disk full, I/O): the same write may work later.
    Otherwise the data was refused (e.g. text SQLite cannot encode): it never will."""

    def __init__(self, message: str, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


def _stored(row: tuple) -> Alert:
    """An alert as the store holds it (a row of _COLS)."""
    (seq, desk, alert_id, call_id, rule, start, end, emitted, text, evidence, phrase, severity,
     received, acked_at, acked_by, ack_note, role_confidence, withdrawn) = row
    return Alert(desk=desk, call_id=call_id, rule=rule, start=start, end=end, emitted=emitted, text=text,
                 evidence=evidence, phrase=phrase, severity=severity, id=alert_id, seq=seq,
                 received=received, acked_at=acked_at, acked_by=acked_by, ack_note=ack_note,
                 role_confidence=role_confidence, withdrawn=withdrawn)


@dataclass(frozen=True)
class AckRecord:
    ack_seq: int
    seq: int
    by: str
    at: float
    note: str | None = None
    withdrawn: str | None = None  # the desk took the alert back, and why

    def to_message(self) -> dict:
        msg = {"type": "acked", "ack_seq": self.ack_seq, "seq": self.seq, "by": self.by,
               "at": self.at}
        if self.note:
            msg["note"] = self.note
        if self.withdrawn:
            msg["withdrawn"] = self.withdrawn
        return msg


@dataclass(frozen=True)
class AlertQuery:
    """A history search: received in [since, until) (unix s), desk, rule, words in the text
    or evidence, seq below `before` (the next page)."""

    since: float | None = None
    until: float | None = None
    desk: str | None = None
    rule: str | None = None
    words: str | None = None
    before: int | None = None
    limit: int = 100


@dataclass(frozen=True)
class InsertResult:
    alert: Alert
    duplicate: bool


class AlertStore:
    """SQLite alert log; one instance per hub process."""

    def __init__(self, path: Path | str, sync: Literal["normal", "full"] = "full") -> None:
        self.path = Path(path)
        self.sync = sync
        # Set when the store found at start that it lost alerts or cannot be trusted; the
        # hub then runs under a new epoch (see _check_mark) and says so loudly.
        self.problem: str | None = None
        self._mark_fd: int | None = None
        self._mark_seq = self._mark_ack = 0
        _create_private(self.path)
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves so a batch is one commit.
            self._db = sqlite3.connect(str(self.path), isolation_level=None, timeout=0.5)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open database {self.path}: {exc}") from None
        try:
            # One hub per database: a second hub would fan out only its own commits, and its
            # consoles could skip past alerts the other one stored. EXCLUSIVE (set before
            # WAL) holds the file lock for the life of the connection; the OS drops it if
            # the hub dies, so a restart after a crash is not blocked.
            self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL (default): every batch commit is fsynced to the WAL before any desk is
            # acked, so an acked alert survives a power loss too. NORMAL survives a crash
            # or SIGKILL of the hub (the commit is in the OS page cache) but not a power
            # loss. Either way the high-water mark below detects a lost commit.
            self._db.execute(f"PRAGMA synchronous={'FULL' if sync == 'full' else 'NORMAL'}")
            self._db.executescript(SCHEMA)
            for table, column, kind in MIGRATIONS:
                have = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}
                if column not in have:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            # The epoch names this database: seqs only mean something within one epoch, so
            # a console that last saw another epoch (database replaced) starts from 0.
            self._db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('epoch', ?)",
                             (uuid.uuid4().hex,))
            self.epoch: str = self._db.execute(
                "SELECT value FROM meta WHERE key='epoch'").fetchone()[0]
            self._db.execute("BEGIN IMMEDIATE")  # take the write lock now, not at 1st alert
            self._db.execute("COMMIT")
            self._check_mark()
        except sqlite3.Error as exc:
            self._db.close()
            if self._mark_fd is not None:
                os.close(self._mark_fd)
            hint = " (another hub is using it)" if "locked" in str(exc) else ""
            raise StoreError(f"cannot open database {self.path}: {exc}{hint}") from None

    # -- high-water mark ---------------------------------------------------------------
    #
    # `<db>.mark` holds the epoch and the last committed seq and ack_seq, rewritten and
    # fdatasync'd after every commit, before any desk is acked or any console is shown the
    # seq. A damaged, truncated or deleted -wal (or a restored backup) brings the database
    # back with fewer rows than the mark says were committed: then alerts that desks were
    # acked for are gone, and reusing their seqs would make consoles that saw them skip the
    # new alerts. So the store starts a new epoch (consoles re-sync from 0) and moves the
    # AUTOINCREMENT counters above the mark (no seq is ever given out twice).

    @property
    def mark_path(self) -> Path:
        return self.path.with_name(self.path.name + ".mark")

    def _read_mark(self) -> tuple[str, int, int] | None | str:
        """(epoch, seq, ack_seq), None if there is no mark, or a string saying why the mark
        cannot be read."""
        try:
            raw = self.mark_path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            return f"cannot read {self.mark_path}: {exc.strerror}"
        parts = raw.split(b"\n", 1)[0].decode("ascii", "replace").split()
        if len(parts) != 5 or parts[0] != "v1":
            return f"{self.mark_path} is damaged"
        body = " ".join(parts[:4]).encode()
        try:
            seq, ack, crc = int(parts[2]), int(parts[3]), int(parts[4], 16)
        except ValueError:
            return f"{self.mark_path} is damaged"
        if zlib.crc32(body) != crc:
            return f"{self.mark_path} is damaged (checksum)"
        return parts[1], seq, ack

    def _write_mark(self) -> None:
        seq, ack = self.last_seq(), self.last_ack_seq()
        if self._mark_fd is not None and (seq, ack) == (self._mark_seq, self._mark_ack):
            return
        body = f"v1 {self.epoch} {seq} {ack}"
        line = f"{body} {zlib.crc32(body.encode()):08x}\n".encode().ljust(MARK_SIZE)
        try:
            if self._mark_fd is None:
                self._mark_fd = os.open(self.mark_path, os.O_RDWR | os.O_CREAT, 0o600)
            # One small write at offset 0 of a fixed-size file: it lands whole or not at
            # all (one sector), so there is no window with an empty or half mark.
            os.pwrite(self._mark_fd, line, 0)
            os.fdatasync(self._mark_fd)
            self._mark_seq, self._mark_ack = seq, ack
        except OSError as exc:
            # The rows are committed: failing the batch would only make desks resend.
            # Detection of a later loss is weaker until the mark can be written again.
            log.error("cannot update %s: %s", self.mark_path, exc.strerror)

    def _check_mark(self) -> None:
        problems: list[str] = []
        row = self._db.execute("PRAGMA quick_check").fetchone()
        if row is None or row[0] != "ok":
            problems.append(f"integrity check failed ({row[0] if row else 'no answer'})")
        mark = self._read_mark()
        seq, ack = self.last_seq(), self.last_ack_seq()
        floor_seq, floor_ack = seq, ack
        if isinstance(mark, str):
            problems.append(f"{mark}: cannot tell whether alerts were lost")
        elif mark is None:
            if seq or ack:
                problems.append(f"no high-water mark {self.mark_path.name} beside a database "
                                "that holds alerts: cannot tell whether alerts were lost")
        else:
            m_epoch, m_seq, m_ack = mark
            floor_seq, floor_ack = max(seq, m_seq), max(ack, m_ack)
            if m_epoch != self.epoch:
                problems.append(f"the database's epoch {self.epoch} is not the one last "
                                f"committed ({m_epoch}): database replaced or rebuilt")
            if m_seq > seq:
                problems.append(f"alerts {seq + 1}..{m_seq} ({m_seq - seq}) were committed "
                                "(and acknowledged to their desks) but are no longer in the "
                                "database: the -wal file was damaged or deleted")
            if m_ack > ack:
                problems.append(f"acknowledgements {ack + 1}..{m_ack} were committed but are "
                                "no longer in the database")
        if problems:
            old = self.epoch
            self.epoch = uuid.uuid4().hex
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("UPDATE meta SET value=? WHERE key='epoch'", (self.epoch,))
            for table, floor in (("alerts", floor_seq), ("acks", floor_ack)):
                if self._db.execute("UPDATE sqlite_sequence SET seq=MAX(seq, ?) WHERE name=?",
                                    (floor, table)).rowcount == 0:
                    self._db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)",
                                     (table, floor))
            self._db.execute("COMMIT")
            self.problem = "; ".join(problems)
            log.critical("HUB DATABASE %s CANNOT BE TRUSTED: %s. Starting a new epoch %s "
                         "(was %s): consoles will re-sync from the start, and new alerts are "
                         "numbered after %d so no seq is reused.", self.path, self.problem,
                         self.epoch, old, floor_seq)
        self._write_mark()

    def close(self) -> None:
        self._db.close()
        if self._mark_fd is not None:
            os.close(self._mark_fd)
            self._mark_fd = None

    def durability(self) -> str:
        mode = self._db.execute("PRAGMA synchronous").fetchone()[0]
        name = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(mode, str(mode))
        return f"journal_mode=WAL synchronous={name}" + (
            " (an acked alert survives a power loss)" if mode >= 2 else
            " (an acked alert survives a hub crash, not a power loss)")

    # -- writes ------------------------------------------------------------------------

    def _rollback(self) -> None:
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        except sqlite3.Error as exc:  # the connection is unusable: nothing else to do here
            log.error("rollback failed in %s: %s", self.path, exc)

    def insert_many(self, desk_records: Iterable[tuple[str, Alert]]) -> list[InsertResult]:
        """Store alerts in one transaction; duplicates come back with their existing row.

        All or nothing: on any failure the transaction is rolled back (no seq is used up or
        visible to a reader) and StoreError is raised."""
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
                    out.append(InsertResult(_stored(row), True))
                    continue
                cur.execute(
                    'INSERT INTO alerts (desk, alert_id, call_id, rule, start, "end", '
                    'emitted, text, evidence, phrase, severity, received, role_confidence) '
                    'VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)',
                    (desk, r.id, r.call_id, r.rule, r.start, r.end, r.emitted, r.text,
                     r.evidence, r.phrase, r.severity, now, r.role_confidence))
                out.append(InsertResult(replace(r, desk=desk, seq=cur.lastrowid, received=now), False))
            cur.execute("COMMIT")
        except Exception as exc:  # not only sqlite3.Error: e.g. UnicodeEncodeError
            self._rollback()
            raise StoreError(f"cannot store alerts in {self.path}: "
                             f"{type(exc).__name__}: {exc}"[:300],
                             transient=isinstance(exc, sqlite3.OperationalError)) from None
        if any(not r.duplicate for r in out):
            self._write_mark()
        return out

    def prune(self, before: float, chunk: int = 2000) -> int:
        """Delete up to `chunk` alerts received before `before` (unix s), with their acks.
        Returns how many were deleted; call again until 0. Seqs are never reused."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            seqs = [r[0] for r in self._db.execute(
                "SELECT seq FROM alerts WHERE received < ? ORDER BY seq LIMIT ?",
                (before, chunk))]
            if seqs:
                hi = seqs[-1]
                self._db.execute("DELETE FROM acks WHERE seq IN "
                                 "(SELECT seq FROM alerts WHERE received < ? AND seq <= ?)",
                                 (before, hi))
                self._db.execute("DELETE FROM alerts WHERE received < ? AND seq <= ?",
                                 (before, hi))
            self._db.execute("COMMIT")
        except Exception as exc:
            self._rollback()
            raise StoreError(f"cannot prune old alerts in {self.path}: {exc}") from None
        return len(seqs)

    def find(self, desk: str, alert_id: str) -> Alert | None:
        row = self._db.execute(f"SELECT {_COLS} FROM alerts WHERE desk=? AND alert_id=?",
                               (desk, alert_id)).fetchone()
        return None if row is None else _stored(row)

    def fetch_after(self, seq: int, limit: int = 500) -> list[Alert]:
        rows = self._db.execute(f"SELECT {_COLS} FROM alerts WHERE seq > ? ORDER BY seq LIMIT ?",
                                (seq, limit)).fetchall()
        return [_stored(row) for row in rows]

    def acks_after(self, ack_seq: int, limit: int = 500) -> list[AckRecord]:
        rows = self._db.execute(f"SELECT {_ACK_COLS} FROM acks WHERE ack_seq > ? "
                                "ORDER BY ack_seq LIMIT ?", (ack_seq, limit)).fetchall()
        return [AckRecord(*row) for row in rows]

    def ack(self, seq: int, by: str, note: str | None = None) -> tuple[AckRecord | None, bool]:
        """Acknowledge alert `seq`. Returns (record, newly_acked); record None if no such seq. An
        alert its desk withdrew and no one acknowledged yet (by "") is acknowledged with it kept
        withdrawn, the acknowledgement moved to the end of the stream."""
        def first_ack(old: tuple | None) -> bool:
            if old is not None and old[2]:
                return False
            self._put_ack(seq, by, time.time(), note, None if old is None else old[5])
            return True
        return self._write_ack(seq, first_ack, "an acknowledgement")

    def withdraw(self, seq: int, reason: str) -> tuple[AckRecord | None, bool]:
        """The desk takes alert `seq` back (`reason`: protocol.WITHDRAW_REASONS): it counts as
        acknowledged, by no one ("") until a supervisor does; a supervisor's acknowledgement made
        before is kept and moved to the end of the acknowledgement stream with the reason, so every
        console learns it. Returns (record, newly_withdrawn); record None if no such seq."""
        def take_back(old: tuple | None) -> bool:
            if old is not None and old[5] is not None:
                return False
            who, at, note = ("", time.time(), None) if old is None else (old[2], old[3], old[4])
            self._put_ack(seq, who, at, note, reason)
            return True
        return self._write_ack(seq, take_back, "a withdrawal")

    def _put_ack(self, seq: int, by: str, at: float, note: str | None, withdrawn: str | None) -> None:
        """Alert `seq`'s acknowledgement, as the newest of the stream (a new ack_seq), and on the alert."""
        self._db.execute("DELETE FROM acks WHERE seq=?", (seq,))
        self._db.execute("INSERT INTO acks (seq, by, at, note, withdrawn) VALUES (?,?,?,?,?)",
                         (seq, by, at, note, withdrawn))
        self._db.execute("UPDATE alerts SET acked_at=?, acked_by=?, ack_note=?, withdrawn=? WHERE seq=?",
                         (at, by, note, withdrawn, seq))

    def _write_ack(self, seq: int, change: Callable[[tuple | None], bool], what: str) -> tuple[AckRecord | None, bool]:
        """One transaction on alert `seq`'s acknowledgement: `change` gets its ack row (None if not
        acked) and says whether it wrote one. (record, new); record None if no such seq."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            if self._db.execute("SELECT 1 FROM alerts WHERE seq=?", (seq,)).fetchone() is None:
                self._db.execute("ROLLBACK")
                return None, False
            new = change(self._db.execute(f"SELECT {_ACK_COLS} FROM acks WHERE seq=?", (seq,)).fetchone())
            row = self._db.execute(f"SELECT {_ACK_COLS} FROM acks WHERE seq=?", (seq,)).fetchone()
            self._db.execute("COMMIT")
        except Exception as exc:
            self._rollback()
            raise StoreError(f"cannot store {what} in {self.path}: {exc}") from None
        if new:
            self._write_mark()
        return AckRecord(*row), new

    def last_seq(self) -> int:
        """The last seq given out (AUTOINCREMENT counter: still right after pruning)."""
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name='alerts'").fetchone()
        return int(row[0]) if row else 0

    def last_ack_seq(self) -> int:
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name='acks'").fetchone()
        return int(row[0]) if row else 0

    def save_last_call(self, desk: str, call: LastCall) -> None:
        try:
            self._db.execute(
                "INSERT OR REPLACE INTO desk_calls (desk, call_id, score, ended, violations, "
                "stored) VALUES (?,?,?,?,?,?)",
                (desk, call.call_id, call.score, call.ended, call.violations, time.time()))
        except Exception as exc:
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

    def unacked(self, desk: str, call_id: str, severities: tuple[str, ...]) -> dict[int, str]:
        """A call's unacknowledged alerts of these severities: seq -> severity."""
        marks = ",".join("?" * len(severities))
        rows = self._db.execute(f"SELECT seq, severity FROM alerts WHERE desk=? AND call_id=? "
                                f"AND acked_at IS NULL AND severity IN ({marks})",
                                (desk, call_id, *severities)).fetchall()
        return {int(r[0]): str(r[1]) for r in rows}

    def call_alerts(self, desk: str, call_id: str, limit: int = 500) -> list[Alert]:
        rows = self._db.execute(f"SELECT {_COLS} FROM alerts WHERE desk=? AND call_id=? "
                                "ORDER BY seq LIMIT ?", (desk, call_id, limit)).fetchall()
        return [_stored(r) for r in rows]

    # -- transcripts ---------------------------------------------------------------------

    def add_transcript(self, line: TranscriptLine) -> None:
        try:
            self._db.execute('INSERT INTO transcripts (desk, call_id, role, start, "end", text, '
                             'received) VALUES (?,?,?,?,?,?,?)',
                             (line.desk, line.call_id, line.role, line.start, line.end,
                              line.text, line.received))
        except Exception as exc:
            raise StoreError(f"cannot store a transcript line in {self.path}: {exc}",
                             transient=isinstance(exc, sqlite3.OperationalError)) from None

    def transcript(self, desk: str, call_id: str, limit: int = 2000) -> list[TranscriptLine]:
        rows = self._db.execute('SELECT call_id, role, start, "end", text, desk, received '
                                'FROM transcripts WHERE desk=? AND call_id=? ORDER BY start, id '
                                'LIMIT ?', (desk, call_id, limit)).fetchall()
        return [TranscriptLine(*r) for r in rows]

    def last_transcript_call(self, desk: str) -> str | None:
        row = self._db.execute("SELECT call_id FROM transcripts WHERE desk=? ORDER BY id DESC "
                               "LIMIT 1", (desk,)).fetchone()
        return None if row is None else str(row[0])

    def prune_transcripts(self, before: float) -> int:
        try:
            return self._db.execute("DELETE FROM transcripts WHERE received < ?",
                                    (before,)).rowcount
        except Exception as exc:
            raise StoreError(f"cannot prune old transcripts in {self.path}: {exc}") from None

    # -- history search ------------------------------------------------------------------

    def search(self, q: AlertQuery) -> tuple[list[Alert], bool]:
        """Alerts matching `q`, newest first, at most q.limit; and whether there are more
        (page on with before = the last seq returned)."""
        given = [(c, v) for c, v in (("received >= ?", q.since), ("received < ?", q.until), ("desk = ?", q.desk or None),
                                     ("rule = ?", q.rule or None), ("seq < ?", q.before)) if v is not None]
        where = [c for c, _ in given]
        args: list[object] = [v for _, v in given]
        if q.words:
            # instr, not LIKE: the words are data, never a pattern.
            where.append("(instr(text, ?) > 0 OR instr(evidence, ?) > 0 OR instr(call_id, ?) > 0)")
            args += [q.words] * 3
        sql = f"SELECT {_COLS} FROM alerts" + (" WHERE " + " AND ".join(where) if where else "")
        rows = self._db.execute(sql + " ORDER BY seq DESC LIMIT ?", (*args, q.limit + 1)).fetchall()
        return [_stored(r) for r in rows[:q.limit]], len(rows) > q.limit

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM alerts").fetchone()[0])
