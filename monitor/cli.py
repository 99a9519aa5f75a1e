"""`monitor`: the one command-line entry point.

Errors users can cause (bad files, bad profiles, bad options) print one line
`monitor: error: ...` and exit non-zero; they never show a traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from monitor import __version__, logs
from monitor.argtypes import channel, positive_int
from monitor.logs import level_type

DESCRIPTION = """\
Local compliance monitor for Mandarin service calls. It cuts each side of a call into
utterances (webrtcvad), transcribes them on this machine (faster-whisper, Whisper base by
default), and checks them against the service norms of a phrasebook profile: greeting,
forbidden phrases (服务忌语), goodbye, hold etiquette, and letting the caller hang up first.
"""

SCORE_EPILOG = """\
examples:
  monitor score calls/ --profile zte --out report.jsonl --csv report.csv
  monitor score a.wav b.flac --profile my-norms.toml --transcript
  monitor score calls/ --profile-map profiles.json --out report.jsonl

Stereo recordings: channel 0 is the agent, 1 the caller (change with --agent-channel and
--caller-channel). A mono file holds both sides: each utterance is given to the agent or
the caller with a confidence (--mono-roles auto, the default); --mono-roles agent scores
every word as the agent's (greeting, forbidden, closing only) and lists the rules it could
not judge. A CALL.events.json file beside
CALL.wav ([{"t": 31.2, "type": "hangup", "by": "caller"}]) decides who hung up first.

exit status: 0 all calls scored, 1 some calls failed (the others are still in the
report), 2 nothing could be scored (bad options, profile or inputs).
"""


class UsageError(Exception):
    """A problem with what the user asked for; one line."""


def add_asr_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("recogniser")
    g.add_argument("--model", metavar="DIR", help="a CTranslate2 Whisper model directory "
                   "(default: the embedded Whisper base, joined once into the cache)")
    g.add_argument("--beam", type=positive_int, default=3, help="beam size (default 3)")
    g.add_argument("--threads", type=positive_int, default=max(1, min(4, os.cpu_count() or 2)),
                   help="utterances decoded at once, one CPU thread each; `score` scores this many calls "
                   "side by side (default: the CPUs, up to 4)")


def add_meta_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("call metadata (carried into every report row)")
    g.add_argument("--meta", metavar="CSV", help="calls.csv with a 'file' column and any of agent, team, date, "
                   "direction, profile and extra columns")
    g.add_argument("--name-pattern", metavar="PATTERN", help="read fields from file names, e.g. "
                   "'{date}_{agent}_{callid}.wav' (the --meta CSV wins where both say something)")


def _score_parser(sub) -> None:
    p = sub.add_parser("score", help="score recorded calls into a report",
                       description="Score recorded calls: violations, score and transcript per call.",
                       epilog=SCORE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", metavar="PATH", help="audio files or folders (folders expand to "
                   "their WAV/FLAC/MP3/OGG files)")
    p.add_argument("--profile", default="zte", help="phrasebook profile name (zte, unicom, jingyi, "
                   "broadband) or a .toml file (default zte)")
    p.add_argument("--profile-map", metavar="FILE", help="JSON object {\"call name\": \"profile\"} for a "
                   "folder of calls under different norms (the file name without its extension; where "
                   "two files in subfolders share a name, their path from the shared folder: day1/0001); "
                   "calls not in it use --profile")
    p.add_argument("--out", metavar="FILE", help="write one JSON object per call (JSONL) here")
    p.add_argument("--csv", metavar="FILE", help="also write FILE-calls.csv (one row per call) and "
                   "FILE-violations.csv (one row per violation), UTF-8 with BOM for Excel")
    add_meta_options(p)
    p.add_argument("--direction", choices=("inbound", "outbound"), default="inbound",
                   help="who placed the calls (decides the expected greeting; default inbound)")
    p.add_argument("--agent-channel", type=channel, default=None, help="channel of the agent (default 0)")
    p.add_argument("--caller-channel", type=channel, default=None, help="channel of the caller (default 1)")
    p.add_argument("--mono-roles", choices=("auto", "agent"), default="auto",
                   help="mono files: auto tells the agent from the caller in the mix (default); "
                        "agent hears every word as the agent's")
    p.add_argument("--transcript", action="store_true", help="print each call's transcript too")
    p.add_argument("--quiet", "-q", action="store_true", help="print only the summary")
    p.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    add_asr_options(p)
    from monitor.cluster import add_cluster_options

    add_cluster_options(p)
    p.set_defaults(func=cmd_score)


def _phrasebook_parser(sub) -> None:
    p = sub.add_parser("phrasebook", help="check, list or show phrasebook profiles",
                       description="Phrasebook profiles are TOML files of the service norms "
                       "(see phrasebook/*.toml). Every entry names its seed document and section.")
    psub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = psub.add_parser("check", help="validate profile files; errors name file, line and field")
    c.add_argument("files", nargs="+", metavar="FILE", help="profile .toml files or names")
    c.set_defaults(func=cmd_phrasebook_check)
    lst = psub.add_parser("list", help="list the built-in profiles")
    lst.set_defaults(func=cmd_phrasebook_list)
    show = psub.add_parser("show", help="show what a profile checks, with its seed sections")
    show.add_argument("profile")
    show.set_defaults(func=cmd_phrasebook_show)


def _model_parser(sub) -> None:
    p = sub.add_parser("model", help="prepare and verify the speech model",
                       description="Join the embedded Whisper base model into the cache once and "
                       "verify it (nothing is downloaded), or check a model directory.")
    p.add_argument("--model", metavar="DIR", help="check this CTranslate2 Whisper model instead")
    p.set_defaults(func=cmd_model)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="monitor", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"monitor {__version__}")
    parser.add_argument("--verbose", "-v", action="store_true", help="log details to stderr (--log-level info)")
    parser.add_argument("--log-level", type=level_type, metavar="LEVEL",
                        help="debug, info, warning (default; the hub: info) or error; also after any command")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _score_parser(sub)
    from monitor.qa_commands import add_qa_commands

    add_qa_commands(sub)
    _phrasebook_parser(sub)
    _model_parser(sub)
    from monitor.live.cli import add_live_commands

    add_live_commands(sub)
    try:
        from monitor.hub.cli import add_hub_commands
    except ImportError:  # the hub's optional dependencies are missing
        pass
    else:
        add_hub_commands(sub)
    _add_log_level(sub)
    return parser


def _add_log_level(sub: argparse._SubParsersAction) -> None:
    """`--log-level` after every command too (monitor score ... --log-level debug)."""
    for p in sub.choices.values():
        if "--log-level" not in p._option_string_actions:
            p.add_argument("--log-level", type=level_type, default=argparse.SUPPRESS, metavar="LEVEL",
                           help="debug, info, warning or error (log lines go to stderr with timestamps)")
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                _add_log_level(action)


# -- commands -------------------------------------------------------------------
def _load_profile(ref: str):
    from monitor.phrasebook import PhrasebookError, load_profile

    try:
        profile = load_profile(ref)
    except PhrasebookError as exc:
        raise UsageError(str(exc)) from None
    for w in profile.warnings:  # a one-character phrase: said where the profile is used, not only by `check`
        print(f"monitor: warning: {w}", file=sys.stderr)
    return profile


def _profile_map(path: str | None) -> dict[str, str]:
    from monitor.audio.files import call_key

    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the profile map ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise UsageError(f"{path}: the profile map must be a JSON object of call name -> profile name")
    # by the call's name as given, and by its file name alone (a map written with folder paths)
    return {**{Path(k).stem: v for k, v in data.items()}, **{call_key(k): v for k, v in data.items()}}


def _transcriber(args, profile):
    """The recogniser: `--threads` decodes may run at once, one thread each. Every command decodes
    on one thread per utterance, so `replay`, `live` and `score` do the same arithmetic (another
    thread count can change a word now and then) and hear the same words."""
    from monitor.asr.model_files import ModelError
    from monitor.asr.whisper import AsrOptions, WhisperTranscriber, profile_words

    try:
        return WhisperTranscriber(AsrOptions(model_dir=args.model, beam_size=args.beam,
                                             cpu_threads=1, streams=args.threads, **profile_words(profile)))
    except ModelError as exc:
        raise UsageError(str(exc)) from None
    except RuntimeError as exc:  # CTranslate2 refuses a damaged model directory
        raise UsageError(f"cannot load the speech model: {exc}") from None


def channel_roles(args):
    """The channels of a recording the user named (--agent-channel, --caller-channel), else 0 and 1."""
    from monitor.audio.files import ChannelRoles

    agent = 0 if args.agent_channel is None else args.agent_channel
    caller = 1 if args.caller_channel is None else args.caller_channel
    if agent == caller:
        raise UsageError("--agent-channel and --caller-channel must differ")
    return ChannelRoles(agent, caller, named=args.agent_channel is not None or args.caller_channel is not None)


def cmd_score(args) -> int:
    from monitor.audio.files import call_key, call_names, expand_inputs, readable
    from monitor.pipeline import ScoreOptions
    from monitor.qa_commands import call_meta, meta_profiles, meta_source_of, with_direction
    from monitor.report import JsonlWriter, print_call, print_summary, write_csv
    from monitor.rules import RuleOptions

    roles = channel_roles(args)
    default_profile = _load_profile(args.profile)
    mapping = _profile_map(args.profile_map)
    meta_source = meta_source_of(args)
    profiles = {default_profile.name: default_profile}
    for name in sorted(set(mapping.values()) | meta_profiles(meta_source)):
        if name not in profiles:
            profiles[name] = _load_profile(name)
    files, input_errors = expand_inputs(args.paths)
    for err in input_errors:
        print(f"monitor: error: {err}", file=sys.stderr)
    if not files:
        raise UsageError("no audio files to score")
    names = call_names(files)
    options = ScoreOptions(roles=roles,
                           rules=RuleOptions(direction=args.direction), mono_roles=args.mono_roles)
    try:
        writer = JsonlWriter(Path(args.out)) if args.out else None
    except OSError as exc:
        raise UsageError(f"{args.out}: cannot write the report ({exc.strerror or exc})") from None
    reports, failed = [], [(e, e) for e in input_errors]
    progress = _progress(files, args)
    plans: dict = {}
    unmapped: list[str] = []  # calls a --profile-map was given for but does not name (a typo?)

    def plan(path):  # a call's metadata, profile and options, read once
        if path not in plans:
            meta = call_meta(meta_source, path, progress, names[path])
            key = call_key(names[path])
            profile = profiles.get(mapping.get(key, meta.get("profile", "")), default_profile)
            if mapping and key not in mapping and "profile" not in meta:
                unmapped.append(names[path])
            plans[path] = (meta, profile, with_direction(options, meta))
        return plans[path]

    # --ray: scored on the cluster; else side by side here; either way given back in input order
    pool = _cluster_pool(args, files, plan) or _local_pool(args, files, plan)
    try:
        for path in progress:
            meta = plan(path)[0]
            try:
                report = pool.result(path)
                report.meta, report.call = meta, names[path]
            except Exception as exc:  # one call's failure never loses the others
                msg = readable(_why_not_scored(path, exc))
                _note(progress, f"monitor: error: {msg}")
                failed.append((names[path], msg))
                if writer:
                    writer.write_error(names[path], msg)
                continue
            if report.truncated:  # scored, but the hang-up is not judged from it
                _note(progress, f"monitor: warning: {report.note or path.name + ': truncated'}")
            for warning in report.warnings:
                _note(progress, f"monitor: warning: {readable(names[path] + ': ' + warning)}")
            reports.append(report)
            if writer:
                writer.write(report)
            if not args.quiet:
                _note(progress, None, report, args.transcript, print_call)
    finally:
        if writer:
            writer.close()
        pool.close()
    if unmapped:
        shown = ", ".join(unmapped[:5]) + (f" and {len(unmapped) - 5} more" if len(unmapped) > 5 else "")
        print(f"monitor: warning: {len(unmapped)} call(s) not in {args.profile_map} were scored with "
              f"--profile {default_profile.name}: {shown}", file=sys.stderr)
    written = [args.out] if args.out else []
    if args.csv:
        try:
            written += [str(p) for p in write_csv(Path(args.csv), reports)]
        except OSError as exc:
            print(f"monitor: error: {args.csv}: cannot write the CSV report ({exc.strerror or exc})",
                  file=sys.stderr)
            failed.append((args.csv, f"{args.csv}: CSV report not written"))
    print_summary(reports, failed, sys.stdout)
    if written:
        print(f"report: {', '.join(written)}")
    if not reports:
        return 2
    return 1 if failed else 0


def _cluster_pool(args, files, plan):
    if not getattr(args, "ray", None):
        return None
    from monitor.asr.whisper import AsrOptions, profile_words
    from monitor.cluster import ClusterError, Job, RayPool

    jobs = [Job(p, *plan(p)[1:]) for p in files]
    asr = AsrOptions(model_dir=args.model, beam_size=args.beam, **profile_words(jobs[0].profile))
    try:
        return RayPool(args.ray, jobs, asr, args.ray_workers, args.ray_cpus)
    except ClusterError as exc:
        raise UsageError(str(exc)) from None


def _local_pool(args, files, plan):
    """`--threads` calls scored side by side, one recogniser thread each (see AsrOptions.streams)."""
    from monitor.local_pool import LocalPool
    from monitor.pipeline import score_call

    transcriber = _transcriber(args, plan(files[0])[1])  # one model; profiles change hot words
    planned = {p: plan(p) for p in files}

    def score(path):
        _, profile, options = planned[path]
        return score_call(path, profile, transcriber.for_profile(profile), options)

    return LocalPool(files, score, args.threads)


def _progress(files, args):
    if args.no_progress or not sys.stderr.isatty() or len(files) < 2:
        return files
    from tqdm import tqdm

    return tqdm(files, unit="call", file=sys.stderr, dynamic_ncols=True)


def _note(progress, line, report=None, transcript=False, printer=None):
    """Print without tearing the progress bar."""
    import io

    buf = io.StringIO()
    if report is not None:
        printer(report, buf, transcript)
    else:
        buf.write(line + "\n")
    text = buf.getvalue().rstrip("\n")
    if hasattr(progress, "write"):
        progress.write(text, file=sys.stdout if report is not None else sys.stderr)
    else:
        print(text, file=sys.stdout if report is not None else sys.stderr)


def cmd_phrasebook_check(args) -> int:
    from monitor.phrasebook import PhrasebookError, check_include, is_include_file, load_profile

    bad = 0
    for f in args.files:
        try:
            if is_include_file(f):
                warnings = check_include(f)
                for w in warnings:
                    print(f"monitor: warning: {w}", file=sys.stderr)
                name = Path(f).name if Path(f).suffix else f"{f}.toml"
                print(f"{name}: valid shared include file (not a profile: it has no [profile] table; "
                      f"profiles merge its lists with include = [\"{name}\"])")
                continue
            p = load_profile(f)
        except PhrasebookError as exc:
            for w in exc.warnings:
                print(f"monitor: warning: {w}", file=sys.stderr)
            for e in exc.errors:  # every error of the file, not only the first
                print(f"monitor: error: {e}", file=sys.stderr)
            bad += 1
            continue
        for w in p.warnings:
            print(f"monitor: warning: {w}", file=sys.stderr)
        inc = f", includes {', '.join(i.name for i in p.includes)}" if p.includes else ""
        n = len(p.forbidden)
        print(f"{p.path.name}: ok (profile {p.name}: {n} forbidden phrase{'' if n == 1 else 's'}, "
              f"greeting deadline {p.greeting_deadline_s:g} s, hold after {p.hold_max_silence_s:g} s{inc})")
    return 1 if bad else 0


def cmd_phrasebook_list(args) -> int:
    from monitor.phrasebook import PhrasebookError, list_profiles, load_profile

    bad = 0
    for name in list_profiles():
        try:
            p = load_profile(name)
        except PhrasebookError as exc:  # a draft with a mistake in the folder: listed as such, the rest still are
            print(f"{name:<10} (cannot be used: {exc.errors[0] if exc.errors else exc}"
                  f"{f' and {len(exc.errors) - 1} more' if len(exc.errors) > 1 else ''}; "
                  f"see monitor phrasebook check {name})")
            bad += 1
            continue
        print(f"{name:<10} {p.description}  (seeds: {', '.join(p.seeds)})")
    return 1 if bad else 0


def cmd_phrasebook_show(args) -> int:
    p = _load_profile(args.profile)

    def texts(m) -> str:
        return " / ".join(x.text for x in m.patterns)

    def cost(s) -> str:
        return f"{s.severity}, -{s.deduction:g}"

    print(f"profile {p.name}: {p.description}")
    if p.includes:
        print(f"  includes: {', '.join(str(i) for i in p.includes)}")
    print(f"  greeting within {p.greeting_deadline_s:g} s ({cost(p.greeting)}): {texts(p.greeting_inbound)}"
          f"  [{p.greeting.seed}]")
    if p.greeting_company:
        print(f"  greeting names the company (minor, -{p.greeting.deduction / 2:g}): {texts(p.greeting_company)}")
    print(f"  closing ({cost(p.closing)}): {texts(p.closing_phrases)}  [{p.closing.seed}]")
    print(f"  hold over {p.hold_max_silence_s:g} s ({cost(p.hold)}): ask {texts(p.hold_ask)}"
          f"  [{p.hold.seed}]")
    if p.hold_thanks:
        print(f"  hold return within {p.hold_return_window_s:g} s (minor, -{p.hold.deduction / 2:g}): "
              f"{texts(p.hold_thanks)}")
    print(f"  hangup: the caller hangs up first ({cost(p.hangup)})  [{p.hangup.seed}]")
    e = p.escalations
    print("  escalations (the caller's words; warn the supervisor, no deduction):")
    print(f"    complaint: {texts(e.complaint_phrases)}  [{e.complaint.seed}]")
    print(f"    supervisor: {texts(e.supervisor_phrases)}  [{e.supervisor.seed}]")
    print(f"    repeat: the same statement in {e.repeat_times} utterances within {e.repeat_within_s:g} s  "
          f"[{e.repeat.seed}]")
    if e.answer_phrases:
        print(f"  complaint answered within {e.answer_within_s:g} s (minor, -{e.answer.deduction / 2:g}): "
              f"{texts(e.answer_phrases)}  [{e.answer.seed}]")
    print("  forbidden:")
    for e in p.forbidden:
        print(f"    {e.phrase:<24} -{e.deduction:g}  [{e.seed}]")
    return 0


def cmd_model(args) -> int:
    from monitor.asr.model_files import ModelError, resolve_model_dir

    try:
        path = resolve_model_dir(args.model)
    except ModelError as exc:
        raise UsageError(str(exc)) from None
    print(f"model ready: {path}")
    return 0


def _why_not_scored(path: Path, exc: Exception) -> str:
    from monitor.audio.files import AudioError

    if isinstance(exc, AudioError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return f"{path.name}: too large to load"
    return f"{path.name}: internal error while scoring ({type(exc).__name__}: {exc}); please report it"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.setup(args.log_level or ("info" if args.verbose else "warning"))
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"monitor: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("monitor: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    # Run as `python -m monitor.cli`, this file is __main__: the commands raise monitor.cli's
    # UsageError, a class of the module imported under its own name, which main here must catch.
    from monitor.cli import main as package_main

    sys.exit(package_main())
