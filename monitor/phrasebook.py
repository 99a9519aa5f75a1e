"""Phrasebook profiles: the service norms as data, validated and compiled once.

A profile is a TOML file (see phrasebook/*.toml). Every entry names the seed
document and section it comes from. Errors name the file, the line and the
problem, e.g. `zte.toml:42: forbidden[3].phrase: must be a non-empty string`.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from monitor.matcher import Pattern, PhraseMatcher

PROFILE_DIR = Path(__file__).resolve().parent.parent / "phrasebook"
SEVERITIES = ("minor", "major", "critical")


class PhrasebookError(Exception):
    """A profile cannot be used; str() is one line naming file, line and problem."""


@dataclass(frozen=True)
class ForbiddenEntry:
    phrase: str
    seed: str
    patterns: tuple[str, ...]
    exclude: tuple[str, ...]
    severity: str
    deduction: float


@dataclass(frozen=True)
class RuleSettings:
    seed: str
    severity: str
    deduction: float


@dataclass
class Profile:
    name: str
    description: str
    path: Path
    seeds: tuple[str, ...]
    hotwords: tuple[str, ...]
    greeting: RuleSettings
    greeting_deadline_s: float
    greeting_inbound: PhraseMatcher  # any one of these forms is a greeting
    greeting_outbound: PhraseMatcher
    greeting_rude: PhraseMatcher
    closing: RuleSettings
    closing_phrases: PhraseMatcher
    closing_offer: PhraseMatcher  # optional "anything else?" offer before goodbye
    closing_window_s: float
    hold: RuleSettings
    hold_ask: PhraseMatcher
    hold_thanks: PhraseMatcher
    hold_max_silence_s: float
    hold_ask_lookback_s: float
    hangup: RuleSettings
    forbidden_defaults: RuleSettings
    forbidden: tuple[ForbiddenEntry, ...]
    forbidden_matcher: PhraseMatcher
    recommended: PhraseMatcher


# -- locating lines for error messages ---------------------------------------
class _Lines:
    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def of(self, table: str, index: int | None = None, key: str | None = None) -> int:
        """Best line number for table[index].key (1-based; 0 when unknown)."""
        name = re.escape(table)
        header = re.compile(rf"^\s*\[\[\s*{name}\s*\]\]" if index is not None else rf"^\s*\[\s*{name}\s*\]")
        seen = -1
        start = None
        for i, line in enumerate(self.lines):
            if header.match(line):
                seen += 1
                if index is None or seen == index:
                    start = i
                    break
        if start is None:
            return 0
        if key is None:
            return start + 1
        keyre = re.compile(rf"^\s*{re.escape(key)}\s*=")
        for j in range(start + 1, len(self.lines)):
            if re.match(r"^\s*\[", self.lines[j]):
                break
            if keyre.match(self.lines[j]):
                return j + 1
        return start + 1


class _Reader:
    def __init__(self, path: Path, data: dict, lines: _Lines) -> None:
        self.path, self.data, self.lines = path, data, lines

    def fail(self, table: str, index: int | None, key: str | None, problem: str) -> NoReturn:
        where = f"{table}[{index}]" if index is not None else table
        if key:
            where += f".{key}"
        line = self.lines.of(table, index, key)
        loc = f"{self.path.name}:{line}" if line else self.path.name
        raise PhrasebookError(f"{loc}: {where}: {problem}")

    def table(self, name: str, required: bool = True) -> dict:
        t = self.data.get(name)
        if t is None:
            if required:
                self.fail(name, None, None, "table is missing")
            return {}
        if not isinstance(t, dict):
            self.fail(name, None, None, "must be a table")
        return t

    def string(self, t: dict, table: str, key: str, index: int | None = None, default: str | None = None) -> str:
        v = t.get(key, default)
        if not isinstance(v, str) or not v.strip():
            self.fail(table, index, key, "must be a non-empty string")
        return v.strip()

    def strings(self, t: dict, table: str, key: str, index: int | None = None, required: bool = True) -> tuple[str, ...]:
        v = t.get(key)
        if v is None:
            if required:
                self.fail(table, index, key, "is missing (a list of phrases)")
            return ()
        if not isinstance(v, list) or not all(isinstance(s, str) and s.strip() for s in v):
            self.fail(table, index, key, "must be a list of non-empty strings")
        if required and not v:
            self.fail(table, index, key, "must not be empty")
        return tuple(s.strip() for s in v)

    def number(self, t: dict, table: str, key: str, default: float, lo: float, hi: float,
               index: int | None = None) -> float:
        v = t.get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            self.fail(table, index, key, "must be a number")
        if not lo <= v <= hi:
            self.fail(table, index, key, f"must be between {lo:g} and {hi:g}")
        return float(v)

    def rule(self, t: dict, table: str, default_deduction: float) -> RuleSettings:
        severity = t.get("severity", "major")
        if severity not in SEVERITIES:
            self.fail(table, None, "severity", f"must be one of {', '.join(SEVERITIES)}")
        return RuleSettings(seed=self.string(t, table, "seed"), severity=severity,
                            deduction=self.number(t, table, "deduction", default_deduction, 0, 100))


def _matcher(name: str, phrases, reader: _Reader, table: str, key: str, lenient: bool = True) -> PhraseMatcher:
    try:
        return PhraseMatcher([Pattern(p, name) for p in phrases], lenient=lenient)
    except ValueError as exc:
        reader.fail(table, None, key, str(exc))


def load_profile(ref: str | Path) -> Profile:
    """Load a profile by name (zte, unicom, ...) or by path to a TOML file."""
    path = Path(ref)
    if not path.suffix and not path.exists():
        path = PROFILE_DIR / f"{ref}.toml"
        if not path.exists():
            known = ", ".join(sorted(p.stem for p in PROFILE_DIR.glob("*.toml")))
            raise PhrasebookError(f"no profile named {ref!r} (known: {known}; or give a .toml path)")
    if not path.is_file():
        raise PhrasebookError(f"{path}: no such profile file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PhrasebookError(f"{path.name}: cannot read ({exc.__class__.__name__})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        loc = f"{path.name}:{m.group(1)}" if m else path.name
        raise PhrasebookError(f"{loc}: TOML syntax error: {exc}") from None
    return _compile(path, data, _Reader(path, data, _Lines(text)))


def _compile(path: Path, data: dict, r: _Reader) -> Profile:
    prof = r.table("profile")
    scoring = r.table("scoring", required=False)
    g = r.table("greeting")
    c = r.table("closing")
    h = r.table("hold")
    hu = r.table("hangup")
    fd = r.table("forbidden_defaults", required=False)
    entries_raw = data.get("forbidden")
    if not isinstance(entries_raw, list) or not entries_raw:
        r.fail("forbidden", None, None, "needs at least one [[forbidden]] entry")
    fdef = RuleSettings(seed=fd.get("seed", "") or "", severity=fd.get("severity", "major"),
                        deduction=r.number(fd, "forbidden_defaults", "deduction", 15, 0, 100))
    if fdef.severity not in SEVERITIES:
        r.fail("forbidden_defaults", None, "severity", f"must be one of {', '.join(SEVERITIES)}")
    entries: list[ForbiddenEntry] = []
    patterns: list[Pattern] = []
    seen: set[str] = set()
    for i, e in enumerate(entries_raw):
        if not isinstance(e, dict):
            r.fail("forbidden", i, None, "must be a table")
        unknown = set(e) - {"phrase", "seed", "patterns", "exclude", "severity", "deduction", "note"}
        if unknown:
            r.fail("forbidden", i, sorted(unknown)[0], "unknown field")
        phrase = r.string(e, "forbidden", "phrase", i)
        if phrase in seen:
            r.fail("forbidden", i, "phrase", f"duplicate phrase {phrase!r}")
        seen.add(phrase)
        severity = e.get("severity", fdef.severity)
        if severity not in SEVERITIES:
            r.fail("forbidden", i, "severity", f"must be one of {', '.join(SEVERITIES)}")
        entry = ForbiddenEntry(
            phrase=phrase, seed=r.string(e, "forbidden", "seed", i),
            patterns=r.strings(e, "forbidden", "patterns", i, required=False) or (phrase,),
            exclude=r.strings(e, "forbidden", "exclude", i, required=False),
            severity=severity,
            deduction=r.number(e, "forbidden", "deduction", fdef.deduction, 0, 100, i))
        entries.append(entry)
        for p in entry.patterns:
            try:
                patterns.append(Pattern(p, phrase, exclude=entry.exclude))
            except ValueError as exc:
                r.fail("forbidden", i, "patterns", str(exc))
    try:
        forbidden_matcher = PhraseMatcher(patterns)
    except ValueError as exc:
        r.fail("forbidden", None, None, str(exc))
    direction_forms = r.strings(g, "greeting", "inbound")
    return Profile(
        name=r.string(prof, "profile", "name"),
        description=prof.get("description", ""),
        path=path,
        seeds=r.strings(prof, "profile", "seeds"),
        hotwords=r.strings(prof, "profile", "hotwords", required=False),
        greeting=r.rule(g, "greeting", scoring.get("greeting", 10)),
        greeting_deadline_s=r.number(g, "greeting", "deadline_s", 5.0, 0.5, 60),
        # The company name said at pick-up is part of the greeting form ("您好，中兴通讯"),
        # so "<garbled 您好> + company" still counts.
        greeting_inbound=_matcher("greeting", direction_forms + tuple(
            f + c for f in direction_forms[:1] for c in r.strings(g, "greeting", "company", required=False)),
            r, "greeting", "inbound"),
        greeting_outbound=_matcher("greeting", r.strings(g, "greeting", "outbound", required=False) or direction_forms,
                                   r, "greeting", "outbound"),
        greeting_rude=_matcher("rude", r.strings(g, "greeting", "rude", required=False), r, "greeting", "rude",
                               lenient=False),
        closing=r.rule(c, "closing", 10),
        closing_phrases=_matcher("closing", r.strings(c, "closing", "phrases"), r, "closing", "phrases"),
        closing_offer=_matcher("offer", r.strings(c, "closing", "offer_help", required=False), r, "closing", "offer_help"),
        closing_window_s=r.number(c, "closing", "window_s", 20.0, 1, 600),
        hold=r.rule(h, "hold", 10),
        hold_ask=_matcher("hold_ask", r.strings(h, "hold", "ask"), r, "hold", "ask"),
        hold_thanks=_matcher("hold_thanks", r.strings(h, "hold", "thanks", required=False), r, "hold", "thanks"),
        hold_max_silence_s=r.number(h, "hold", "max_silence_s", 10.0, 1, 3600),
        hold_ask_lookback_s=r.number(h, "hold", "ask_lookback_s", 15.0, 0, 600),
        hangup=r.rule(hu, "hangup", 10),
        forbidden_defaults=fdef,
        forbidden=tuple(entries),
        forbidden_matcher=forbidden_matcher,
        recommended=_matcher("recommended", r.strings(r.table("recommended", required=False), "recommended",
                                                       "phrases", required=False), r, "recommended", "phrases"),
    )


def list_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))
