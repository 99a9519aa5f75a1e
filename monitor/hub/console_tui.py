"""Terminal console: one line per alert as it arrives, resuming after reconnects."""
from __future__ import annotations

import ssl
import sys
import time
from typing import TextIO

from monitor.labels import Lang, evidence, mono_side, rule_name, severity_name, withdrawn_reason

from .console_client import ConsoleClient, ConsoleRefused

_CONTROL = dict.fromkeys(list(range(0, 32)) + [127] + list(range(0x80, 0xA0)), " ")


def clean(text: object, limit: int = 200) -> str:
    """Printable one-line text: alert fields come from desks and must not drive the terminal
    (escape sequences) or break the one-line-per-alert layout."""
    s = str(text).translate(_CONTROL)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def format_alert(a: dict, lang: Lang = "zh") -> str:
    when = time.strftime("%m-%d %H:%M:%S", time.localtime(a.get("received", 0)))
    phrase = f' [{clean(a["phrase"], 40)}]' if a.get("phrase") else ""
    rule, sev = str(a.get("rule")), str(a.get("severity", ""))
    acked = ""
    if a.get("acked_by"):
        note = f": {clean(a['ack_note'], 120)}" if a.get("ack_note") else ""
        acked = f" [acked by {clean(a['acked_by'], 64)}{note}]"
    if a.get("withdrawn"):
        acked += f" [{clean(withdrawn_reason(str(a['withdrawn']), lang), 120)}]"
    conf = a.get("role_confidence")
    whose = mono_side(float(conf), rule, lang) if isinstance(conf, (int, float)) and not isinstance(conf, bool) else ""
    label = rule_name(rule, lang)
    named = f"{rule} {label}" if label != rule else rule  # the id stays: scripts grep it
    return (f"#{a.get('seq')} {when} {clean(a.get('desk'), 64)} {clean(named, 130)}"
            f" ({clean(severity_name(sev, lang), 32)}) call={clean(a.get('call_id'), 64)}"
            f" t={float(a.get('start', 0)):.1f}-{float(a.get('end', 0)):.1f}s{phrase}"
            f" \"{clean(a.get('text'))}\" | {clean(evidence(str(a.get('evidence')), lang), 120)}"
            f"{whose}{acked}")


def format_acked(a: dict, lang: Lang = "zh") -> str:
    when = time.strftime("%m-%d %H:%M:%S", time.localtime(a.get("at", 0)))
    note = f": {clean(a['note'], 200)}" if a.get("note") else ""
    acked = f"acked by {clean(a.get('by'), 64)} at {when}{note}" if a.get("by") else ""
    if a.get("withdrawn"):
        why = clean(withdrawn_reason(str(a["withdrawn"]), lang), 120)
        return f"#{a.get('seq')} {why}" + (f" ({acked})" if acked else "")
    return f"#{a.get('seq')} {acked}"


async def ack_alert(url: str, token: str, seq: int, note: str | None = None, *,
                    ssl_context: ssl.SSLContext | None = None, timeout: float = 10.0) -> dict:
    """Acknowledge alert `seq` (with a note); returns the hub's "acked" frame.

    Raises ConsoleRefused for a refused token or an alert the hub does not have."""
    import asyncio
    import json

    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    from .protocol import dumps

    try:
        async with connect(url, ssl=ssl_context, open_timeout=timeout, close_timeout=2,
                           compression=None) as ws:
            # tail 0: no history replayed, only the answer to this acknowledgement.
            await ws.send(dumps({"type": "hello", "role": "console", "token": token,
                                 "name": "tui", "tail": 0}))
            ack = {"type": "ack_alert", "seq": seq, **({"note": note} if note else {})}
            await ws.send(dumps(ack))
            async with asyncio.timeout(timeout):
                async for raw in ws:
                    msg = json.loads(raw)
                    if msg.get("type") == "acked" and msg.get("seq") == seq:
                        return dict(msg)
                    if msg.get("type") == "error":
                        raise ConsoleRefused(f"hub: {msg.get('message')}")
    except ConnectionClosed as exc:
        reason = exc.rcvd.reason if exc.rcvd else str(exc)
        raise ConsoleRefused(f"hub closed the connection: {reason}") from None
    raise ConsoleRefused("hub closed the connection before answering")


async def run_console(url: str, token: str, since: int = 0, *, out: TextIO = sys.stdout,
                      err: TextIO = sys.stderr, ssl_context: ssl.SSLContext | None = None,
                      limit: int | None = None, lang: Lang = "zh") -> int:
    """Print alerts until cancelled (or `limit` alerts); returns the last seq printed.

    Raises ConsoleRefused when the hub refuses the token.
    """
    client = ConsoleClient(url, token, since, name="tui", ssl_context=ssl_context, track_acks=True)
    printed = 0
    try:
        async for frame in client.frames():
            kind = frame["type"]
            if kind == "alert":
                print(format_alert(frame, lang), file=out, flush=True)
                printed += 1
                if limit is not None and printed >= limit:
                    break
            elif kind == "acked":
                print(format_acked(frame, lang), file=out, flush=True)
            elif kind == "caught_up":
                print(f"# live (after seq {frame.get('seq')})", file=err, flush=True)
            elif kind == "disconnected":
                print(f"# disconnected: {clean(frame['reason'])}; reconnecting and resuming "
                      f"after seq {client.last_seq}", file=err, flush=True)
    finally:
        await client.close()
    return client.last_seq

