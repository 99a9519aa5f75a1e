"""`monitor hub` and `monitor console` subcommands.

The main CLI calls `add_hub_commands(subparsers)`; each subparser sets `func`, which takes
the parsed args and returns the exit code.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import ssl
import sys
from pathlib import Path

from monitor.argtypes import port, positive_int, seconds, sequence

from .options import HubOptions

HUB_HELP = """\
Run the supervisor hub: desks push alerts to it, consoles (the web page at / and
`monitor console`) watch them live. Alerts are kept in a SQLite file so a console that
reconnects resumes where it left off and a desk that lost the hub resends what it spooled.

Desks and consoles connect to ws://HOST:PORT/ws (wss:// with --cert). The web console is
http(s)://HOST:PORT/#token=CONSOLE_TOKEN. HTTP API (Authorization: Bearer CONSOLE_TOKEN):
GET /api/alerts?since=SEQ&limit=N, POST /api/ack?seq=SEQ, GET /api/desks (each desk:
connected, on a call, last alert, last call's score).
"""

CONSOLE_HELP = """\
Print the hub's alerts in the terminal, one line each, as they arrive. Starts after
--since (0 = from the first alert), reconnects by itself and resumes after the last alert
printed, so nothing is missed or printed twice. Ctrl-C to stop.
"""


def _desk_token(text: str) -> tuple[str, str]:
    desk, sep, token = text.partition("=")
    if not sep or not desk or not token:
        raise argparse.ArgumentTypeError("expected DESK=TOKEN")
    return desk, token


def add_hub_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add the `hub` and `console` subcommands to the main CLI."""
    fmt = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser("hub", help="run the supervisor hub (alerts in, live consoles out)",
                              description=HUB_HELP, formatter_class=fmt)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; "
                        "use 0.0.0.0 for the LAN, with --cert)")
    p.add_argument("--port", type=port, default=8765, help="port (default 8765; 0 = any free)")
    p.add_argument("--db", type=Path, default=Path("hub.sqlite3"),
                   help="SQLite file holding the alerts (default ./hub.sqlite3)")
    p.add_argument("--token", default=os.environ.get("MONITOR_HUB_TOKEN"),
                   help="desk token; also the console token unless --console-token is given "
                        "(default: $MONITOR_HUB_TOKEN)")
    p.add_argument("--console-token", default=os.environ.get("MONITOR_CONSOLE_TOKEN"),
                   help="separate token for consoles (default: $MONITOR_CONSOLE_TOKEN)")
    p.add_argument("--desk-token", type=_desk_token, action="append", default=[],
                   metavar="DESK=TOKEN",
                   help="a token that may only push as DESK (repeatable)")
    p.add_argument("--cert", type=Path, help="PEM certificate: serve wss:// and https://")
    p.add_argument("--key", type=Path, help="PEM private key (if not inside --cert)")
    p.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="extra browser origin allowed to connect, e.g. https://wall.local "
                        "(default: only the hub's own page)")
    p.add_argument("--queue-size", type=positive_int, default=2000,
                   help="alerts buffered per console; a console that falls this far behind is "
                        "disconnected and resumes from its last seq (default 2000)")
    p.add_argument("--max-message-bytes", type=positive_int, default=64 * 1024,
                   help="largest message a client may send (default 65536)")
    p.add_argument("--ping-interval", type=seconds, default=20.0,
                   help="keepalive ping interval in seconds (default 20)")
    p.add_argument("--sync", choices=("normal", "full"), default="normal",
                   help="normal: alerts survive a hub crash; full: also a power cut (slower)")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.set_defaults(func=cmd_hub)

    c = subparsers.add_parser("console", help="watch the hub's alerts in the terminal",
                              description=CONSOLE_HELP, formatter_class=fmt)
    c.add_argument("--url", default="ws://127.0.0.1:8765/ws",
                   help="hub websocket URL (default ws://127.0.0.1:8765/ws)")
    c.add_argument("--token", default=os.environ.get("MONITOR_CONSOLE_TOKEN")
                   or os.environ.get("MONITOR_HUB_TOKEN"),
                   help="console token (default: $MONITOR_CONSOLE_TOKEN or $MONITOR_HUB_TOKEN)")
    c.add_argument("--since", type=sequence, default=0,
                   help="print alerts after this seq (default 0: all stored alerts)")
    c.add_argument("--cafile", type=Path,
                   help="CA/self-signed certificate to trust for a wss:// hub")
    c.set_defaults(func=cmd_console)


def _fail(prog: str, message: str) -> int:
    print(f"monitor {prog}: error: {message}", file=sys.stderr)
    return 1


def options_from_args(args: argparse.Namespace) -> HubOptions:
    desk_tokens: dict[str, str | None] = {tok: desk for desk, tok in args.desk_token}
    return HubOptions(host=args.host, port=args.port, db=args.db, token=args.token,
                      console_token=args.console_token, desk_tokens=desk_tokens,
                      certfile=args.cert, keyfile=args.key,
                      allowed_origins=tuple(args.allow_origin), queue_size=args.queue_size,
                      max_message_bytes=args.max_message_bytes,
                      ping_interval=args.ping_interval, ping_timeout=args.ping_interval,
                      sync=args.sync)


def cmd_hub(args: argparse.Namespace) -> int:
    from .server import HubConfigError, run_hub

    if not args.token and not args.desk_token:
        return _fail("hub", "no token: give --token (or set MONITOR_HUB_TOKEN)")
    if not args.token and not args.console_token:
        return _fail("hub", "no console token: give --token or --console-token")
    if args.key and not args.cert:
        return _fail("hub", "--key needs --cert")
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("websockets").setLevel(logging.WARNING)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_hub(options_from_args(args), stop)

    try:
        asyncio.run(main())
    except HubConfigError as exc:
        return _fail("hub", str(exc))
    return 0


def cmd_console(args: argparse.Namespace) -> int:
    from .console_client import ConsoleRefused
    from .console_tui import run_console

    if not args.token:
        return _fail("console", "no token: give --token (or set MONITOR_CONSOLE_TOKEN)")
    if not args.url.startswith(("ws://", "wss://")):
        return _fail("console", f"--url must start with ws:// or wss://, not {args.url!r}")
    ctx = None
    if args.url.startswith("wss://"):
        try:
            ctx = ssl.create_default_context(cafile=str(args.cafile) if args.cafile else None)
        except (OSError, ssl.SSLError) as exc:
            return _fail("console", f"cannot read --cafile {args.cafile}: {exc}")
    try:
        asyncio.run(run_console(args.url, args.token, args.since, ssl_context=ctx))
    except ConsoleRefused as exc:
        return _fail("console", str(exc))
    except KeyboardInterrupt:
        pass
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (`python -m monitor.hub`): `hub` is the default subcommand."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("hub", "console", "-h", "--help"):
        argv.insert(0, "hub")
    parser = argparse.ArgumentParser(prog="monitor", description="alert hub and console")
    add_hub_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)
