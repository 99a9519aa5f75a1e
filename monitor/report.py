"""Writing batch results: JSONL (one call per line), CSV, and a terminal summary."""
from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from monitor.csv_report import write_csvs
from monitor.events import REVIEW_RULES
from monitor.labels import confidence_fraction, evidence, rule_name
from monitor.pipeline import CallReport
from monitor.private import open_private
from monitor.rules.engine import END_RULES


class JsonlWriter:
    """Appends one JSON object per call and flushes it, so a crash loses nothing scored.

    `replace`: written beside `path` and put in its place only by `close()`, so a run that
    stops early leaves an existing file (the report being re-scored, perhaps) as it was."""

    def __init__(self, path: Path, replace: bool = False) -> None:
        self._path = path
        self._temp = path.with_name(f".{path.name}.{os.getpid()}.part") if replace else None
        # a file name the system could not decode is written as \udcXX escapes, which read back as its bytes
        self._f = open_private(self._temp or path, encoding="utf-8", errors="backslashreplace")
        if self._temp is not None and path.exists():
            shutil.copymode(path, self._temp)

    def write(self, report: CallReport) -> None:
        self._f.write(json.dumps(report.to_dict(), ensure_ascii=False) + "\n")
        self._f.flush()

    def write_row(self, row: dict) -> None:
        self._f.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._f.flush()

    def write_error(self, call: str, error: str) -> None:
        self._f.write(json.dumps({"call": call, "error": error, "violations": []}, ensure_ascii=False) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()
        if self._temp is not None:
            os.replace(self._temp, self._path)

    def discard(self) -> None:
        """Stop without writing: an existing file is left as it was (with `replace`)."""
        self._f.close()
        if self._temp is not None:
            self._temp.unlink(missing_ok=True)


def write_csv(path: Path, reports: Iterable[CallReport]) -> tuple[Path, Path]:
    """The calls CSV (one row per call) and the violations CSV beside `path` (see monitor.csv_report)."""
    return write_csvs(path, [r.to_dict() for r in reports])


def _clock(t: float) -> str:
    return f"{int(t // 60):d}:{t % 60:04.1f}"


def print_call(r: CallReport, out: IO[str], show_transcript: bool = False) -> None:
    out.write(f"\n{r.call}  profile {r.profile}  {_clock(r.duration)}  score {r.score:g}\n")
    if not r.violations:
        out.write("  no violations\n")
    for v in r.violations:
        # The wording the console and the reports use (monitor/labels.py), with the rule's key.
        said = f"  「{v.text}」" if v.text else ""
        out.write(f"  {_clock(v.start):>7}  {v.rule:<13} {rule_name(v.rule)}：{evidence(v.evidence)}{said}\n")
    if r.recommended_used:
        out.write(f"  service phrases used: {'、'.join(r.recommended_used)}\n")
    if r.truncated:
        out.write(f"  truncated: {r.note.split(': ', 1)[-1] if r.note else 'the recording ends early'}\n")
    if r.not_judged:
        why = "recording truncated" if r.truncated and set(r.not_judged) <= set(END_RULES) else \
            "no caller channel" if not r.truncated else "no caller channel, or recording truncated"
        out.write(f"  not judged ({why}): {', '.join(r.not_judged)}\n")
    if show_transcript:
        for t in r.transcript:
            if t.speech:
                # A mono recording's sides are decided: how sure, so a reader weighs the line.
                sure = f"  ({t.role} at {confidence_fraction(t.role_confidence)})" if t.role_confidence is not None else ""
                out.write(f"    {_clock(t.start):>7} {t.role:<6} {t.text}{sure}\n")


def print_summary(reports: list[CallReport], failed: list[tuple[str, str]], out: IO[str]) -> None:
    by_rule = Counter(v.rule for r in reports for v in r.violations)
    n = len(reports)
    mean = sum(r.score for r in reports) / n if n else 0.0
    out.write(f"\nscored {n} call(s)")
    if failed:
        out.write(f", {len(failed)} failed")
    out.write(f"; mean score {mean:.1f}\n")
    for rule, count in sorted(by_rule.items(), key=lambda x: (-x[1], x[0])):
        calls = sum(1 for r in reports if any(v.rule == rule for v in r.violations))
        kind = "to review" if rule in REVIEW_RULES else "violation(s)"
        out.write(f"  {rule:<13} {count:3d} {kind} in {calls} call(s)  {rule_name(rule)}\n")
    for _, err in failed:
        out.write(f"  FAILED {err}\n")
