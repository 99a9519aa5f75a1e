"""Hub settings."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal


@dataclass
class HubOptions:
    """Everything the hub can be told.

    host/port:        where to listen; loopback unless told otherwise (port 0 = any free).
    db:               SQLite file holding the alert log (created if missing).
    token:            one token for both roles, unless console_token is also given, in
                      which case `token` is for desks only.
    console_token:    token for consoles (read + acknowledge).
    desk_tokens:      extra desk tokens, token -> desk name it is bound to (None = any name).
    console_tokens:   extra console tokens.
    certfile/keyfile: PEM certificate (+ key, unless inside certfile): serve wss:// and https://.
    max_message_bytes: largest frame a client may send; bigger closes it with 1009.
    queue_size:       alerts buffered per console; when full the console is disconnected
                      (close 4429) and must resume from its last seq: the store still has
                      everything, so a slow console costs it a reconnect, never an alert.
    ingest_queue:     alerts waiting to be committed; when full, desk handlers stop reading
                      and TCP pushes back on the desks.
    ping_interval:    keepalive ping every N s; a peer silent for ping_timeout is dropped.
    allowed_origins:  extra browser Origins allowed to open a websocket or call the API
                      (default: same origin only; "*" allows any).
    hello_timeout:    seconds a new connection has, from TCP accept, to authenticate
                      (handshake and hello together).
    close_timeout:    seconds a peer gets to finish a close (or answer a failed ping)
                      before its TCP connection is dropped.
    sync:             "full" (default): an acked alert survives a power loss too (one fsync
                      per batch); "normal": survives a hub crash/SIGKILL only.
    desk_heartbeat:   seconds between a desk's heartbeats when its hello does not say;
                      a desk silent for 3 of them shows stale in /api/desks.
    max_preauth:      connections not yet authenticated, all addresses together; the rest
                      of max_connections is kept for authenticated desks and consoles.
    max_preauth_per_address: connections not yet authenticated from one address. When a
                      limit is reached the oldest such connection is dropped if it has been
                      waiting over preauth_evict_after s, otherwise the new one is.
    auth_failures:    failed authentications from one address tolerated (per
                      auth_failure_window s) before it is blocked: 1 s, doubling up to
                      auth_block_max s; a blocked address gets HTTP 429. Success clears it.
    desk_rate/desk_burst: alerts per second a desk may push, sustained / in a burst (e.g.
                      its spool after an outage); over it, alerts are rejected ("reject"
                      frame, reason "over quota: ...").
    desk_bytes_per_day: bytes of alert frames a desk may push per day (bucket of one day's
                      worth, refilled continuously); over it, alerts are rejected.
    retain_days:      alerts and transcripts received longer ago are deleted (hourly);
                      None keeps all.
    console_names:    console token -> the supervisor it belongs to (--console-token
                      NAME=TOKEN): acknowledgements record that name.
    transcripts:      "live": desks send what is said on their calls and the hub keeps it
                      (retain_days) and shows it; "off": it refuses transcripts. None: live
                      when bound to loopback, else off.
    redact:           desks mask phone, ID-card and bank-card numbers before sending, and
                      the hub masks whatever still arrives unmasked (False: keep them).
    """

    host: str = "127.0.0.1"
    port: int = 8765
    db: Path = Path("hub.sqlite3")
    token: str | None = None
    console_token: str | None = None
    desk_tokens: dict[str, str | None] = field(default_factory=dict)
    console_tokens: set[str] = field(default_factory=set)
    certfile: Path | None = None
    keyfile: Path | None = None
    max_message_bytes: int = 64 * 1024
    queue_size: int = 2000
    ingest_queue: int = 10000
    ping_interval: float = 20.0
    ping_timeout: float = 20.0
    allowed_origins: tuple[str, ...] = ()
    hello_timeout: float = 5.0
    close_timeout: float = 5.0
    sync: Literal["normal", "full"] = "full"
    max_errors: int = 20  # protocol errors tolerated per connection before closing it
    max_connections: int = 5000  # open websockets beyond this get HTTP 503
    desk_heartbeat: float = 10.0
    max_preauth: int = 500
    max_preauth_per_address: int = 64
    preauth_evict_after: float = 1.0
    auth_failures: int = 10
    auth_failure_window: float = 60.0
    auth_block_max: float = 60.0
    desk_rate: float = 20.0
    desk_burst: int = 2000
    desk_bytes_per_day: int = 200 * 1024 * 1024
    retain_days: float | None = None
    console_names: dict[str, str] = field(default_factory=dict)
    transcripts: Literal["live", "off"] | None = None
    redact: bool = True
    transcript_rate: float = 20.0  # lines per second a desk may send, sustained
    # Bearer token for GET /metrics (a console token works too); None: only loopback
    # scrapers get /metrics without a token.
    metrics_token: str | None = None

    @property
    def tls(self) -> bool:
        return self.certfile is not None

    def resolved_tokens(self) -> tuple[dict[str, str | None], set[str]]:
        """(desk tokens -> bound desk, console tokens) after applying token/console_token."""
        desk = dict(self.desk_tokens)
        console = set(self.console_tokens)
        if self.token:
            desk.setdefault(self.token, None)
            # One shared token serves consoles too only where no console token of any kind is given:
            # else every agent PC that holds it could read all transcripts and acknowledge alerts.
            if not (self.console_token or self.console_tokens or self.console_names):
                console.add(self.token)
        if self.console_token:
            console.add(self.console_token)
        console |= set(self.console_names)
        return desk, console

    @property
    def transcripts_live(self) -> bool:
        if self.transcripts is None:
            return self.is_loopback()
        return self.transcripts == "live"

    def is_loopback(self) -> bool:
        if self.host in ("localhost", ""):
            return self.host == "localhost"
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


# -- the config file (`monitor hub --config hub.toml`) -------------------------------


class ConfigError(ValueError):
    """A problem in the hub's config file; the message names file and line."""


def read_config(path: Path) -> dict[str, tuple[object, int]]:
    """Top-level `key = value` pairs of a TOML file -> (value, line). Keys are the hub's
    long option names (`token-file` or `token_file`); tables are not allowed."""
    import re
    import tomllib

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config file "
                          f"({getattr(exc, 'strerror', None) or exc})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise ConfigError(f"{path}:{m.group(1) if m else 1}: TOML syntax error: {exc}") from None
    lines = text.splitlines()

    def line_of(key: str) -> int:
        pat = re.compile(r'^\s*(?:\[\s*)?["\']?' + re.escape(key) + r'["\']?\s*(=|\])')
        return next((n for n, line in enumerate(lines, 1) if pat.match(line)), 1)

    return {key: (value, line_of(key)) for key, value in data.items()}
