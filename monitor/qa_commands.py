"""`monitor rescore` and `monitor report`, and the metadata options `monitor score` shares with them."""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from monitor.meta import MetaError, MetaSource, NamePattern, read_meta_csv
from monitor.phrasebook import Profile

RESCORE_EPILOG = """\
examples:
  monitor rescore out/report.jsonl --profile my-zte.toml --out out/rescored.jsonl
  monitor rescore out/report.jsonl --profile-map profiles.json --out new.jsonl --csv new.csv

Applies a (changed) phrasebook to the words already recognised: no audio, no speech
recognition. The result equals a full `monitor score` of the same calls with that profile.
Without --profile or --profile-map each call keeps the profile it was scored with.

exit status: 0 all calls re-scored, 1 some lines could not be (reported; the others are
written), 2 nothing could be re-scored.
"""

REPORT_EPILOG = """\
examples:
  monitor report out/report.jsonl --html out/report.html
  monitor report out/report.jsonl --csv out/week.csv --audio-dir /recordings

The HTML page is one self-contained file (charts, script and styles embedded; works
offline). Its audio players link to the recordings relative to the page (--audio-dir
to say where they are, default: the paths the report was scored from).
"""


def add_qa_commands(sub) -> None:
    from monitor.cli import add_meta_options

    p = sub.add_parser("rescore", help="re-judge a report with a changed phrasebook (no audio, no ASR)",
                       description="Re-score a JSONL report from its saved transcripts.",
                       epilog=RESCORE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("report", metavar="REPORT.jsonl", help="a report written by monitor score (or rescore)")
    p.add_argument("--profile", help="profile name or .toml file for every call (default: each call's own)")
    p.add_argument("--profile-map", metavar="FILE", help="JSON object {\"call name\": \"profile\"}; calls not "
                   "in it use --profile (or their own)")
    p.add_argument("--out", metavar="FILE", help="write the re-scored report (JSONL) here")
    p.add_argument("--csv", metavar="FILE", help="also write FILE-calls.csv and FILE-violations.csv")
    p.add_argument("--transcript", action="store_true", help="print each call's transcript too")
    p.add_argument("--quiet", "-q", action="store_true", help="print only the summary")
    add_meta_options(p)
    p.set_defaults(func=cmd_rescore)

    r = sub.add_parser("report", help="turn a JSONL report into an HTML page and CSV files",
                       description="Summarise a JSONL report for people: an HTML page with charts, rankings "
                       "and each call's transcript and audio, and/or the two CSV files.",
                       epilog=REPORT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("report", metavar="REPORT.jsonl")
    r.add_argument("--html", metavar="FILE", help="write the self-contained HTML page here")
    r.add_argument("--csv", metavar="FILE", help="write FILE-calls.csv and FILE-violations.csv")
    r.add_argument("--audio-dir", metavar="DIR", help="where the recordings are (default: as scored)")
    r.add_argument("--title", default="通话质检报告", help="the page title")
    r.set_defaults(func=cmd_report)


# -- metadata, shared with `monitor score` ----------------------------------------
def meta_source_of(args) -> MetaSource:
    from monitor.cli import UsageError

    try:
        table = read_meta_csv(Path(args.meta)) if getattr(args, "meta", None) else None
        pattern = NamePattern.parse(args.name_pattern) if getattr(args, "name_pattern", None) else None
    except MetaError as exc:
        raise UsageError(str(exc)) from None
    return MetaSource(table, pattern)


def meta_profiles(source: MetaSource) -> set[str]:
    """The profiles a metadata CSV names (loaded up front, so a bad one stops before scoring)."""
    if source.table is None:
        return set()
    return {row["profile"] for row in source.table.rows.values() if "profile" in row}


def call_meta(source: MetaSource, path: Path, progress=None, call: str | None = None) -> dict[str, str]:
    if not source:
        return {}
    meta, warning = source.for_call(path, call)
    if warning:
        line = f"monitor: warning: {warning}"
        if hasattr(progress, "write"):
            progress.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr)
    return meta


def with_direction(options, meta: dict[str, str]):
    """Score options with the call's own direction (inbound/outbound) when its metadata says it."""
    from monitor.rules import RuleOptions

    if "direction" not in meta:
        return options
    return dataclasses.replace(options, rules=RuleOptions(direction=meta["direction"], rules=options.rules.rules))


# -- rescore -----------------------------------------------------------------------
def cmd_rescore(args) -> int:
    from monitor.audio.files import call_key
    from monitor.cli import UsageError, _load_profile, _profile_map
    from monitor.report import JsonlWriter, print_call, print_summary, write_csv
    from monitor.rescore import (
        ReportError,
        hotword_warning,
        levels_warning,
        read_report,
        rescore_call,
        speakers_warning,
        version_warning,
    )

    t0 = time.perf_counter()
    mapping = _profile_map(args.profile_map)
    meta_source = meta_source_of(args)
    profiles: dict[str, Profile] = {}

    def profile_for(ref: str) -> Profile:
        if ref not in profiles:
            profiles[ref] = _load_profile(ref)
        return profiles[ref]

    if args.profile:
        profile_for(args.profile)
    for ref in mapping.values():
        profile_for(ref)
    try:
        lines = list(read_report(Path(args.report)))
    except ReportError as exc:
        raise UsageError(str(exc)) from None
    if not lines:
        raise UsageError(f"{args.report}: the report has no calls")

    def ref_of(line) -> str:
        return mapping.get(call_key(line.call)) or args.profile or str(line.data.get("profile", ""))

    # every call's profile before a line is written: a name that cannot be found refuses the run
    # whole, not half-way through with the output (perhaps the report itself) half written
    missing: dict[str, list[str]] = {}
    for line in lines:
        if not line.failed:
            try:
                profile_for(ref_of(line))
            except UsageError as exc:
                missing.setdefault(str(exc), []).append(line.call)
    if missing:
        why, calls = next(iter(missing.items()))
        more = f" (and {len(missing) - 1} other profile(s))" if len(missing) > 1 else ""
        raise UsageError(f"{why}{more}: needed by {len(calls)} call(s) of {args.report}, e.g. {calls[0]}; "
                         "name it with --profile FILE or --profile-map; nothing was written")
    try:
        writer = JsonlWriter(Path(args.out), replace=True) if args.out else None
    except OSError as exc:
        raise UsageError(f"{args.out}: cannot write the report ({exc.strerror or exc})") from None
    reports, failed = [], []
    hotword_warnings: list[str] = []
    version_warnings: list[str] = []
    speaker_warnings: list[str] = []
    level_warnings: list[str] = []
    try:
        for line in lines:
            if line.failed:  # failed to score: nothing to re-judge, passed on as it was
                failed.append((line.call, f"{line.call}: not scored ({line.data['error']})"))
                if writer:
                    writer.write_row(line.data)
                continue
            profile = profile_for(ref_of(line))
            warning = hotword_warning(line, profile)
            if warning:
                hotword_warnings.append(warning)
            warning = speakers_warning(line, profile)
            if warning:
                speaker_warnings.append(warning)
            warning = levels_warning(line)
            if warning:
                level_warnings.append(warning)
            if not args.profile and call_key(line.call) not in mapping:  # found by the name it was scored with
                warning = version_warning(line, profile)
                if warning:
                    version_warnings.append(warning)
            try:
                report = rescore_call(line, profile)
            except ReportError as exc:
                print(f"monitor: error: {args.report}: {exc}", file=sys.stderr)
                failed.append((line.call, str(exc)))
                continue
            if meta_source:
                report.meta = {**report.meta, **call_meta(meta_source, Path(line.call), call=line.call)}
            reports.append(report)
            if writer:
                writer.write(report)
            if not args.quiet:
                print_call(report, sys.stdout, args.transcript)
    except BaseException:
        if writer:
            writer.discard()
        raise
    if writer:
        writer.close()
    for said in (hotword_warnings, version_warnings, speaker_warnings, level_warnings):
        if said:
            more = f" (and {len(said) - 1} more call(s))" if len(said) > 1 else ""
            print(f"monitor: warning: {said[0]}{more}", file=sys.stderr)
    written = [args.out] if args.out else []
    if args.csv:
        try:
            written += [str(p) for p in write_csv(Path(args.csv), reports)]
        except OSError as exc:
            raise UsageError(f"{args.csv}: cannot write the CSV report ({exc.strerror or exc})") from None
    print_summary(reports, failed, sys.stdout)
    print(f"re-scored {len(reports)} call(s) in {time.perf_counter() - t0:.2f} s without audio")
    if written:
        print(f"report: {', '.join(written)}")
    if not reports:
        return 2
    return 1 if failed else 0


# -- report ------------------------------------------------------------------------
def cmd_report(args) -> int:
    from monitor.cli import UsageError
    from monitor.csv_report import write_csvs
    from monitor.rescore import ReportError, read_report

    if not args.html and not args.csv:
        raise UsageError("say what to write: --html FILE and/or --csv FILE")
    try:
        rows = [line.data for line in read_report(Path(args.report))]
    except ReportError as exc:
        raise UsageError(str(exc)) from None
    if not rows:
        raise UsageError(f"{args.report}: the report has no calls")
    written = []
    try:
        if args.csv:
            written += [str(p) for p in write_csvs(Path(args.csv), rows)]
        if args.html:
            from monitor.html_report import HtmlReportError, write_html

            try:
                write_html(Path(args.html), rows, title=args.title,
                           audio_dir=Path(args.audio_dir) if args.audio_dir else None)
            except HtmlReportError as exc:
                raise UsageError(str(exc)) from None
            written.append(args.html)
    except OSError as exc:
        raise UsageError(f"cannot write the report ({exc.strerror or exc}: {exc.filename})") from None
    scored = [r for r in rows if "error" not in r]
    print(f"{len(scored)} call(s)" + (f", {len(rows) - len(scored)} failed" if len(rows) > len(scored) else "")
          + f"; report: {', '.join(written)}")
    return 0
