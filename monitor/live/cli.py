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
channels chosen with --agent-channel/--caller-channel) or two devices (--agent-device for
the microphone, --caller-device for the call's playback side). Calls start and end by
softphone hook (`monitor call start` / `monitor call end --by caller`, posted to this
desk's loopback control port) or, without hooks, by audio: speech after idle starts a call,
the caller's busy tone or a long silence on both sides ends it.
"""

CALL_HELP = """\
Tell a running `monitor live` desk that a call starts or ends (for softphone hooks).
`--by` says who hung up: the hang-up rule then uses this instead of the audio.
"""


def _add_alert_targets(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("alerts")
    g.add_argument("--hub", metavar="URL", help="supervisor hub websocket URL, e.g. ws://127.0.0.1:8765/ws")
    g.add_argument("--token", default=os.environ.get("MONITOR_HUB_TOKEN"),
                   help="desk token for the hub (default: $MONITOR_HUB_TOKEN)")
    g.add_argument("--desk", help="this desk's name (default: the host name)")
    g.add_argument("--spool", type=Path, help="where unsent alerts wait for the hub "
                   "(default ~/.cache/call-monitor/DESK.spool)")
    g.add_argument("--alerts", type=Path, metavar="FILE", help="also append alerts to this JSONL file")


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
    r.add_argument("--agent-channel", type=channel, default=0)
    r.add_argument("--caller-channel", type=channel, default=1)
    r.add_argument("--out", type=Path, help="write the call summaries here (JSONL, one per call)")
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
    lv.add_argument("--samplerate", type=int, help="capture rate (default: the device's)")
    lv.add_argument("--control-port", type=port, default=8766, help="loopback port for softphone hooks "
                    "(default 8766; 0 = none)")
    lv.add_argument("--control-token", default=os.environ.get("MONITOR_CONTROL_TOKEN"),
                    help="token `monitor call` must present (default: $MONITOR_CONTROL_TOKEN)")
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
    c.add_argument("--id", dest="call_id", help="call id (with start)")
    c.add_argument("--port", type=port, default=8766, help="the desk's control port (default 8766)")
    c.add_argument("--token", default=os.environ.get("MONITOR_CONTROL_TOKEN"))
    c.set_defaults(func=cmd_call)


def _sinks(args):
    from monitor.cli import UsageError
    from monitor.live.desk import HubSink, JsonlSink, PrintSink

    sinks = [PrintSink(sys.stdout)]
    if args.alerts:
        sinks.append(JsonlSink(args.alerts))
    if args.hub:
        if not args.token:
            raise UsageError("--hub needs --token (or $MONITOR_HUB_TOKEN)")
        if not args.hub.startswith(("ws://", "wss://")):
            raise UsageError(f"--hub must be a ws:// or wss:// URL, not {args.hub!r}")
        from monitor.asr.model_files import default_cache_dir

        spool = args.spool or default_cache_dir().parent / f"{_desk_name(args)}.spool"
        try:
            sinks.append(HubSink(args.hub, args.token, _desk_name(args), spool))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    return sinks


def _desk_name(args) -> str:
    import socket

    return args.desk or (socket.gethostname()[:64] or "desk")


def cmd_replay(args) -> int:
    from monitor.audio.files import AudioError, ChannelRoles
    from monitor.cli import UsageError, _load_profile, _transcriber
    from monitor.live.desk import Desk, DeskOptions
    from monitor.live.sources import ReplaySource
    from monitor.pipeline import read_events_sidecar

    if args.call_id and len(args.files) > 1:
        raise UsageError("--call-id needs a single file")
    profile = _load_profile(args.profile)
    roles = ChannelRoles(args.agent_channel, args.caller_channel)
    transcriber = _transcriber(args, profile)
    sinks = _sinks(args)
    failed = 0

    async def main() -> None:
        nonlocal failed
        desk = Desk(profile, transcriber, sinks, DeskOptions(desk=_desk_name(args)))
        out = open(args.out, "w", encoding="utf-8") if args.out else None
        try:
            for path in args.files:
                try:
                    source = ReplaySource(path, roles, speed=args.speed if args.realtime else 0.0)
                    events = read_events_sidecar(path)
                except AudioError as exc:
                    print(f"monitor: error: {exc}", file=sys.stderr)
                    failed += 1
                    continue
                s = await desk.run_call(source.frames(), source.roles, args.call_id or path.stem,
                                        speed=source.speed, events=events)
                print(f"call {s.call_id}: {s.duration:.1f} s, {len(s.violations)} violation(s), score {s.score:g}",
                      flush=True)
                if out:
                    out.write(json.dumps(s.to_dict(), ensure_ascii=False) + "\n")
                    out.flush()
        finally:
            if out:
                out.close()
            await desk.close()

    asyncio.run(main())
    if failed == len(args.files):
        return 2
    return 1 if failed else 0


def cmd_live(args) -> int:
    from monitor.audio.files import ChannelRoles
    from monitor.cli import UsageError, _load_profile, _transcriber
    from monitor.live.calls import CallDetectOptions, CallTracker, queue_frames, serve_control
    from monitor.live.desk import Desk, DeskOptions
    from monitor.live.sources import DeviceOptions, DeviceSource

    if args.agent_device is None:
        raise UsageError("give --agent-device (see `monitor devices`)")
    profile = _load_profile(args.profile)
    dev = DeviceOptions(agent_device=_device(args.agent_device), caller_device=_device(args.caller_device),
                        roles=ChannelRoles(args.agent_channel, args.caller_channel), samplerate=args.samplerate)
    _check_devices(dev)
    transcriber = _transcriber(args, profile)
    sinks = _sinks(args)
    detect = CallDetectOptions(from_audio=not args.no_audio_calls, idle_end_s=args.idle_end)

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        controls: asyncio.Queue = asyncio.Queue(maxsize=64)
        server = None
        if args.control_port:
            try:
                server = await serve_control(controls, port=args.control_port, token=args.control_token)
            except OSError as exc:
                raise UsageError(f"control port {args.control_port}: {exc.strerror}") from None
        source = DeviceSource(dev)
        desk = Desk(profile, transcriber, sinks, DeskOptions(desk=_desk_name(args)))
        tracker = CallTracker(source.frames(), source.roles, controls, detect)
        done = 0

        calls: asyncio.Queue = asyncio.Queue(maxsize=4)

        async def watch() -> None:
            nonlocal done
            tracking = asyncio.create_task(tracker.run(calls))
            while (call := await calls.get()) is not None:
                call_id, q, events = call
                s = await desk.run_call(queue_frames(q), source.roles, call_id, speed=1.0, events=events)
                print(f"call {s.call_id}: {s.duration:.1f} s, {len(s.violations)} violation(s), score {s.score:g}",
                      flush=True)
                done += 1
                if args.max_calls and done >= args.max_calls:
                    break
            tracking.cancel()

        task = asyncio.create_task(watch())
        waits = [task, asyncio.create_task(stop.wait())]
        if args.duration:
            waits.append(asyncio.create_task(asyncio.sleep(args.duration)))
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        source.stop()
        try:
            await asyncio.wait_for(task, timeout=120)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            task.cancel()
        if server:
            server.close()
        await desk.close()
        st = source.stats
        print(f"desk: {done} call(s); audio blocks {st.blocks}, dropped {st.overflows}, "
              f"device errors {st.device_errors}", flush=True)
        return 0

    return asyncio.run(main())


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
    from monitor.live.calls import post_control

    try:
        print(post_control(args.action, args.port, by=args.by, call_id=args.call_id, token=args.token))
    except (OSError, RuntimeError) as exc:
        raise UsageError(f"no live desk on port {args.port}: {exc}") from None
    return 0
