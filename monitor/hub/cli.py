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
from monitor.logs import level_type

from .options import ConfigError, HubOptions, read_config

HUB_HELP = """\
Run the supervisor hub: desks push alerts to it, consoles (the web page at / and
`monitor console`) watch them live. Alerts are kept in a SQLite file so a console that
reconnects resumes where it left off and a desk that lost the hub resends what it spooled.

Desks and consoles connect to ws://HOST:PORT/ws (wss:// with --cert). The web console is
http(s)://HOST:PORT/#token=CONSOLE_TOKEN. HTTP API (Authorization: Bearer CONSOLE_TOKEN):
GET /api/alerts?since=SEQ&limit=N, history search GET /api/alerts?from=&to=&desk=&rule=
&q=WORDS&before=SEQ, POST /api/ack?seq=SEQ&note=TEXT, GET /api/desks (each desk: connected,
on a call, running score, last words, unacknowledged major alerts, last call's score),
GET /api/transcript?desk=D[&call_id=C]; GET /api/labels (rule names, no token).

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
    p.add_argument("--console-token", action="append", default=[], metavar="[NAME=]TOKEN",
                   help="separate token for consoles; NAME=TOKEN (repeatable): one token per "
                        "supervisor, whose acknowledgements record NAME (prefer "
                        "--console-token-file or $MONITOR_CONSOLE_TOKEN)")
    p.add_argument("--console-token-file", type=Path, metavar="FILE",
                   help="console token(s) from FILE: one token, or NAME=TOKEN lines (one per "
                        "supervisor; # comments allowed)")
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
    p.add_argument("--transcripts", choices=("live", "off"),
                   help="live: desks send what is said on their calls, shown live on the "
                        "console and kept as long as --retain-days says; off: refused "
                        "(default: live when bound to loopback, else off)")
    p.add_argument("--redact", choices=("on", "off"), default="on",
                   help="on (default): phone, ID-card and bank-card numbers are masked "
                        "(138****5678) by the desks before sending, and by the hub; off: kept")
    p.add_argument("--metrics-token-file", type=Path, metavar="FILE",
                   help="bearer token for GET /metrics (Prometheus) from the first line of FILE, "
                        "or $MONITOR_METRICS_TOKEN; a console token works too. Without one, only "
                        "scrapers on this machine (loopback) get /metrics without a token")
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="read options from a TOML file: keys are these options' long names "
                        "(port = 8765, token-file = \"/etc/...\"); options given here win. "
                        "See deploy/hub.toml.example")
    p.add_argument("--log-level", type=level_type, default=argparse.SUPPRESS, metavar="LEVEL",
                   help="debug, info (default), warning or error")
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
    c.add_argument("--ack", type=sequence, metavar="SEQ",
                   help="acknowledge alert SEQ (as the supervisor the token names) and exit")
    c.add_argument("--note", help="with --ack: a note stored with the acknowledgement")
    c.add_argument("--lang", choices=("zh", "en"), default="zh",
                   help="rule names and evidence in Chinese (default) or English")
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


def read_token_lines(path: Path, warnings: list[str]) -> list[str]:
    """Every token line of a console token file (blank lines and # comments skipped)."""
    read_token_file(path, warnings)  # the same checks: readable, not empty, mode
    lines = [x.strip() for x in path.read_text(encoding="utf-8").splitlines()]
    return [x for x in lines if x and not x.startswith("#")]


def split_console_tokens(args: argparse.Namespace) -> None:
    """args.console_token (a list of TOKEN or NAME=TOKEN) -> the one plain console token
    (args.console_token) and supervisor tokens (args.console_names: token -> name)."""
    plain: list[str] = []
    names: dict[str, str] = {}
    for value in args.console_token or []:
        name, sep, token = value.partition("=")
        # A supervisor's name, in any script (王芳): one printable word of at most 64.
        if sep and token and 0 < len(name) <= 64 and name.isprintable() \
                and not any(c.isspace() for c in name):
            names[token] = name
        else:
            plain.append(value)
    if len(plain) > 1:
        raise TokenError("more than one unnamed console token: name them, NAME=TOKEN")
    args.console_token = plain[0] if plain else None
    args.console_names = names


def resolve_tokens(args: argparse.Namespace, warnings: list[str]) -> None:
    """Fill args.token / console_token / desk_token from the command line, files or the
    environment (in that order); add a warning for each token that is weak or exposed."""
    in_config: set[str] = getattr(args, "from_config", set())
    for attr, file_attr, env in (("token", "token_file", "MONITOR_HUB_TOKEN"),
                                 ("console_token", "console_token_file",
                                  "MONITOR_CONSOLE_TOKEN")):
        flag = "--" + attr.replace("_", "-")
        if getattr(args, attr) and attr in in_config:
            pass  # from the config file: its mode is checked in cmd_hub
        elif getattr(args, attr):
            warnings.append(f"{flag} on the command line is visible to other users in the "
                            f"process list; use {flag}-file or ${env}")
        elif getattr(args, file_attr, None):
            if attr == "console_token":
                setattr(args, attr, read_token_lines(getattr(args, file_attr), warnings))
            else:
                setattr(args, attr, read_token_file(getattr(args, file_attr), warnings))
        else:
            value = os.environ.get(env) or None
            setattr(args, attr, [value] if attr == "console_token" and value else value)
    split_console_tokens(args)
    if args.desk_token and "desk_token" not in in_config:
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
    tokens = [args.token, args.console_token, *args.console_names,
              *(t for _, t in args.desk_token)]
    if any(t and len(t) < MIN_TOKEN for t in tokens):
        warnings.append(f"a token is shorter than {MIN_TOKEN} characters: easy to guess; "
                        "use a long random one")


MIN_TOKEN = 16


def _metrics_token(args: argparse.Namespace, warnings: list[str]) -> str | None:
    if getattr(args, "metrics_token_file", None):
        return read_token_file(args.metrics_token_file, warnings)
    return os.environ.get("MONITOR_METRICS_TOKEN") or None


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
                      hello_timeout=args.hello_timeout, auth_failures=args.auth_failures,
                      console_names=dict(getattr(args, "console_names", {})),
                      transcripts=args.transcripts, redact=args.redact == "on",
                      metrics_token=getattr(args, "metrics_token", None))


NOT_IN_CONFIG = {"config", "help", "func"}


def apply_config(args: argparse.Namespace) -> None:
    """Fill args from args.config: an option keeps its command-line value unless it was left
    at its default. Unknown keys and bad values are ConfigError naming file and line."""
    path: Path = args.config
    tmp = argparse.ArgumentParser(add_help=False)
    add_hub_commands(tmp.add_subparsers())
    hub = next(a for a in tmp._actions if isinstance(a, argparse._SubParsersAction)).choices["hub"]
    actions = {a.dest: a for a in hub._actions if a.option_strings and a.dest not in NOT_IN_CONFIG}
    from_file: set[str] = set()
    for key, (value, line) in read_config(path).items():
        dest = key.replace("-", "_")
        where = f"{path}:{line}: {key}"
        action = actions.get(dest)
        if action is None:
            import difflib

            near = difflib.get_close_matches(dest, list(actions), n=1)
            hint = f" (did you mean {near[0].replace('_', '-')}?)" if near else ""
            raise ConfigError(f"{where}: unknown option{hint}")
        converted = _config_value(action, value, where)
        current = getattr(args, dest, None)
        default = None if action.default is argparse.SUPPRESS else action.default
        if current is None or current == default:
            setattr(args, dest, converted)
            from_file.add(dest)
    args.from_config = from_file


def _config_value(action: argparse.Action, value: object, where: str) -> object:
    many = isinstance(action, argparse._AppendAction)
    if isinstance(value, dict):
        raise ConfigError(f"{where}: a table is not an option")
    if isinstance(value, list) and not many:
        raise ConfigError(f"{where}: takes one value, not a list")
    items = value if isinstance(value, list) else [value]
    out = []
    for v in items:
        if isinstance(v, bool):
            if action.choices is None or not set(action.choices) >= {"on", "off"}:
                raise ConfigError(f"{where}: expected {'a list of ' if many else ''}text or a number, not "
                                  f"{str(v).lower()}")
            v = "on" if v else "off"
        if not isinstance(v, str | int | float) or (isinstance(v, int | float) and action.type is None):
            raise ConfigError(f"{where}: expected text{' (a list of them)' if many else ''}")
        try:
            conv = action.type(str(v)) if callable(action.type) else str(v)  # type: ignore[arg-type]
        except (argparse.ArgumentTypeError, ValueError, TypeError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if action.choices is not None and conv not in action.choices:
            raise ConfigError(f"{where}: {v!r} is not one of {', '.join(map(str, action.choices))}")
        out.append(conv)
    return out if many else out[0]


def cmd_hub(args: argparse.Namespace) -> int:
    from .server import Hub, HubConfigError

    warnings: list[str] = []
    try:
        if getattr(args, "config", None):
            apply_config(args)
            secret = {"token", "console_token", "desk_token"} & args.from_config
            if secret and args.config.stat().st_mode & 0o077:
                warnings.append(f"{args.config} holds tokens and is readable by other users (chmod 600 it)")
        resolve_tokens(args, warnings)
        args.metrics_token = _metrics_token(args, warnings)
    except (ConfigError, TokenError) as exc:
        return _fail("hub", str(exc))
    if not args.token and not args.desk_token:
        return _fail("hub", "no token: give --token (or set MONITOR_HUB_TOKEN)")
    if not args.token and not args.console_token and not args.console_names:
        return _fail("hub", "no console token: give --token or --console-token")
    if args.key and not args.cert:
        return _fail("hub", "--key needs --cert")
    from monitor import logs

    logs.setup(getattr(args, "log_level", None) or "info")

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
    if args.note and args.ack is None:
        return _fail("console", "--note goes with --ack SEQ")
    if args.note and len(args.note) > 500:
        return _fail("console", "--note is longer than 500 characters")
    try:
        if args.ack is not None:
            from .console_tui import ack_alert, format_acked

            print(format_acked(asyncio.run(ack_alert(args.url, args.token, args.ack, args.note,
                                                     ssl_context=ctx)), args.lang))
            return 0
        asyncio.run(run_console(args.url, args.token, args.since, ssl_context=ctx,
                                lang=args.lang))
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
