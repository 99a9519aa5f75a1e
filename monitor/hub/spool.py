"""The desk's local spool: alerts (and withdrawals of them) not yet acknowledged by the hub
(SQLite, WAL), sent in the order they were spooled.

An alert is written here before `DeskClient.send()` returns and deleted only when the hub
acks it, so a hub outage, a restart of the hub or of the desk loses nothing.

A spool file that cannot be read (damaged, truncated, not SQLite, empty) is never deleted
and never silently replaced: it is renamed to `NAME.corrupt-YYYYmmdd-HHMMSS`, an error
naming that file is logged, and every alert that can still be read from it (through SQLite,
else by reading its pages directly) is copied into a fresh spool, to be sent as usual.
The hub drops alerts it already stored, so a salvaged alert that was in fact acked costs
nothing. The spool file is private to its user (0600, its new folders 0700).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import stat
import struct
import tempfile
import time
from pathlib import Path
from typing import Any

from monitor.private import make_private_dirs

log = logging.getLogger("monitor.hub.spool")

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
OUR_TABLES = {"spool", "rejected", "sqlite_sequence"}
SIDE_FILES = ("-wal", "-shm", "-journal")
# SQLite result codes that say the file is busy or out of reach, not damaged:
# PERM, BUSY, LOCKED, READONLY, IOERR, FULL, CANTOPEN, AUTH.
NOT_DAMAGE = {3, 5, 6, 8, 10, 13, 14, 23}
DAMAGED_FRAME = "damaged in the desk spool file (not a valid alert frame)"


class SpoolError(ValueError):
    """The spool path cannot be used at all (a folder, another program's database, no access)."""


class SpoolDamaged(Exception):
    """The spool file exists but cannot be read as a spool."""


def frame_ok(alert_id: object, frame: object) -> bool:
    """Is this the JSON frame DeskClient spools for this id: an alert, or the withdrawal of one?"""
    if not isinstance(alert_id, str) or not isinstance(frame, str):
        return False
    try:
        msg = json.loads(frame)
    except ValueError:
        return False
    if not isinstance(msg, dict) or msg.get("id") != alert_id:
        return False
    if msg.get("type") == "withdraw":
        return isinstance(msg.get("alert"), str) and isinstance(msg.get("reason"), str)
    return msg.get("type") == "alert" and isinstance(msg.get("alert"), dict)


class Spool:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.quarantined: Path | None = None  # where a damaged spool file was moved to
        self.salvaged = 0  # unsent alerts copied out of it
        if self.path.is_dir():
            raise SpoolError(f"spool {self.path} is a folder, not a spool file; "
                             "move it away or choose another spool path")
        try:
            make_private_dirs(self.path.parent)
        except OSError as exc:
            raise SpoolError(f"cannot create the spool folder {self.path.parent}: "
                             f"{exc.strerror or exc}") from None
        try:
            self._db = self._open()
        except SpoolDamaged as exc:
            self._quarantine(str(exc))
        self.count = int(self._db.execute("SELECT COUNT(*) FROM spool").fetchone()[0])

    # -- opening -----------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        """Open (or create) the spool; SpoolDamaged when the file is not a readable spool."""
        existed = self.path.exists()
        if existed and self.path.stat().st_size == 0 and not _nonempty(self._side("-wal")):
            raise SpoolDamaged("the file is empty (0 bytes)")
        self._private_file(create=not existed)
        try:
            db = sqlite3.connect(str(self.path))
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot open the spool {self.path}: {exc}") from None
        try:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if tables and "spool" not in tables:
                db.close()
                raise SpoolError(f"{self.path} is an SQLite database but not a desk spool (it holds "
                                 f"{', '.join(sorted(tables))}); choose another spool path")
            db.execute("PRAGMA journal_mode=WAL")
            # NORMAL: survives a crash of the desk process; the WAL keeps commits cheap.
            db.execute("PRAGMA synchronous=NORMAL")
            if tables:
                problems = [r[0] for r in db.execute("PRAGMA integrity_check(5)")]
                if problems != ["ok"]:
                    raise sqlite3.DatabaseError("; ".join(
                        p for p in problems if not p.startswith("***")) or "integrity check failed")
            db.executescript(SCHEMA)
            for side in SIDE_FILES:  # SQLite gives them the spool's mode; an old spool may be 0644
                _chmod_private(self._side(side))
            self._park_damaged_frames(db)
        except sqlite3.DatabaseError as exc:
            db.close()
            if (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF in NOT_DAMAGE:
                raise SpoolError(f"cannot use the spool {self.path}: {exc}") from None
            raise SpoolDamaged(str(exc).splitlines()[0][:200]) from None
        return db

    def _private_file(self, create: bool) -> None:
        try:
            if create:
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            else:
                _chmod_private(self.path)
        except FileExistsError:
            pass
        except OSError as exc:
            raise SpoolError(f"cannot create the spool {self.path}: {exc.strerror or exc}") from None

    def _side(self, suffix: str) -> Path:
        return self.path.with_name(self.path.name + suffix)

    def _park_damaged_frames(self, db: sqlite3.Connection) -> None:
        """A frame whose bytes were damaged would be refused by the hub again and again."""
        db.text_factory = bytes  # damaged bytes may not even be UTF-8
        try:
            bad = [(n, i, f) for n, i, f in db.execute("SELECT n, id, frame FROM spool")
                   if not frame_ok(_text(i), _text(f))]
        finally:
            db.text_factory = str
        if not bad:
            return
        with db:
            for n, alert_id, frame in bad:
                db.execute("INSERT INTO rejected (id, frame, reason, at) VALUES (?,?,?,?)",
                           (alert_id, frame, DAMAGED_FRAME, time.time()))
                db.execute("DELETE FROM spool WHERE n = ?", (n,))
        log.error("desk spool %s: %d alert(s) damaged on disk cannot be sent; kept in its "
                  "'rejected' table (ids: %s)", self.path, len(bad),
                  ", ".join(_text(b[1], "replace")[:40] for b in bad[:5]))

    def _quarantine(self, why: str) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        k = 1
        while target.exists() or any(target.with_name(target.name + s).exists() for s in SIDE_FILES):
            target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{k}")
            k += 1
        try:
            os.rename(self.path, target)
            for side in SIDE_FILES:
                if self._side(side).exists():
                    os.rename(self._side(side), target.with_name(target.name + side))
        except OSError as exc:
            raise SpoolError(f"the spool {self.path} cannot be read ({why}) and cannot be moved "
                             f"aside: {exc.strerror or exc}; move it away by hand") from None
        self.quarantined = target
        rows, rejected, how = salvage(target)
        try:
            self._db = self._open()
        except SpoolDamaged as exc:  # a fresh file: only a broken disk gets here
            raise SpoolError(f"cannot create a new spool {self.path}: {exc}") from None
        with self._db:
            for n, alert_id, frame in rows:
                self._db.execute("INSERT OR IGNORE INTO spool (n, id, frame) VALUES (?, ?, ?)",
                                 (n, alert_id, frame))
            self._db.executemany("INSERT INTO rejected (id, frame, reason, at) VALUES (?,?,?,?)",
                                 rejected)
        self.salvaged = len(rows)
        damaged = sum(1 for r in rejected if r[2] == DAMAGED_FRAME)
        log.error("desk spool %s could not be read (%s): moved it to %s and started a new spool; "
                  "%d unsent alert(s) recovered from it (%s) will be sent%s; alerts in its damaged "
                  "part may be lost, the damaged file is kept", self.path, why, target, len(rows),
                  how, f", {damaged} damaged alert(s) kept unsent in its 'rejected' table"
                  if damaged else "")

    # -- use ---------------------------------------------------------------------

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


def _text(value: object, errors: str = "strict") -> Any:  # str, or None when damaged
    """A column read as bytes, back to str; None when it is not UTF-8 (damaged)."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8", errors)
        except UnicodeDecodeError:
            return None
    return value


def _nonempty(p: Path) -> bool:
    try:
        return p.stat().st_size > 0
    except OSError:
        return False


def _chmod_private(p: Path) -> None:
    try:
        st = p.stat()
    except FileNotFoundError:
        return
    if stat.S_ISREG(st.st_mode) and st.st_mode & 0o077 and st.st_uid == os.getuid():
        os.chmod(p, stat.S_IMODE(st.st_mode) & 0o600)


# -- salvage ----------------------------------------------------------------------

Row = tuple[int, str, str]
Rejected = tuple[str, str, str, float]


def salvage(path: Path) -> tuple[list[Row], list[Rejected], str]:
    """Every readable (n, id, frame) spool row and rejected row of a damaged spool file.

    First through SQLite (on a copy: the damaged file is kept as it is); when that fails,
    by reading the table pages of the file and of its WAL directly.
    """
    rows: list[Row] | None = None
    rejected: list[Rejected] | None = None
    try:
        rows, rejected = _salvage_sql(path)
    except Exception:  # noqa: BLE001, S110 - whatever SQLite says of a damaged file: read the pages
        pass
    # The pages too, even when SQLite read the table: a damaged page can hide rows from it.
    # An alert found there that was in fact acked is resent and dropped by the hub.
    carved_rows, carved_rejected = carve(path)
    if rejected is None:
        rejected = carved_rejected
    gone = {r[0] for r in rejected}
    out = {r[1]: r for r in rows or []}
    extra = [r for r in carved_rows if r[1] not in out and r[1] not in gone]
    used = {r[0] for r in out.values()}
    for n, alert_id, frame in extra:  # keep the send order found, with unique numbers
        if n in used:
            n = max(used | {n}) + 1
        used.add(n)
        out[alert_id] = (n, alert_id, frame)
    how = ("read by SQLite" if rows and not extra else
           "read from its pages" if not rows else "read by SQLite and from its pages")
    return sorted(out.values()), rejected, how


def _salvage_sql(path: Path) -> tuple[list[Row] | None, list[Rejected] | None]:
    if not _nonempty(path):
        return None, None
    with tempfile.TemporaryDirectory(prefix="spool-salvage-") as tmp:
        copy = Path(tmp) / "spool.db"
        shutil.copyfile(path, copy)
        wal = path.with_name(path.name + "-wal")
        if wal.exists():
            shutil.copyfile(wal, Path(tmp) / "spool.db-wal")
        db = sqlite3.connect(str(copy))
        try:
            rows: list[Row] | None = None
            rejected: list[Rejected] | None = None
            damaged: list[Rejected] = []
            db.text_factory = bytes  # damaged bytes may not even be UTF-8
            found: list[Row] = []
            try:
                for n, i, f in db.execute("SELECT n, id, frame FROM spool ORDER BY n"):
                    if frame_ok(_text(i), _text(f)):
                        found.append((int(n), _text(i), _text(f)))
                    else:  # bytes damaged inside the frame: kept, never sent
                        damaged.append((_text(i, "replace"), _text(f, "replace"), DAMAGED_FRAME,
                                        time.time()))
                rows = found
            except (sqlite3.Error, TypeError, ValueError):
                rows = found or None
            try:
                rejected = [(_text(i, "replace"), _text(f, "replace"), _text(r, "replace"),
                             float(a)) for i, f, r, a in
                            db.execute("SELECT id, frame, reason, at FROM rejected ORDER BY rowid")]
            except (sqlite3.Error, TypeError, ValueError):
                pass
            if damaged:
                rejected = (rejected or []) + damaged
            return rows, rejected
        finally:
            db.close()


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    v = 0
    for k in range(9):
        if i >= len(buf):
            raise ValueError("varint past the end")
        b = buf[i]
        i += 1
        if k == 8:
            return (v << 8) | b, i
        v = (v << 7) | (b & 0x7F)
        if not b & 0x80:
            return v, i
    return v, i


def _values(payload: bytes) -> list[object]:
    hlen, i = _varint(payload, 0)
    if not 0 < hlen <= len(payload):
        raise ValueError("bad record header")
    types = []
    while i < hlen:
        t, i = _varint(payload, i)
        types.append(t)
    out: list[object] = []
    pos = hlen
    sizes = {0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 6, 6: 8, 7: 8, 8: 0, 9: 0}
    for t in types:
        if t in sizes:
            n = sizes[t]
            raw = payload[pos:pos + n]
            if len(raw) != n:
                raise ValueError("record past the end")
            if t == 0:
                out.append(None)
            elif t == 7:
                out.append(struct.unpack(">d", raw)[0])
            elif t in (8, 9):
                out.append(t - 8)
            else:
                out.append(int.from_bytes(raw, "big", signed=True))
        elif t >= 12:
            n = (t - 12) // 2 if t % 2 == 0 else (t - 13) // 2
            raw = payload[pos:pos + n]
            if len(raw) != n:
                raise ValueError("record past the end")
            out.append(raw if t % 2 == 0 else raw.decode("utf-8"))
        else:
            raise ValueError("bad serial type")
        pos += n
    return out


def _cells(page: bytes, hdr: int, usable: int, read_page) -> list[tuple[int, list[Any]]]:
    """(rowid, values) of each cell of a table leaf page (type 0x0D)."""
    found = []
    ncells = int.from_bytes(page[hdr + 3:hdr + 5], "big")
    for c in range(ncells):
        at = hdr + 8 + 2 * c
        ptr = int.from_bytes(page[at:at + 2], "big")
        if not hdr + 8 <= ptr < usable:
            continue
        try:
            plen, i = _varint(page, ptr)
            rowid, i = _varint(page, i)
            x = usable - 35
            if plen <= x:
                payload = page[i:i + plen]
            else:  # the rest is on overflow pages
                m = ((usable - 12) * 32 // 255) - 23
                k = m + (plen - m) % (usable - 4)
                local = k if k <= x else m
                payload = page[i:i + local]
                nxt = int.from_bytes(page[i + local:i + local + 4], "big")
                hops = 0
                while len(payload) < plen and nxt and hops < 100_000:
                    ov = read_page(nxt)
                    if ov is None:
                        break
                    nxt = int.from_bytes(ov[:4], "big")
                    payload += ov[4:usable][:plen - len(payload)]
                    hops += 1
            if len(payload) != plen:
                continue
            found.append((rowid, _values(payload)))
        except (ValueError, UnicodeDecodeError, IndexError, struct.error):
            continue
    return found


def carve(path: Path) -> tuple[list[Row], list[Rejected]]:
    """Rows of the spool and rejected tables found in the table pages of a damaged file."""
    data = path.read_bytes() if path.exists() else b""
    wal_path = path.with_name(path.name + "-wal")
    wal = wal_path.read_bytes() if wal_path.exists() else b""
    size = int.from_bytes(data[16:18], "big") if len(data) >= 18 else 0
    size = 65536 if size == 1 else size
    if not (512 <= size <= 65536 and size & (size - 1) == 0):
        size = int.from_bytes(wal[8:12], "big") if len(wal) >= 12 else 0
    sizes = [size] if 512 <= size <= 65536 and size & (size - 1) == 0 else \
        [4096, 1024, 2048, 8192, 16384, 32768, 65536, 512]
    best: tuple[dict[str, Row], dict[tuple, Rejected]] = ({}, {})
    for ps in sizes:
        rows, rejected = _carve_with(data, wal, ps)
        if len(rows) + len(rejected) > len(best[0]) + len(best[1]):
            best = rows, rejected
    rows = best[0]
    # Pages whose cell pointers are damaged: the frames themselves are plain JSON text.
    last = max((r[0] for r in rows.values()), default=0)
    for alert_id, frame in _scan_frames(data + b"\0" + wal):
        if alert_id not in rows:
            last += 1
            rows[alert_id] = (last, alert_id, frame)
    return sorted(rows.values()), list(best[1].values())


FRAME_STARTS = (b'{"type":"alert","id":"', b'{"type":"withdraw","id":"')


def _next_frame(blob: bytes, at: int) -> int:
    found = [i for i in (blob.find(f, at) for f in FRAME_STARTS) if i >= 0]
    return min(found) if found else -1


def _scan_frames(blob: bytes) -> list[tuple[str, str]]:
    """(id, frame) of every complete alert (or withdrawal) frame in the bytes, in file order."""
    found = []
    decoder = json.JSONDecoder()
    at = _next_frame(blob, 0)
    while at >= 0:
        end = blob.find(b"\0", at)  # SQLite pads free space with zeros; frames hold none
        chunk = blob[at:end if end >= 0 else len(blob)][:1_000_000]
        text = chunk.decode("utf-8", errors="replace")
        try:
            msg, used = decoder.raw_decode(text)
        except ValueError:
            msg, used = None, 0
        if isinstance(msg, dict) and frame_ok(msg.get("id"), text[:used]) and "\ufffd" not in text[:used]:
            found.append((msg["id"], text[:used]))
        at = _next_frame(blob, at + 1)
    return found


def _carve_with(data: bytes, wal: bytes, ps: int) -> tuple[dict[str, Row], dict[tuple, Rejected]]:
    reserved = data[20] if len(data) > 20 and data[:16] == b"SQLite format 3\x00" else 0
    usable = ps - reserved
    pages: list[tuple[int, bytes]] = [(1 + i // ps, data[i:i + ps]) for i in range(0, len(data), ps)]
    if len(wal) >= 32:  # WAL frames: 24-byte header (page number first) then the page
        for i in range(32, len(wal) - 24 - ps + 1, 24 + ps):
            pages.append((int.from_bytes(wal[i:i + 4], "big"), wal[i + 24:i + 24 + ps]))
    by_number = {}
    for number, page in pages:
        by_number[number] = page  # later WAL frames win for overflow chains

    def read_page(number: int) -> bytes | None:
        return by_number.get(number)

    rows: dict[str, Row] = {}
    rejected: dict[tuple, Rejected] = {}
    for number, page in pages:
        if len(page) < ps:
            page = page + bytes(ps - len(page))
        hdr = 100 if number == 1 else 0
        if page[hdr] != 0x0D:
            continue
        for rowid, vals in _cells(page, hdr, usable, read_page):
            if len(vals) == 3 and vals[0] is None and frame_ok(vals[1], vals[2]):
                rows.setdefault(vals[1], (rowid, vals[1], vals[2]))
            elif (len(vals) == 4 and all(isinstance(v, str) for v in vals[:3])
                  and isinstance(vals[3], (int, float))):
                rejected.setdefault(tuple(vals[:3]), (vals[0], vals[1], vals[2], float(vals[3])))
    return rows, rejected
