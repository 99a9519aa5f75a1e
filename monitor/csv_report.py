"""The report as two spreadsheets: one row per call, one row per violation.

Both are UTF-8 with a byte-order mark and CRLF rows, so Excel and LibreOffice open the
Chinese text without an import dialog. They are written from report rows (the JSONL
objects), so `score`, `rescore` and `report` write the same files.
"""
from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from monitor.events import REVIEW_RULES
from monitor.labels import evidence, rule_name, severity_name
from monitor.private import open_private

META_FIELDS = ("date", "agent", "team", "direction")
METRIC_FIELDS = ("agent_talk_share", "silence_share", "longest_silence_s", "overtalk_share",
                 "agent_interruptions", "caller_interruptions", "agent_chars_per_min")
CALL_FIELDS = ("call", *META_FIELDS, "profile", "profile_version", "duration", "score", "violations", "to_review", "deductions", "rules",
               *METRIC_FIELDS, "not_judged", "truncated", "warnings", "error")
VIOLATION_FIELDS = ("call", *META_FIELDS, "profile", "rule", "rule_zh", "severity", "severity_zh", "deduction", "start", "end",
                    "channel", "role_confidence", "phrase", "text", "evidence", "evidence_zh", "seed")


def extra_meta_fields(rows: Sequence[dict]) -> list[str]:
    """Metadata columns beyond the standard ones, in order of first appearance."""
    seen: list[str] = []
    for r in rows:
        for k in r.get("meta", {}):
            if k not in META_FIELDS and k != "profile" and k not in seen:
                seen.append(k)
    return seen


def _meta(row: dict, fields: Sequence[str]) -> dict:
    meta = row.get("meta", {})
    return {k: meta.get(k, "") for k in fields}


def call_row(row: dict, extra: Sequence[str]) -> dict:
    violations = row.get("violations", [])
    metrics = row.get("metrics", {})
    return {
        "call": row["call"], **_meta(row, META_FIELDS), "profile": row.get("profile", ""),
        "profile_version": row.get("profile_version", ""),
        "duration": row.get("duration", ""), "score": row.get("score", ""),
        "violations": sum(v["rule"] not in REVIEW_RULES for v in violations),
        "to_review": sum(v["rule"] in REVIEW_RULES for v in violations),
        "deductions": round(sum(v.get("deduction", 0.0) for v in violations), 2),
        "rules": " ".join(sorted({v["rule"] for v in violations})),
        **{k: metrics.get(k, "") for k in METRIC_FIELDS},
        "not_judged": " ".join(row.get("not_judged", [])),
        "truncated": "yes" if row.get("truncated") else "",
        "warnings": "; ".join(row.get("warnings", [])),
        "error": row.get("error", ""),
        **_meta(row, extra),
    }


def violation_rows(row: dict, extra: Sequence[str]) -> list[dict]:
    base = {"call": row["call"], **_meta(row, META_FIELDS), "profile": row.get("profile", ""), **_meta(row, extra)}
    return [{**base, "rule": v["rule"], "rule_zh": rule_name(v["rule"]), "severity": v.get("severity", ""),
             "severity_zh": severity_name(v.get("severity", "")),
             "deduction": v.get("deduction", 0.0), "start": v["start"], "end": v["end"], "channel": v["channel"],
             "role_confidence": v.get("role_confidence", ""), "phrase": v.get("phrase", ""),
             "text": v.get("text", ""), "evidence": v.get("evidence", ""),
             "evidence_zh": evidence(v.get("evidence", "")), "seed": v.get("seed", "")}
            for v in row.get("violations", [])]


# A text cell starting so is run as a formula by Excel and LibreOffice: a file name or a --meta
# value "=HYPERLINK(…)" would act in the QA lead's spreadsheet. Such text gets a leading '.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> object:
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_START) else value


def _write(path: Path, fields: Sequence[str], rows: list[dict]) -> None:
    with open_private(path, encoding="utf-8-sig", newline="", errors="backslashreplace") as f:  # BOM: Excel reads UTF-8 Chinese
        w = csv.DictWriter(f, fieldnames=list(fields))  # rows end in CRLF (the csv module's default)
        w.writeheader()
        w.writerows({k: _cell(v) for k, v in row.items()} for row in rows)


def csv_paths(path: Path) -> tuple[Path, Path]:
    """`--csv out/report.csv` -> out/report-calls.csv and out/report-violations.csv."""
    stem = path.name[:-4] if path.name.lower().endswith(".csv") else path.name
    return path.with_name(f"{stem}-calls.csv"), path.with_name(f"{stem}-violations.csv")


def write_csvs(path: Path, rows: Sequence[dict]) -> tuple[Path, Path]:
    """Write the calls and the violations CSV beside `path`; return their paths."""
    calls, violations = csv_paths(path)
    extra = extra_meta_fields(rows)
    _write(calls, [*CALL_FIELDS, *extra], [call_row(r, extra) for r in rows])
    _write(violations, [*VIOLATION_FIELDS[:5], *extra, *VIOLATION_FIELDS[5:]],
           [v for r in rows if "error" not in r for v in violation_rows(r, extra)])
    return calls, violations
