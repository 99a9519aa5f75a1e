"""Terminal console: one line per alert as it arrives, resuming after reconnects."""
from __future__ import annotations

import ssl
import sys
import time
from typing import TextIO

from .console_client import ConsoleClient

_CONTROL = dict.fromkeys(list(range(0, 32)) + [127] + list(range(0x80, 0xA0)), " ")


def clean(text: object, limit: int = 200) -> str:
    """Printable one-line text: alert fields come from desks and must not drive the terminal
    (escape sequences) or break the one-line-per-alert layout."""
    s = str(text).translate(_CONTROL)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def format_alert(a: dict) -> str:
    when = time.strftime("%H:%M:%S", time.localtime(a.get("received", 0)))
    phrase = f' [{clean(a["phrase"], 40)}]' if a.get("phrase") else ""
    return (f"#{a.get('seq')} {when} {clean(a.get('desk'), 64)} {clean(a.get('rule'), 64)}"
            f" ({clean(a.get('severity', ''), 32)}) call={clean(a.get('call_id'), 64)}"
            f" t={float(a.get('start', 0)):.1f}-{float(a.get('end', 0)):.1f}s{phrase}"
            f" \"{clean(a.get('text'))}\" | {clean(a.get('evidence'), 120)}")


async def run_console(url: str, token: str, since: int = 0, *, out: TextIO = sys.stdout,
                      err: TextIO = sys.stderr, ssl_context: ssl.SSLContext | None = None,
                      limit: int | None = None) -> int:
    """Print alerts until cancelled (or `limit` alerts); returns the last seq printed.

    Raises ConsoleRefused when the hub refuses the token.
    """
    client = ConsoleClient(url, token, since, name="tui", ssl_context=ssl_context)
    printed = 0
    try:
        async for frame in client.frames():
            kind = frame["type"]
            if kind == "alert":
                print(format_alert(frame), file=out, flush=True)
                printed += 1
                if limit is not None and printed >= limit:
                    break
            elif kind == "caught_up":
                print(f"# live (after seq {frame.get('seq')})", file=err, flush=True)
            elif kind == "disconnected":
                print(f"# disconnected: {clean(frame['reason'])}; reconnecting and resuming "
                      f"after seq {client.last_seq}", file=err, flush=True)
    finally:
        await client.close()
    return client.last_seq

