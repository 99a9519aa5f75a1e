"""Call metadata (agent, team, date, direction, profile, anything else) from a CSV or the file name.

`--meta calls.csv`: a header row with a `file` column (the audio file's name, with or without
its extension) and any of agent, team, date, direction, profile, plus any extra columns.
`--name-pattern "{date}_{agent}_{callid}.wav"`: fields read from each file's name. Both may be
given; the CSV wins where both say something. Dates are YYYY-MM-DD (YYYYMMDD is accepted).
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

KNOWN = ("agent", "team", "date", "direction", "profile")
DIRECTIONS = ("inbound", "outbound")
_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class MetaError(ValueError):
    """Bad metadata input; one line naming the file and row."""


def normal_date(text: str) -> str:
    """YYYY-MM-DD from YYYY-MM-DD or YYYYMMDD; ValueError otherwise."""
    t = text.strip()
    if re.fullmatch(r"\d{8}", t):
        t = f"{t[:4]}-{t[4:6]}-{t[6:]}"
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", t):
            raise ValueError
        return date.fromisoformat(t).isoformat()
    except ValueError:
        raise ValueError(f"date {text!r} is not a YYYY-MM-DD date") from None


def _checked(values: dict[str, str]) -> dict[str, str]:
    """Trimmed non-empty values with a normal date and a known direction (ValueError otherwise)."""
    out = {k: v.strip() for k, v in values.items() if v and v.strip()}
    if "date" in out:
        out["date"] = normal_date(out["date"])
    if "direction" in out and out["direction"] not in DIRECTIONS:
        raise ValueError(f"direction {out['direction']!r} is not inbound or outbound")
    return out


@dataclass(frozen=True)
class NamePattern:
    """A file-name pattern such as {date}_{agent}_{callid}.wav; fields match up to the next literal text."""

    pattern: str
    regex: re.Pattern[str]
    fields: tuple[str, ...]
    with_suffix: bool

    @classmethod
    def parse(cls, pattern: str) -> NamePattern:
        names = _FIELD.findall(pattern)
        if not names:
            raise MetaError(f"name pattern {pattern!r} has no {{field}}")
        if len(set(names)) != len(names):
            raise MetaError(f"name pattern {pattern!r} names a field twice")
        parts, pos = [], 0
        for m in _FIELD.finditer(pattern):
            parts.append(re.escape(pattern[pos:m.start()]) + f"(?P<{m.group(1)}>.+?)")
            pos = m.end()
        tail = pattern[pos:]
        return cls(pattern, re.compile("".join(parts) + re.escape(tail) + r"\Z"), tuple(names), "." in tail)

    def match(self, path: Path) -> dict[str, str] | None:
        m = self.regex.match(path.name if self.with_suffix else path.stem)
        return None if m is None else m.groupdict()


@dataclass(frozen=True)
class MetaTable:
    """Rows of a metadata CSV by the 'file' column without its audio extension (0001, or day1/0001
    where two days' recorders both wrote a 0001)."""

    source: str
    rows: dict[str, dict[str, str]] = field(default_factory=dict)

    def get(self, path: Path, call: str | None = None) -> dict[str, str] | None:
        """The row of the call named `call` in the report (monitor.audio.files.call_names), else
        the one row whose file name alone is the file's."""
        if call is not None and _key(call) in self.rows:
            return self.rows[_key(call)]
        if path.stem in self.rows:
            return self.rows[path.stem]
        by_name = [row for key, row in self.rows.items() if key.rsplit("/", 1)[-1] == path.stem]
        return by_name[0] if len(by_name) == 1 else None


def _key(name: str) -> str:
    """A 'file' value or call name without its audio extension, with forward slashes."""
    from monitor.audio.files import call_key

    return call_key(name.replace("\\", "/"))


def read_meta_csv(path: Path) -> MetaTable:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise MetaError(f"{path}: cannot read the metadata file ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:  # Excel in a Chinese locale saves CSV as GBK
            text = raw.decode("gb18030")
        except UnicodeDecodeError:
            raise MetaError(f"{path}: not UTF-8 or GBK text") from None
    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in (reader.fieldnames or [])]
    if "file" not in header:
        raise MetaError(f"{path}: the metadata CSV needs a 'file' column (has: {', '.join(header) or 'nothing'})")
    rows: dict[str, dict[str, str]] = {}
    for line, row in enumerate(reader, 2):
        values = {(k or "").strip(): v or "" for k, v in row.items() if k}
        name = values.pop("file", "").strip()
        if not name:
            raise MetaError(f"{path}:{line}: empty 'file'")
        stem = _key(name)
        if stem in rows:
            raise MetaError(f"{path}:{line}: {name} is listed twice")
        try:
            rows[stem] = _checked(values)
        except ValueError as exc:
            raise MetaError(f"{path}:{line}: {exc}") from None
    return MetaTable(str(path), rows)


@dataclass(frozen=True)
class MetaSource:
    """Where a call's metadata comes from: a CSV, a name pattern, or both (the CSV wins)."""

    table: MetaTable | None = None
    pattern: NamePattern | None = None

    def __bool__(self) -> bool:
        return self.table is not None or self.pattern is not None

    def for_call(self, path: Path, call: str | None = None) -> tuple[dict[str, str], str | None]:
        """(metadata of the call, a warning when a source has nothing for it); `call`: its name in
        the report, where it differs from the file name (two files of one name in subfolders)."""
        out: dict[str, str] = {}
        missing = []
        if self.pattern is not None:
            found = self.pattern.match(path)
            if found is None:
                missing.append(f"does not match --name-pattern {self.pattern.pattern}")
            else:
                try:
                    out.update(_checked(found))
                except ValueError as exc:
                    missing.append(f"--name-pattern: {exc}")
        if self.table is not None:
            row = self.table.get(path, call)
            if row is None:
                missing.append(f"is not in {self.table.source}")
            else:
                out.update(row)
        return out, (f"{call or path.name}: {'; '.join(missing)}" if missing else None)
