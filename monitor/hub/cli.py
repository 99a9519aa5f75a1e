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

Tokens: a token given with --token / --console-token / --desk-token is visible to every
user of this machine in the process list (/proc/PID/cmdline). Prefer a file readable only
by the hub's user (--token-file, --console-token-file, --desk-token-file) or the
environment ($MONITOR_HUB_TOKEN, $MONITOR_CONSOLE_TOKEN). Use random tokens of 16
characters or more (e.g. `python -c "import secrets; print(secrets.token_urlsafe(24))"`).
Precedence: command line, then file, then environment.

The database (and its -wal and .mark files) is created readable by this user only.
Limits on hostile clients: connections that have not authenticated are capped per address
and overall; an address that fails to authenticate repeatedly is blocked for a while (HTTP
429); each desk has an alert-rate and a daily-size quota, and an alert over it is rejected
with a reason the desk logs.
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
    p.add_argument("--token",
                   help="desk token; also the console token unless a console token is given "
                        "(visible in the process list: prefer --token-file or "
                        "$MONITOR_HUB_TOKEN)")
    p.add_argument("--token-file", type=Path, metavar="FILE",
                   help="read the desk (and console) token from the first line of FILE")
    p.add_argument("--console-token",
                   help="separate token for consoles (prefer --console-token-file or "
                        "$MONITOR_CONSOLE_TOKEN)")
    p.add_argument("--console-token-file", type=Path, metavar="FILE",
                   help="read the console token from the first line of FILE")
    p.add_argument("--desk-token", type=_desk_token, action="append", default=[],
                   metavar="DESK=TOKEN",
                   help="a token that may only push as DESK (repeatable)")
    p.add_argument("--desk-token-file", type=Path, metavar="FILE",
                   help="DESK=TOKEN lines (# comments allowed): tokens bound to one desk each")
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
    p.add_argument("--sync", choices=("normal", "full"), default="full",
                   help="full (default): an acked alert survives a power cut (one fsync per "
                        "batch of alerts); normal: it survives a hub crash only")
    p.add_argument("--retain-days", type=_positive_float, metavar="DAYS",
                   help="delete alerts received more than DAYS ago (checked hourly; "
                        "default: keep all)")
    p.add_argument("--desk-rate", type=_positive_float, default=20.0, metavar="N",
                   help="alerts per second one desk may push, sustained (default 20)")
    p.add_argument("--desk-burst", type=positive_int, default=2000, metavar="N",
                   help="alerts one desk may push at once, e.g. its spool after an outage "
                        "(default 2000)")
    p.add_argument("--desk-mb-per-day", type=_positive_float, default=200.0, metavar="MB",
                   help="megabytes of alerts one desk may push per day (default 200)")
    p.add_argument("--max-connections", type=positive_int, default=5000,
                   help="authenticated desks + consoles at once (default 5000)")
    p.add_argument("--max-preauth", type=positive_int, default=500,
                   help="connections not yet authenticated, in all (default 500; kept apart "
                        "from --max-connections)")
    p.add_argument("--max-preauth-per-address", type=positive_int, default=64,
                   help="connections not yet authenticated from one address (default 64; "
                        "raise it if many desks share one NAT address)")
    p.add_argument("--hello-timeout", type=seconds, default=5.0,
                   help="seconds a new connection has to authenticate (default 5)")
    p.add_argument("--auth-failures", type=positive_int, default=10,
                   help="failed authentications from one address per minute before it is "
                        "blocked, 1 s doubling to 60 s (default 10)")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.set_defaults(func=cmd_hub)

    c = subparsers.add_parser("console", help="watch the hub's alerts in the terminal",
                              description=CONSOLE_HELP, formatter_class=fmt)
    c.add_argument("--url", default="ws://127.0.0.1:8765/ws",
                   help="hub websocket URL (default ws://127.0.0.1:8765/ws)")
    c.add_argument("--token",
                   help="console token (visible in the process list: prefer --token-file or "
                        "$MONITOR_CONSOLE_TOKEN / $MONITOR_HUB_TOKEN)")
    c.add_argument("--token-file", type=Path, metavar="FILE",
                   help="read the console token from the first line of FILE")
    c.add_argument("--since", type=sequence, default=0,
                   help="print alerts after this seq (default 0: all stored alerts)")
    c.add_argument("--cafile", type=Path,
                   help="CA/self-signed certificate to trust for a wss:// hub")
    c.set_defaults(func=cmd_console)


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError("must be a positive number")
    return v


class TokenError(ValueError):
    pass


def read_token_file(path: Path, warnings: list[str]) -> str:
    try:
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenError(f"cannot read token file {path}: "
                          f"{getattr(exc, 'strerror', None) or exc}") from None
    token = (text.splitlines() or [""])[0].strip()
    if not token:
        raise TokenError(f"token file {path} is empty")
    if mode & 0o077:
        warnings.append(f"token file {path} is readable by other users (chmod 600 it)")
    return token


def resolve_tokens(args: argparse.Namespace, warnings: list[str]) -> None:
    """Fill args.token / console_token / desk_token from the command line, files or the
    environment (in that order); add a warning for each token that is weak or exposed."""
    for attr, file_attr, env in (("token", "token_file", "MONITOR_HUB_TOKEN"),
                                 ("console_token", "console_token_file",
                                  "MONITOR_CONSOLE_TOKEN")):
        flag = "--" + attr.replace("_", "-")
        if getattr(args, attr):
            warnings.append(f"{flag} on the command line is visible to other users in the "
                            f"process list; use {flag}-file or ${env}")
        elif getattr(args, file_attr, None):
            setattr(args, attr, read_token_file(getattr(args, file_attr), warnings))
        else:
            setattr(args, attr, os.environ.get(env) or None)
    if args.desk_token:
        warnings.append("--desk-token on the command line is visible to other users in the "
                        "process list; use --desk-token-file")
    if args.desk_token_file:
        try:
            lines = args.desk_token_file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise TokenError(f"cannot read {args.desk_token_file}: "
                              f"{getattr(exc, 'strerror', None) or exc}") from None
        for n, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                args.desk_token.append(_desk_token(line))
            except argparse.ArgumentTypeError:
                raise TokenError(f"{args.desk_token_file} line {n}: expected DESK=TOKEN"
                                  ) from None
    tokens = [args.token, args.console_token, *(t for _, t in args.desk_token)]
    if any(t and len(t) < MIN_TOKEN for t in tokens):
        warnings.append(f"a token is shorter than {MIN_TOKEN} characters: easy to guess; "
                        "use a long random one")


MIN_TOKEN = 16


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
                      sync=args.sync, retain_days=args.retain_days, desk_rate=args.desk_rate,
                      desk_burst=args.desk_burst,
                      desk_bytes_per_day=int(args.desk_mb_per_day * 1024 * 1024),
                      max_connections=args.max_connections, max_preauth=args.max_preauth,
                      max_preauth_per_address=args.max_preauth_per_address,
                      hello_timeout=args.hello_timeout, auth_failures=args.auth_failures)


def cmd_hub(args: argparse.Namespace) -> int:
    from .server import Hub, HubConfigError

    warnings: list[str] = []
    try:
        resolve_tokens(args, warnings)
    except TokenError as exc:
        return _fail("hub", str(exc))
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
        async with Hub(options_from_args(args)):
            # Only once it runs: a hub that cannot start says one clear line, nothing else.
            for w in warnings:
                logging.getLogger("monitor.hub").warning("%s", w)
            await stop.wait()

    try:
        asyncio.run(main())
    except HubConfigError as exc:
        return _fail("hub", str(exc))
    return 0


def cmd_console(args: argparse.Namespace) -> int:
    from .console_client import ConsoleRefused
    from .console_tui import run_console

    if args.token_file and not args.token:
        try:
            args.token = read_token_file(args.token_file, [])
        except TokenError as exc:
            return _fail("console", str(exc))
    args.token = args.token or os.environ.get("MONITOR_CONSOLE_TOKEN") \
        or os.environ.get("MONITOR_HUB_TOKEN")
    if not args.token:
        return _fail("console", "no token: give --token-file (or set MONITOR_CONSOLE_TOKEN)")
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
