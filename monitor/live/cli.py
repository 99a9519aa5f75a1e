"""`monitor replay`, `monitor live`, `monitor devices` and `monitor call`."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path

REPLAY_HELP = """\
Feed a recording through the exact live path (VAD, recogniser, rules in arrival order)
and print the alerts as the desk raises them. --realtime paces the audio by the clock
(--speed N for N times faster); without it the file is fed as fast as the machine goes.
With --hub the alerts also go to the supervisor hub (spooled on disk if it is down).
"""

LIVE_HELP = """\
Monitor calls as they happen from sound devices: one stereo device (--agent-device,
channels chosen with --agent-channel/--caller-channel), two devices (--agent-device for
the microphone, --caller-device for the call's playback side), or one device whose channel
--agent-channel holds both sides mixed (--mono: each line is given to the agent or the
caller as it is heard, --mono-roles auto, the default; --mono-roles agent hears every word
as the agent's). Calls start and end by the
softphone: baresip's own events (--softphone baresip://127.0.0.1:4444), or a hook running
`monitor call start` / `monitor call end --by caller` (posted to this desk's loopback
control port with the token from its token file). Until a softphone speaks up, the audio
decides: speech after idle starts a call, the caller's busy tone or a long silence ends it.
Exits non-zero when alerts could not be delivered to the hub (they stay spooled).
"""

CALL_HELP = """\
Tell a running `monitor live` desk that a call starts or ends (for softphone hooks).
`--by` says who hung up: the hang-up rule then uses this instead of the audio.
"""


def _add_alert_targets(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("alerts")
    g.add_argument("--hub", metavar="URL", help="supervisor hub websocket URL, e.g. ws://127.0.0.1:8765/ws")
    g.add_argument("--token", help="desk token for the hub; on the command line it is visible to "
                   "other users in the process list: prefer --token-file or $MONITOR_HUB_TOKEN")
    g.add_argument("--token-file", type=Path, metavar="FILE", help="read the desk token from the "
                   "first line of FILE (mode 600)")
    g.add_argument("--cafile", type=Path, metavar="PEM", help="with a wss:// hub: trust this CA or self-signed "
                   "certificate too (the system's CA store is always used)")
    g.add_argument("--desk", help="this desk's name (default: the host name)")
    g.add_argument("--spool", type=Path, help="where unsent alerts wait for the hub "
                   "(default ~/.cache/call-monitor/DESK.spool)")
    g.add_argument("--alerts", type=Path, metavar="FILE", help="also append alerts to this JSONL file")


def _add_mono_roles(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--mono-roles", choices=("auto", "agent"), default="auto",
                   help=f"{what}: auto tells the agent from the caller in the mix (default); "
                        "agent hears every word as the agent's")


def _live_options(args):
    from monitor.live.session import LiveOptions

    return LiveOptions(mono_roles=args.mono_roles)


def add_live_commands(sub) -> None:
    from monitor.argtypes import channel, port, seconds, speed
    from monitor.cli import add_asr_options

    fmt = argparse.RawDescriptionHelpFormatter
    r = sub.add_parser("replay", help="replay a recording through the live path",
                       description=REPLAY_HELP, formatter_class=fmt)
    r.add_argument("files", type=Path, nargs="+", metavar="FILE", help="recordings, replayed one call after another")
    r.add_argument("--profile", default="zte", help="phrasebook profile name or .toml file (default zte)")
    r.add_argument("--realtime", action="store_true", help="pace the audio by the clock")
    r.add_argument("--speed", type=speed, default=1.0, help="with --realtime: times faster than real time")
    r.add_argument("--call-id", help="id for the call (default: the file name; only with one file)")
    r.add_argument("--agent-channel", type=channel, default=None, help="channel of the agent (default 0)")
    r.add_argument("--caller-channel", type=channel, default=None, help="channel of the caller (default 1)")
    r.add_argument("--out", type=Path, help="write the call summaries here (JSONL, one per call)")
    _add_mono_roles(r, "mono files")
    _add_alert_targets(r)
    add_asr_options(r)
    r.set_defaults(func=cmd_replay)

    lv = sub.add_parser("live", help="monitor calls from sound devices", description=LIVE_HELP,
                        formatter_class=fmt)
    lv.add_argument("--profile", default="zte")
    lv.add_argument("--agent-device", help="input device (name or number) of the agent, or the stereo device")
    lv.add_argument("--caller-device", help="input device of the caller side (playback loopback/monitor)")
    lv.add_argument("--agent-channel", type=channel, default=0, help="with one stereo device")
    lv.add_argument("--caller-channel", type=channel, default=1, help="with one stereo device")
    lv.add_argument("--mono", action="store_true", help="one device, its --agent-channel holding both sides mixed")
    _add_mono_roles(lv, "with --mono")
    lv.add_argument("--samplerate", type=int, help="capture rate (default: the device's)")
    lv.add_argument("--softphone", metavar="URL", help="follow the softphone's own call events: "
                    "baresip://HOST:PORT (baresip's ctrl_tcp); calls then start and end only by it")
    lv.add_argument("--control-port", type=port, help="loopback port for softphone hooks "
                    "(default 8766; 0 = none; none with --softphone, which alone starts and ends calls)")
    lv.add_argument("--control-token", default=os.environ.get("MONITOR_CONTROL_TOKEN"),
                    help="token `monitor call` must present (default: $MONITOR_CONTROL_TOKEN, else a new "
                    "one written to $XDG_RUNTIME_DIR/call-monitor/control-PORT.token, readable by this user only)")
    lv.add_argument("--no-audio-calls", action="store_true", help="only softphone hooks start and end calls")
    lv.add_argument("--idle-end", type=seconds, default=60.0, help="silence (s) that ends a call (default 60)")
    lv.add_argument("--max-calls", type=int, help="stop after this many calls")
    lv.add_argument("--duration", type=seconds, help="stop after this many seconds")
    _add_alert_targets(lv)
    add_asr_options(lv)
    lv.set_defaults(func=cmd_live)

    d = sub.add_parser("devices", help="list sound devices", description="List PortAudio input/output devices.")
    d.set_defaults(func=cmd_devices)

    c = sub.add_parser("call", help="tell a live desk a call starts or ends", description=CALL_HELP)
    c.add_argument("action", choices=("start", "end"))
    c.add_argument("--by", choices=("agent", "caller"), help="who hung up (with end)")
    c.add_argument("--id", dest="call_id", help="the softphone's call id")
    c.add_argument("--peer", help="the other party (with start), e.g. a SIP URI or number")
    c.add_argument("--port", type=port, default=8766, help="the desk's control port (default 8766)")
    c.add_argument("--token", default=os.environ.get("MONITOR_CONTROL_TOKEN"),
                   help="default: $MONITOR_CONTROL_TOKEN, else the desk's token file for that port")
    c.set_defaults(func=cmd_call)


def _sinks(args, profile_name: str = ""):
    from monitor.cli import UsageError
    from monitor.live.sinks import AlertSink, HubSink, JsonlSink, PrintSink

    sinks: list[AlertSink] = [PrintSink(sys.stdout)]
    if args.alerts:
        sinks.append(JsonlSink(args.alerts))
    if args.hub:
        token = _desk_token(args)
        if not token:
            raise UsageError("--hub needs a desk token: --token-file FILE or $MONITOR_HUB_TOKEN")
        if not args.hub.startswith(("ws://", "wss://")):
            raise UsageError(f"--hub must be a ws:// or wss:// URL, not {args.hub!r}")
        if args.cafile and not args.hub.startswith("wss://"):
            raise UsageError("--cafile goes with a wss:// hub")
        from monitor.asr.model_files import default_cache_dir

        spool = args.spool or default_cache_dir().parent / f"{_desk_name(args)}.spool"
        try:
            sinks.append(HubSink(args.hub, token, _desk_name(args), spool, profile=profile_name,
                                 cafile=args.cafile, on_problem=_say("hub"), on_recovered=_say("hub")))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    return sinks


def _desk_token(args) -> str | None:
    """--token, else --token-file, else $MONITOR_HUB_TOKEN; warns when it is exposed or weak."""
    from monitor.cli import UsageError
    from monitor.hub.cli import MIN_TOKEN, TokenError, read_token_file

    warnings: list[str] = []
    if args.token:
        warnings.append("--token on the command line is visible to other users in the process list; "
                        "use --token-file or $MONITOR_HUB_TOKEN")
        token = args.token
    elif args.token_file:
        try:
            token = read_token_file(args.token_file, warnings)
        except TokenError as exc:
            raise UsageError(str(exc)) from None
    else:
        token = os.environ.get("MONITOR_HUB_TOKEN")
    if token and len(token) < MIN_TOKEN:
        warnings.append(f"the desk token is shorter than {MIN_TOKEN} characters: easy to guess")
    for w in warnings:
        print(f"monitor: warning: {w}", file=sys.stderr, flush=True)
    return token


def _hubs(sinks) -> list:
    from monitor.live.sinks import HubSink

    return [s for s in sinks if isinstance(s, HubSink)]


def _tell_hub_softphone(sinks, state: str) -> None:
    for hub in _hubs(sinks):
        hub.softphone(state)


def _softphone_said(sinks, state: str):
    """Say a softphone problem (or its end) on stderr and show the link's state at the hub."""
    say = _say("softphone")

    def said(line: str) -> None:
        say(line)
        _tell_hub_softphone(sinks, state)
    return said


def _say(what: str):
    def say(line: str) -> None:
        print(f"monitor: {what}: {line}", file=sys.stderr, flush=True)
    return say


async def _start_sinks(sinks) -> None:
    for hub in _hubs(sinks):  # at once: spooled alerts go out, a hub problem is said
        await hub.start()


def _spooled(sinks) -> int:
    """Alerts still waiting for the hub after the sinks closed; says so on stderr."""
    left = sum(hub.pending for hub in _hubs(sinks))
    if left:
        print(f"monitor: error: {left} alert(s) not delivered to the hub; they stay spooled and are "
              "sent on the next start", file=sys.stderr, flush=True)
    return left


def _desk_name(args) -> str:
    import socket

    return args.desk or (socket.gethostname()[:64] or "desk")


def _print_call(s) -> None:
    peer = f", peer {s.peer}" if s.peer else ""
    how = f", ended: {s.why_ended}" if s.why_ended else ""
    from monitor.events import REVIEW_RULES

    review = sum(v.rule in REVIEW_RULES for v in s.violations)
    found = f"{len(s.violations) - review} violation(s)" + (f", {review} to review" if review else "")
    print(f"call {s.call_id}: {s.duration:.1f} s, {found}, score {s.score:g}{peer}{how}", flush=True)


def cmd_replay(args) -> int:
    from monitor.audio.files import AudioError
    from monitor.cli import UsageError, _load_profile, _transcriber, channel_roles
    from monitor.live.desk import Desk, DeskOptions
    from monitor.live.sources import ReplaySource
    from monitor.pipeline import read_events_sidecar

    if args.call_id and len(args.files) > 1:
        raise UsageError("--call-id needs a single file")
    profile = _load_profile(args.profile)
    roles = channel_roles(args)
    transcriber = _transcriber(args, profile)
    sinks = _sinks(args, profile.name)
    failed = 0

    async def main() -> int:
        nonlocal failed
        desk = Desk(profile, transcriber, sinks, DeskOptions(desk=_desk_name(args), live=_live_options(args)))
        out = open(args.out, "w", encoding="utf-8") if args.out else None
        try:
            await _start_sinks(sinks)
            print(f"desk {_desk_name(args)}: replaying {len(args.files)} file(s)", flush=True)
            for path in args.files:
                try:
                    source = ReplaySource(path, roles, speed=args.speed if args.realtime else 0.0,
                                          events=read_events_sidecar(path))
                except AudioError as exc:
                    print(f"monitor: error: {exc}", file=sys.stderr)
                    failed += 1
                    continue
                if source.call.truncated:  # replayed, but its end is not judged (as `monitor score`)
                    print(f"monitor: warning: {source.call.note or path.name + ': truncated'}", file=sys.stderr)
                s = await desk.run_call(source.frames(), source.roles, args.call_id or path.stem,
                                        speed=source.speed)
                _print_call(s)
                if out:
                    out.write(json.dumps(s.to_dict(), ensure_ascii=False) + "\n")
                    out.flush()
        finally:
            if out:
                out.close()
            await desk.close()
        return _spooled(sinks)

    left = asyncio.run(main())
    if failed == len(args.files):
        return 2
    return 1 if failed or left else 0


def cmd_live(args) -> int:
    from monitor.audio.files import ChannelRoles
    from monitor.cli import UsageError, _load_profile, _transcriber
    from monitor.live.calls import CallDetectOptions
    from monitor.live.control import make_token_file, new_token, remove_token_file, serve_control
    from monitor.live.desk import Desk, DeskOptions
    from monitor.live.runner import DeskRunner
    from monitor.live.sources import DeviceOptions, DeviceSource

    if args.agent_device is None:
        raise UsageError("give --agent-device (see `monitor devices`)")
    if args.mono and args.caller_device is not None:
        raise UsageError("--mono is one device with both sides mixed: no --caller-device")
    softphone = None
    if args.softphone:
        from monitor.live.baresip import parse_softphone_url

        try:
            softphone = parse_softphone_url(args.softphone)
        except ValueError as exc:
            raise UsageError(f"--softphone: {exc}") from None
    if softphone and args.control_port:
        raise UsageError("--softphone drives the calls: hooks on --control-port would compete with it")
    control_port = 0 if softphone else (8766 if args.control_port is None else args.control_port)
    profile = _load_profile(args.profile)
    dev = DeviceOptions(agent_device=_device(args.agent_device), caller_device=_device(args.caller_device),
                        roles=ChannelRoles(args.agent_channel, args.caller_channel), samplerate=args.samplerate,
                        mono=args.mono)
    _check_devices(dev)
    transcriber = _transcriber(args, profile)
    sinks = _sinks(args, profile.name)
    # A softphone that reports its calls is better evidence than the audio: calls come only from it.
    detect = CallDetectOptions(from_audio=not (args.no_audio_calls or softphone), idle_end_s=args.idle_end)

    async def main() -> tuple[int, int]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        source = DeviceSource(dev)
        desk = Desk(profile, transcriber, sinks, DeskOptions(desk=_desk_name(args), live=_live_options(args)))
        runner = DeskRunner(desk, source, detect, max_calls=args.max_calls, on_call=_print_call)
        server, token_file, phone, phone_task = None, None, None, None
        token = args.control_token or new_token()
        hooks = ""
        try:
            await _start_sinks(sinks)
            if control_port:
                try:
                    server = await serve_control(runner.control, token, port=control_port)
                except OSError as exc:
                    raise UsageError(f"control port {control_port}: {exc.strerror}") from None
                hooks = f", softphone hooks on 127.0.0.1:{control_port}"
                if not args.control_token:  # only now: a desk that could not bind leaves the file alone
                    _, token_file = make_token_file(control_port, token)
                    hooks += f" (token in {token_file})"
            if softphone:
                from monitor.live.baresip import BaresipEvents, SoftphoneError

                phone = BaresipEvents(*softphone, on_control=runner.control,
                                      on_problem=_softphone_said(sinks, "baresip away"),
                                      on_recovered=_softphone_said(sinks, "baresip connected"))
                try:
                    await phone.connect_first()
                except SoftphoneError as exc:
                    raise UsageError(str(exc)) from None
                _tell_hub_softphone(sinks, "baresip connected")
                phone_task = asyncio.create_task(phone.run())
            if args.duration:
                loop.call_later(args.duration, stop.set)
            print(f"desk {_desk_name(args)}: listening (profile {profile.name}"
                  f"{', softphone ' + args.softphone if softphone else ''}{hooks})", flush=True)
            await runner.run(stop)
        finally:
            if phone is not None:
                await phone.close()
            if phone_task is not None:
                phone_task.cancel()
            if server:
                server.close()
            if token_file is not None:
                remove_token_file(control_port, token)
            await desk.close()
        st = source.stats
        print(f"desk: {len(runner.summaries)} call(s); audio blocks {st.blocks}, dropped {st.overflows}, "
              f"device errors {st.device_errors}", flush=True)
        if runner.error:
            print(f"monitor: error: audio source: {runner.error}", file=sys.stderr, flush=True)
        return _spooled(sinks), int(runner.error is not None)

    left, source_failed = asyncio.run(main())
    return 1 if left or source_failed else 0


def _device(text: str | None):
    if text is None:
        return None
    return int(text) if text.isdigit() else text


def _check_devices(dev) -> None:
    from monitor.cli import UsageError

    try:
        import sounddevice as sd
    except OSError as exc:  # PortAudio missing
        raise UsageError(f"no audio system: {exc}") from None
    for d in (dev.agent_device, dev.caller_device):
        if d is None:
            continue
        try:
            sd.query_devices(d, "input")
        except (ValueError, sd.PortAudioError) as exc:
            raise UsageError(f"input device {d!r}: {exc}") from None


def cmd_devices(args) -> int:
    from monitor.cli import UsageError
    from monitor.live.sources import list_devices

    try:
        devices = list_devices()
    except OSError as exc:
        raise UsageError(f"no audio system: {exc}") from None
    for d in devices:
        print(f"{d['index']:3d}  in {d['inputs']:2d}  out {d['outputs']:2d}  {d['default_samplerate']:>7.0f} Hz  {d['name']}")
    if not devices:
        print("no sound devices")
    return 0


def cmd_call(args) -> int:
    from monitor.cli import UsageError
    from monitor.live.control import ControlError, post_control

    if args.by and args.action != "end":
        raise UsageError("--by goes with `monitor call end`")
    try:
        print(post_control(args.action, args.port, token=args.token, by=args.by, call_id=args.call_id,
                           peer=args.peer))
    except ControlError as exc:
        raise UsageError(str(exc)) from None
    return 0
