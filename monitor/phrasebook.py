"""Phrasebook profiles: the service norms as data, validated and compiled once.

A profile is a TOML file (see phrasebook/*.toml). Every entry names the seed
document and section it comes from. Errors name the file, the line and the
problem, e.g. `zte.toml:42: forbidden[3].phrase: must be a non-empty string`;
every error of a file is found in one pass (`PhrasebookError.errors`).

Lists shared by every profile live in an include file (phrasebook/common.toml):
`include = ["common.toml"]` at the top of a profile merges it in first; lists
are joined (the included entries first), single values of the profile win.
An include is looked up next to the including file, then among the built-in
files, so a profile kept anywhere can include the built-in common file by name.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.matcher import Pattern, PhraseMatcher, Polite
from monitor.text import normalize

# The built-in profiles: monitor/profiles in an installed wheel (package data); in a source
# checkout monitor/profiles is a link to the repository's phrasebook/ folder.
_PACKAGED = Path(__file__).resolve().parent / "profiles"
PROFILE_DIR = (_PACKAGED if _PACKAGED.is_dir() else Path(__file__).resolve().parent.parent / "phrasebook").resolve()
SEVERITIES = ("minor", "major", "critical")
RULE_TABLES = ("greeting", "closing", "hold", "hangup")
DEFAULT_DEDUCTION = {"greeting": 10.0, "closing": 10.0, "hold": 10.0, "hangup": 10.0, "forbidden": 15.0,
                     "complaint_answer": 10.0}
# Caller-side warnings to the supervisor: their own severity, and never a deduction.
ESCALATION = "escalation"


class PhrasebookError(Exception):
    """A profile cannot be used. str() is one line naming file, line and the (first) problem;
    `errors` holds every problem found, `warnings` the doubts."""

    def __init__(self, errors: list[str], warnings: list[str] | None = None) -> None:
        self.errors = _in_file_order(errors)
        self.warnings = list(warnings or [])
        more = len(self.errors) - 1
        super().__init__(self.errors[0] + (f" (and {more} more error{'s' * (more > 1)}; "
                                           "see `monitor phrasebook check`)" if more else ""))


def _in_file_order(messages: list[str]) -> list[str]:
    """Messages grouped by file (first seen first), by line within a file."""
    files: dict[str, int] = {}

    def key(msg: str) -> tuple[int, int]:
        m = re.match(r"([^:]+?)(?::(\d+))?: ", msg)
        name, line = (m.group(1), int(m.group(2) or 0)) if m else (msg, 0)
        return files.setdefault(name, len(files)), line

    return sorted(messages, key=key)


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


@dataclass(frozen=True)
class ServiceMetricLimits:
    """Optional [service_metrics] rules: the agent's speech rate and interrupting the caller (monitor.metrics)."""

    settings: RuleSettings  # the findings are minor unless the table says otherwise
    max_chars_per_min: float | None  # "speech_rate" when the agent speaks faster (over the whole call)
    min_talk_s: float  # ... and has talked at least this long (a rate over a few words means little)
    max_interruptions: int | None  # "interrupting" when the agent starts over the caller more often


@dataclass(frozen=True)
class Escalations:
    """What in the caller's words warns the supervisor (rules "escalation_*"), and the
    agent's answer to a complaint ("complaint_answer", minor)."""

    complaint: RuleSettings
    complaint_phrases: PhraseMatcher  # threats to complain or escalate (投诉, 12315, 工信部 …)
    supervisor: RuleSettings
    supervisor_phrases: PhraseMatcher  # asks for a supervisor (找你们领导 …)
    repeat: RuleSettings
    repeat_times: int  # the same statement in this many separate caller utterances
    repeat_min_syllables: int  # shorter clauses (好的, 谢谢) are never "the same complaint"
    repeat_within_s: float
    repeat_ignore: tuple[str, ...]  # words taken out before comparing (你好, 听得到吗, 型号是 …), longest first
    answer: RuleSettings  # deduction: the [scoring] value; the finding is minor and costs half
    answer_phrases: PhraseMatcher  # the prescribed apology; empty: the norms prescribe none
    answer_within_s: float


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
    greeting_company: PhraseMatcher  # the greeting must name the company (minor "greeting_company")
    closing: RuleSettings
    closing_phrases: PhraseMatcher
    closing_offer: PhraseMatcher  # optional "anything else?" offer before goodbye
    closing_window_s: float
    hold: RuleSettings
    hold_ask: PhraseMatcher
    hold_thanks: PhraseMatcher
    hold_max_silence_s: float
    hold_ask_lookback_s: float
    hold_return_window_s: float  # the agent's words this long after coming back are the return
    hangup: RuleSettings
    forbidden_defaults: RuleSettings
    forbidden: tuple[ForbiddenEntry, ...]
    forbidden_matcher: PhraseMatcher
    recommended: PhraseMatcher
    escalations: Escalations
    includes: tuple[Path, ...] = ()
    warnings: tuple[str, ...] = ()
    version: str = ""  # a hash of what the profile and its includes say (`_version`)
    service_metrics: ServiceMetricLimits | None = None  # no [service_metrics] table: not judged

    @property
    def goodbyes(self) -> tuple[str, ...]:
        """The goodbyes as the profile writes them: the recogniser scores them at the openings of
        the agent's lines (monitor.asr.whisper `opening_probes`)."""
        return tuple(p.text for p in self.closing_phrases.patterns)

    @property
    def hellos(self) -> tuple[str, ...]:
        """The hello that opens the greeting (its first inbound form, 您好): the recogniser scores it
        at the openings of the agent's first lines (monitor.asr.whisper `greeting_probes`)."""
        return tuple(p.text for p in self.greeting_inbound.patterns[:1])

    @property
    def forbidden_phrases(self) -> tuple[str, ...]:
        """The forbidden phrases as the matcher looks for them: the recogniser verifies the ones a
        reading comes near (monitor.asr.whisper `phrase_probes`)."""
        return tuple(p.text for p in self.forbidden_matcher.patterns)


# -- what a phrasebook file may hold ------------------------------------------
@dataclass(frozen=True)
class _Kind:
    kind: str  # str | text | strs | phrases | exact | num | severity
    lo: float = 0.0
    hi: float = 0.0


_STR, _TEXT, _STRS, _SEV = _Kind("str"), _Kind("text"), _Kind("strs"), _Kind("severity")
_PHRASES = _Kind("phrases")  # matched leniently anywhere: one character would match almost anything
_EXACT = _Kind("exact")  # matched exactly as the opening word: one character is fine


def _num(lo: float, hi: float) -> _Kind:
    return _Kind("num", lo, hi)


_RULE_KEYS = {"seed": _STR, "severity": _SEV, "deduction": _num(0, 100)}
SCHEMA: dict[str, dict[str, _Kind]] = {
    "profile": {"name": _STR, "description": _TEXT, "seeds": _STRS, "hotwords": _STRS},
    "scoring": {k: _num(0, 100) for k in DEFAULT_DEDUCTION},
    "greeting": {**_RULE_KEYS, "deadline_s": _num(0.5, 60), "inbound": _PHRASES, "outbound": _PHRASES,
                 "company": _PHRASES, "rude": _EXACT},
    "closing": {**_RULE_KEYS, "phrases": _PHRASES, "offer_help": _PHRASES, "window_s": _num(1, 600)},
    "hold": {**_RULE_KEYS, "ask": _PHRASES, "thanks": _PHRASES, "max_silence_s": _num(1, 3600),
             "ask_lookback_s": _num(0, 600), "return_window_s": _num(0.5, 120)},
    "hangup": dict(_RULE_KEYS),
    "recommended": {"seed": _STR, "phrases": _PHRASES},
    "forbidden_defaults": {"seed": _TEXT, "severity": _SEV, "deduction": _num(0, 100)},
    # Polite constructions a forbidden phrase can sit in (see matcher.Polite): words, not phrases.
    "polite": {"caller_subject": _STRS, "question": _STRS, "negated": _STRS, "concessive_words": _STRS,
               "concessive_then": _STRS, "concessive_opening": _STRS, "concessive_after": _STRS,
               "a_not_a": _STRS, "asks_about": _STRS, "new_clause": _STRS, "which_part": _STRS,
               "which_part_after": _STRS},
    # Caller-side escalations (rules "escalation_*": severity "escalation", no deduction).
    "escalation": {"negated": _STRS},  # caller words right before a phrase that deny it: 我不是要投诉
    "escalation_complaint": {"seed": _STR, "phrases": _PHRASES},
    "escalation_supervisor": {"seed": _STR, "phrases": _PHRASES},
    "escalation_repeat": {"seed": _STR, "times": _num(2, 20), "min_syllables": _num(2, 50),
                          "within_s": _num(10, 7200), "ignore": _STRS},
    # The agent answers a complaint with the prescribed apology (minor "complaint_answer").
    "complaint_answer": {"seed": _STR, "deduction": _num(0, 100), "phrases": _PHRASES, "within_s": _num(1, 600)},
    # Optional rules on the service metrics (rules "speech_rate" and "interrupting", minor by default).
    "service_metrics": {"seed": _STR, "severity": _SEV, "deduction": _num(0, 100),
                        "max_chars_per_min": _num(60, 1000), "min_talk_s": _num(0, 3600),
                        "max_interruptions": _num(0, 100)},
}
FORBIDDEN_KEYS: dict[str, _Kind] = {"phrase": _STR, "seed": _STR, "patterns": _PHRASES, "exclude": _PHRASES,
                                    "severity": _SEV, "deduction": _num(0, 100), "note": _TEXT}


# -- locating lines for error messages ---------------------------------------
class _Lines:
    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def of(self, table: str | None, index: int | None = None, key: str | None = None) -> int:
        """Best line number for table[index].key (table None: top level; 1-based; 0 when unknown)."""
        if table is None:
            start = -1
        else:
            name = re.escape(table)
            header = re.compile(rf"^\s*\[\[\s*{name}\s*\]\]" if index is not None else rf"^\s*\[\s*{name}\s*\]")
            seen = -1
            found = None
            for i, line in enumerate(self.lines):
                if header.match(line):
                    seen += 1
                    if index is None or seen == index:
                        found = i
                        break
            if found is None:
                return 0
            start = found
            if key is None:
                return start + 1
        keyre = re.compile(rf"^\s*{re.escape(key or '')}\s*=")
        for j in range(start + 1, len(self.lines)):
            if re.match(r"^\s*\[", self.lines[j]):
                break
            if keyre.match(self.lines[j]):
                return j + 1
        return start + 1


@dataclass
class _Source:
    path: Path
    data: dict
    lines: _Lines
    includes: list[_Source] = field(default_factory=list)

    def where(self, table: str | None, index: int | None = None, key: str | None = None) -> str:
        line = self.lines.of(table, index, key)
        return f"{self.path.name}:{line}" if line else self.path.name


def _label(table: str | None, index: int | None, key: str | None) -> str:
    where = table or ""
    if index is not None:
        where += f"[{index}]"
    if key:
        where = f"{where}.{key}" if where else key
    return where


class _Problems:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def error(self, src: _Source, table: str | None, index: int | None, key: str | None, problem: str) -> None:
        self.errors.append(f"{src.where(table, index, key)}: {_label(table, index, key)}: {problem}")

    def warn(self, src: _Source, table: str | None, index: int | None, key: str | None, problem: str) -> None:
        self.warnings.append(f"{src.where(table, index, key)}: {_label(table, index, key)}: {problem}")


# -- reading files and their includes ------------------------------------------
def _text(path: Path) -> str:
    """A phrasebook file's text: UTF-8, with or without the BOM Windows editors put first."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PhrasebookError([f"{path.name}: cannot read ({exc.strerror or exc.__class__.__name__})"]) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise PhrasebookError([f"{path.name}:{line}: not UTF-8 text (saved as GBK/ANSI?): save the file "
                               "as UTF-8"]) from None


def _read(path: Path) -> _Source:
    text = _text(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        loc = f"{path.name}:{m.group(1)}" if m else path.name
        raise PhrasebookError([f"{loc}: TOML syntax error: {exc}"]) from None
    return _Source(path, data, _Lines(text))


def user_profile_dir() -> Path:
    """The user's own profiles: $MONITOR_PROFILE_DIR, else $XDG_CONFIG_HOME (~/.config)/call-monitor/profiles."""
    env = os.environ.get("MONITOR_PROFILE_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "call-monitor" / "profiles"


def profile_dirs() -> tuple[Path, ...]:
    """Where profiles are looked up by name: the user's folder first (a user's zte.toml wins), then the built-in."""
    return (user_profile_dir(), PROFILE_DIR)


def _named(ref: str | Path) -> Path:
    """NAME.toml in the first profile folder that has it (the built-in path when none does)."""
    for base in profile_dirs():
        cand = base / f"{ref}.toml"
        if cand.is_file():
            return cand
    return PROFILE_DIR / f"{ref}.toml"


def _resolve_include(ref: str, including: Path) -> Path | None:
    """An include next to the including file, else one in the user's folder or a built-in one by name."""
    for base in (including.parent, *profile_dirs()):
        for cand in (base / ref, base / f"{ref}.toml"):
            if cand.is_file():
                return cand.resolve()
    return None


def _load_tree(path: Path, probs: _Problems, chain: tuple[Path, ...] = ()) -> _Source:
    src = _read(path)
    inc = src.data.get("include", [])
    if not isinstance(inc, list) or not all(isinstance(x, str) and x.strip() for x in inc):
        probs.error(src, None, None, "include", "must be a list of file names")
        return src
    for ref in inc:
        target = _resolve_include(ref.strip(), path)
        if target is None:
            probs.error(src, None, None, "include",
                        f"no file {ref!r} next to {path.name} or among the built-in phrasebooks")
        elif target in chain or target == path.resolve():
            probs.error(src, None, None, "include", f"{ref!r} includes itself (through {path.name})")
        else:
            try:
                src.includes.append(_load_tree(target, probs, chain + (path.resolve(),)))
            except PhrasebookError as exc:  # the included file is unreadable: name it
                probs.errors.extend(exc.errors)
    return src


# -- checking each file on its own -------------------------------------------
def _check_value(src: _Source, probs: _Problems, table: str, index: int | None, key: str, kind: _Kind,
                 v: Any) -> None:
    def err(problem: str) -> None:
        probs.error(src, table, index, key, problem)

    if kind.kind == "str":
        if not isinstance(v, str) or not v.strip():
            err("must be a non-empty string")
    elif kind.kind == "text":
        if not isinstance(v, str):
            err("must be a string")
    elif kind.kind == "severity":
        if v not in SEVERITIES:
            err(f"must be one of {', '.join(SEVERITIES)}")
    elif kind.kind == "num":
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            err("must be a number")
        elif not kind.lo <= v <= kind.hi:
            err(f"must be between {kind.lo:g} and {kind.hi:g}")
    else:  # lists of strings
        if not isinstance(v, list) or not all(isinstance(s, str) and s.strip() for s in v):
            err("must be a list of non-empty strings")
            return
        if kind.kind == "strs":
            return
        for s in v:
            _check_phrase(src, probs, table, index, key, s, warn_short=kind.kind == "phrases")


_PATTERN_SYMBOL = re.compile(r"[|*+^$\\\[\]{}]|\.[*+?]")  # regular-expression syntax in a phrase


def _check_phrase(src: _Source, probs: _Problems, table: str, index: int | None, key: str, phrase: str,
                  warn_short: bool) -> None:
    n = len(normalize(phrase))
    symbol = _PATTERN_SYMBOL.search(phrase)
    if symbol:  # dropped as punctuation, 我不(管|理) would be looked for as 我不管理
        probs.error(src, table, index, key, f"{phrase.strip()!r}: phrases are words as said, not patterns "
                    f"({symbol.group()!r} is no operator here); write each wording as a phrase of its own")
    elif n == 0:
        probs.error(src, table, index, key, f"pattern {phrase.strip()!r} has no characters to match")
    elif n == 1 and warn_short:
        probs.warn(src, table, index, key, f"one-character phrase {phrase.strip()!r} matches almost anything "
                   "(a homophone of one syllable); use a longer phrase")


def _check_file(src: _Source, probs: _Problems) -> None:
    """Every key of the file is known and of the right type (file and line for each that is not)."""
    for top, value in src.data.items():
        if top == "include":
            continue
        if top == "forbidden":
            if not isinstance(value, list):
                probs.error(src, "forbidden", None, None, "must be [[forbidden]] entries")
                continue
            for i, e in enumerate(value):
                if not isinstance(e, dict):
                    probs.error(src, "forbidden", i, None, "must be a table")
                    continue
                for k, v in e.items():
                    if k not in FORBIDDEN_KEYS:
                        probs.error(src, "forbidden", i, k, "unknown field")
                    else:
                        _check_value(src, probs, "forbidden", i, k, FORBIDDEN_KEYS[k], v)
                if "patterns" not in e and isinstance(e.get("phrase"), str) and e["phrase"].strip():
                    _check_phrase(src, probs, "forbidden", i, "phrase", e["phrase"], warn_short=True)
            continue
        if top not in SCHEMA:
            if isinstance(value, dict):
                probs.error(src, top, None, None, "unknown table" + _did_you_mean(top))
            elif isinstance(value, list) and value and all(isinstance(e, dict) for e in value):
                for i in range(len(value)):  # [[forbiden]] entries: each at its own header
                    probs.error(src, top, i, None, "unknown table" + _did_you_mean(top, "[[{}]]"))
            else:
                probs.error(src, None, None, top, "unknown field")
            continue
        if not isinstance(value, dict):
            probs.error(src, None, None, top, "must be a table")
            continue
        for k, v in value.items():
            if k not in SCHEMA[top]:
                probs.error(src, top, None, k, "unknown field")
            else:
                _check_value(src, probs, top, None, k, SCHEMA[top][k], v)


def _did_you_mean(name: str, header: str = "[{}]") -> str:
    close = difflib.get_close_matches(name, [*SCHEMA, "forbidden"], n=1, cutoff=0.6)
    return f"; did you mean {header.format(close[0])}?" if close else ""


def _check_tree(src: _Source, probs: _Problems) -> None:
    for inc in src.includes:
        _check_tree(inc, probs)
    _check_file(src, probs)


# -- merging a file with its includes ----------------------------------------
@dataclass
class _Merged:
    tables: dict[str, dict] = field(default_factory=dict)
    forbidden: list[tuple[dict, _Source, int]] = field(default_factory=list)
    declared: set[str] = field(default_factory=set)  # rule tables a profile file itself declares


def _merge(src: _Source, into: _Merged, top: bool) -> None:
    for inc in src.includes:
        _merge(inc, into, top=False)
    declares = top or "profile" in src.data  # an included full profile declares its rule tables too
    for name, value in src.data.items():
        if name == "forbidden" and isinstance(value, list):
            into.forbidden.extend((e, src, i) for i, e in enumerate(value) if isinstance(e, dict))
        elif name in SCHEMA and isinstance(value, dict):
            if declares:
                into.declared.add(name)
            t = into.tables.setdefault(name, {})
            for k, v in value.items():
                if isinstance(v, list) and isinstance(t.get(k), list):
                    t[k] = t[k] + [x for x in v if x not in t[k]]  # included entries first
                else:
                    t[k] = v


# -- the profile ---------------------------------------------------------------
def load_profile(ref: str | Path) -> Profile:
    """Load a profile by name (zte, unicom, ...) or by path to a TOML file."""
    if not str(ref).strip():  # Path("") is the current folder
        raise PhrasebookError([f"no profile given (known: {', '.join(list_profiles())}; or give a .toml path)"])
    path = Path(ref)
    if not path.suffix and not path.exists():
        path = _named(ref)
        known = ", ".join(list_profiles())
        if not path.exists():
            raise PhrasebookError([f"no profile named {ref!r} (known: {known}; or give a .toml path)"])
        if is_include_file(path):
            raise PhrasebookError([f"{path.name} is a shared include file, not a profile (known: {known})"])
    if not path.is_file():
        raise PhrasebookError([f"{path}: no such profile file"])
    probs = _Problems()
    src = _load_tree(path, probs)
    _check_tree(src, probs)
    merged = _Merged()
    _merge(src, merged, top=True)
    profile = _compile(path, src, merged, probs)
    if probs.errors or profile is None:
        raise PhrasebookError(probs.errors, probs.warnings)
    profile.warnings = tuple(probs.warnings)
    profile.version = _version(src)
    return profile


def _version(src: _Source) -> str:
    """What the profile says, as a short hash: edited phrases or values give another (comments and
    layout do not), so a report tells which version of a profile its calls were judged with."""
    h = hashlib.sha256()

    def add(s: _Source) -> None:
        for inc in s.includes:
            add(inc)
        h.update(json.dumps(s.data, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8"))

    add(src)
    return h.hexdigest()[:12]


def check_include(path: str | Path) -> list[str]:
    """Validate a shared include file on its own (it is no profile); returns its warnings."""
    probs = _Problems()
    src = _load_tree(_by_name(path), probs)
    _check_tree(src, probs)
    if probs.errors:
        raise PhrasebookError(probs.errors, probs.warnings)
    return probs.warnings


def _by_name(ref: str | Path) -> Path:
    p = Path(ref)
    return _named(ref) if not p.suffix and not p.exists() else p


def is_include_file(path: str | Path) -> bool:
    """A phrasebook file without a [profile] table only supplies lists to profiles that include it."""
    p = _by_name(path)
    try:
        return p.is_file() and "profile" not in tomllib.loads(_text(p))
    except (PhrasebookError, tomllib.TOMLDecodeError):
        return False


def _compile(path: Path, src: _Source, m: _Merged, probs: _Problems) -> Profile | None:
    t = m.tables
    missing = [name for name in ("profile", *RULE_TABLES) if name not in m.declared]
    for name in missing:
        # A misspelt table header explains the missing table: one error, at the typo.
        typo = next((k for k in src.data if k not in SCHEMA and k not in ("include", "forbidden")
                     and difflib.get_close_matches(k, [name], n=1, cutoff=0.6)), None)
        if typo is not None:
            probs.errors = [e for e in probs.errors if not e.endswith(f"{typo}: unknown table; did you mean [{name}]?")]
            probs.error(src, typo, None, None, f"unknown table; did you mean [{name}]? ({name}: table is missing)")
        else:
            probs.error(src, name, None, None, "table is missing")
    if not m.forbidden:
        probs.error(src, "forbidden", None, None, "needs at least one [[forbidden]] entry")
    _required(src, m, probs, missing)  # keys missing from the tables that are there: same pass
    if probs.errors:
        return None

    scoring = t.get("scoring", {})

    def rule(name: str) -> RuleSettings:
        tab = t[name]
        return RuleSettings(seed=tab["seed"].strip(), severity=tab.get("severity", "major"),
                            deduction=float(tab.get("deduction", scoring.get(name, DEFAULT_DEDUCTION[name]))))

    def phrases(table: str, key: str) -> tuple[str, ...]:
        return tuple(s.strip() for s in t.get(table, {}).get(key, []))

    def matcher(name: str, items: tuple[str, ...], lenient: bool = True) -> PhraseMatcher:
        return PhraseMatcher([Pattern(p, name) for p in items], lenient=lenient)

    fd = t.get("forbidden_defaults", {})
    fdef = RuleSettings(seed=fd.get("seed", "") or "", severity=fd.get("severity", "major"),
                        deduction=float(fd.get("deduction", scoring.get("forbidden", DEFAULT_DEDUCTION["forbidden"]))))
    entries: list[ForbiddenEntry] = []
    patterns: list[Pattern] = []
    seen: dict[str, tuple[str, str]] = {}  # phrase as matched -> (as written, file)
    for e, esrc, i in m.forbidden:
        phrase = e["phrase"].strip()
        same = normalize(phrase) or phrase  # as matched: 我 没空, 我　没空 and 我没空 are one phrase
        if same in seen:
            first, where = seen[same]
            probs.error(esrc, "forbidden", i, "phrase", f"duplicate phrase {phrase!r}"
                        + (f" (the same as {first!r} when matched)" if first != phrase else "")
                        + (f" (also in {where})" if where != esrc.path.name else ""))
            continue
        seen[same] = (phrase, esrc.path.name)
        entry = ForbiddenEntry(
            phrase=phrase, seed=e["seed"].strip(),
            patterns=tuple(s.strip() for s in e.get("patterns", [])) or (phrase,),
            exclude=tuple(s.strip() for s in e.get("exclude", [])),
            severity=e.get("severity", fdef.severity),
            deduction=float(e.get("deduction", fdef.deduction)))
        entries.append(entry)
        patterns.extend(Pattern(p, phrase, exclude=entry.exclude) for p in entry.patterns)
    if probs.errors:
        return None
    prescribed = {normalize(x): f"{table}.{key}" for table, key in (("greeting", "inbound"), ("closing", "phrases"))
                  for x in phrases(table, key)}
    for e, esrc, i in m.forbidden:  # forbidden and prescribed at once: every call breaks the norm
        said = prescribed.get(normalize(e["phrase"]))
        if said:
            probs.warn(esrc, "forbidden", i, "phrase", f"{e['phrase'].strip()!r} is also in {said}: every "
                       "agent who says it as the norms ask is flagged")
    inbound = phrases("greeting", "inbound")
    company = phrases("greeting", "company")
    g = t["greeting"]
    return Profile(
        name=t["profile"]["name"].strip(),
        description=t["profile"].get("description", ""),
        path=path,
        seeds=phrases("profile", "seeds"),
        hotwords=phrases("profile", "hotwords"),
        greeting=rule("greeting"),
        greeting_deadline_s=float(g.get("deadline_s", 5.0)),
        # The company name said at pick-up is part of the greeting form ("您好，中兴通讯"),
        # so "<garbled 您好> + company" still counts.
        greeting_inbound=matcher("greeting", inbound + tuple(f + c for f in inbound[:1] for c in company)),
        greeting_outbound=matcher("greeting", phrases("greeting", "outbound") or inbound),
        greeting_rude=matcher("rude", phrases("greeting", "rude"), lenient=False),
        greeting_company=matcher("company", company),
        closing=rule("closing"),
        closing_phrases=matcher("closing", phrases("closing", "phrases")),
        closing_offer=matcher("offer", phrases("closing", "offer_help")),
        closing_window_s=float(t["closing"].get("window_s", 20.0)),
        hold=rule("hold"),
        hold_ask=matcher("hold_ask", phrases("hold", "ask")),
        hold_thanks=matcher("hold_thanks", phrases("hold", "thanks")),
        hold_max_silence_s=float(t["hold"].get("max_silence_s", 10.0)),
        hold_ask_lookback_s=float(t["hold"].get("ask_lookback_s", 15.0)),
        hold_return_window_s=float(t["hold"].get("return_window_s", 6.0)),
        hangup=rule("hangup"),
        forbidden_defaults=fdef,
        forbidden=tuple(entries),
        forbidden_matcher=PhraseMatcher(patterns, polite=Polite(
            caller_subject=phrases("polite", "caller_subject"), question=phrases("polite", "question"),
            negated=phrases("polite", "negated"),
            concessive_words=phrases("polite", "concessive_words"),
            concessive_then=phrases("polite", "concessive_then"),
            concessive_opening=phrases("polite", "concessive_opening"),
            concessive_after=phrases("polite", "concessive_after"),
            a_not_a=phrases("polite", "a_not_a"), asks_about=phrases("polite", "asks_about"),
            new_clause=phrases("polite", "new_clause"), which_part=phrases("polite", "which_part"),
            which_part_after=phrases("polite", "which_part_after"))),
        recommended=matcher("recommended", phrases("recommended", "phrases")),
        escalations=_escalations(t, phrases),
        includes=tuple(_all_includes(src)),
        service_metrics=_service_metrics(t.get("service_metrics")),
    )


def _service_metrics(tab: dict | None) -> ServiceMetricLimits | None:
    if not tab:
        return None
    rate, most = tab.get("max_chars_per_min"), tab.get("max_interruptions")
    return ServiceMetricLimits(
        settings=RuleSettings(seed=str(tab.get("seed", "")).strip(), severity=tab.get("severity", "minor"),
                              deduction=float(tab.get("deduction", 0.0))),
        max_chars_per_min=None if rate is None else float(rate), min_talk_s=float(tab.get("min_talk_s", 20.0)),
        max_interruptions=None if most is None else int(most))


def _escalations(t: dict[str, dict], phrases: Callable[[str, str], tuple[str, ...]]) -> Escalations:
    scoring = t.get("scoring", {})

    def warning(name: str) -> RuleSettings:
        return RuleSettings(seed=t.get(name, {}).get("seed", "").strip(), severity=ESCALATION, deduction=0.0)

    # Said by the caller and costly when wrong: matched strictly, and not when denied (我不是要投诉).
    denied = Polite(negated=phrases("escalation", "negated"))

    def caller_said(name: str) -> PhraseMatcher:
        return PhraseMatcher([Pattern(x, x) for x in phrases(name, "phrases")], polite=denied)

    rep, ans = t.get("escalation_repeat", {}), t.get("complaint_answer", {})
    return Escalations(
        complaint=warning("escalation_complaint"), complaint_phrases=caller_said("escalation_complaint"),
        supervisor=warning("escalation_supervisor"), supervisor_phrases=caller_said("escalation_supervisor"),
        repeat=warning("escalation_repeat"), repeat_times=int(rep.get("times", 3)),
        repeat_min_syllables=int(rep.get("min_syllables", 5)), repeat_within_s=float(rep.get("within_s", 300.0)),
        repeat_ignore=tuple(sorted({normalize(x) for x in phrases("escalation_repeat", "ignore")} - {""},
                                   key=len, reverse=True)),
        answer=RuleSettings(seed=ans.get("seed", "").strip(), severity="minor", deduction=float(
            ans.get("deduction", scoring.get("complaint_answer", DEFAULT_DEDUCTION["complaint_answer"])))),
        answer_phrases=PhraseMatcher([Pattern(x, "apology") for x in phrases("complaint_answer", "phrases")],
                                     lenient=True),
        answer_within_s=float(ans.get("within_s", 20.0)),
    )


_REQUIRED: dict[str, tuple[tuple[str, str], ...]] = {
    "profile": (("name", "str"), ("seeds", "list")),
    "greeting": (("seed", "str"), ("inbound", "list")),
    "closing": (("seed", "str"), ("phrases", "list")),
    "hold": (("seed", "str"), ("ask", "list")),
    "hangup": (("seed", "str"),),
}


def _required(src: _Source, m: _Merged, probs: _Problems, missing: list[str]) -> None:
    """Keys a profile needs, looked for in the profile and its includes together."""
    t = m.tables
    for table, keys in _REQUIRED.items():
        if table in missing:
            continue
        tab = t.get(table, {})
        for key, kind in keys:
            if key in tab:
                if kind == "list" and tab[key] == []:
                    probs.error(src, table, None, key, "must not be empty")
                continue
            probs.error(src, table, None, key, "must be a non-empty string" if kind == "str"
                        else "is missing (a list of phrases)")
    # Each [[forbidden]] entry needs its phrase and seed (types were checked per file).
    for e, esrc, i in m.forbidden:
        for key in ("phrase", "seed"):
            if key not in e:
                probs.error(esrc, "forbidden", i, key, "must be a non-empty string")


def _all_includes(src: _Source) -> list[Path]:
    out: list[Path] = []
    for inc in src.includes:
        out.extend(_all_includes(inc))
        out.append(inc.path)
    return out


def _profile_files() -> dict[str, Path]:
    """name -> file over every profile folder; the user's folder wins on a name clash."""
    found: dict[str, Path] = {}
    for base in profile_dirs():
        for p in sorted(base.glob("*.toml")) if base.is_dir() else ():
            found.setdefault(p.stem, p)
    return found


def include_files() -> list[str]:
    """Shared include files (no [profile] table), by name: the user's and the built-in ones."""
    return sorted(n for n, p in _profile_files().items() if is_include_file(p))


def list_profiles() -> list[str]:
    """Profiles known by name: the user's (~/.config/call-monitor/profiles) and the built-in ones."""
    return sorted(n for n, p in _profile_files().items() if not is_include_file(p))
