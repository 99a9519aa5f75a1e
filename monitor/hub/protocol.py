"""Wire format between desks, consoles and the hub (JSON text frames).

Client -> hub
  {"type": "hello", "role": "desk", "token": T, "desk": "desk-07"}
  {"type": "hello", "role": "console", "token": T, "since": 0, "ack_since": 0, "name": "sup-1",
   "tail": 1000, "epoch": E}   (ack_since: replay acks after it, default: acks from now on;
                               tail: a view showing only the newest N may skip older history;
                               epoch: the hub database `since` refers to)
  {"type": "alert", "id": "<desk-unique id>", "alert": {call_id, rule, start, end, emitted,
                                                      text, evidence, phrase?, severity?}}
  {"type": "ack_alert", "seq": N}                       (console: acknowledge an alert)

Hub -> client
  {"type": "welcome", "role": ..., "desk"?: ..., "last_seq": N, "last_ack_seq": M,
   "epoch": E, "since": S, "reset": bool}   (console: S is where its stream starts; reset
                     is true when the hello named another epoch: forget the old seqs)
  {"type": "ack", "id": ..., "seq": N, "duplicate": bool}   (desk: alert is stored)
  {"type": "reject", "id": ..., "reason": ...}              (desk: alert can never be stored)
  {"type": "alert", "seq": N, "id": ..., "desk": ..., ...}  (console)
  {"type": "acked", "ack_seq": M, "seq": N, "by": ..., "at": wall time}   (console)
  {"type": "caught_up", "seq": N}          (console: history sent, live from here)
  {"type": "error", "code": ..., "message": ...}

Everything a client sends is untrusted: every field is type- and length-checked here, and
JSON constants NaN/Infinity are refused, so nothing odd reaches the store or other clients.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Literal, Mapping

from monitor.events import Alert

# Close codes (4000-4999 are free for applications).
CLOSE_BAD_HELLO = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_HELLO_TIMEOUT = 4408
CLOSE_TOO_SLOW = 4429  # the console's bounded send queue overflowed: resume from last seq
CLOSE_POLICY = 1008  # too many protocol errors

# Limits on untrusted fields. Generous for real alerts, small enough that a hostile client
# cannot bloat the store or the consoles.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}")
ID_RE = re.compile(r"[A-Za-z0-9._:@-]{1,128}")
MAX_TOKEN = 512
MAX_CALL_ID = 128
MAX_RULE = 64
MAX_TEXT = 4000
MAX_EVIDENCE = 1000
MAX_PHRASE = 200
MAX_SEVERITY = 32
MAX_SECONDS = 1e7  # ~115 days into a call: anything larger is garbage
MAX_SEQ = 2**62


class ProtocolError(ValueError):
    """A client message that is not valid; `code` is a short machine-readable reason."""

    def __init__(self, code: str, message: str, ref: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref  # alert id the error is about, when known


@dataclass(frozen=True)
class Hello:
    role: Literal["desk", "console"]
    token: str
    desk: str | None = None  # desk role only
    since: int = 0  # console role: last seq seen
    ack_since: int | None = None  # console role: last ack_seq seen (None: no ack replay)
    name: str = "console"  # console role: label recorded on acknowledgements
    tail: int | None = None  # console role: start no earlier than the newest `tail` alerts
    epoch: str | None = None  # console role: the hub epoch `since` belongs to


@dataclass(frozen=True)
class AlertRecord:
    """A validated alert as a desk submits it (no seq yet)."""

    id: str
    call_id: str
    rule: str
    start: float
    end: float
    emitted: float
    text: str
    evidence: str
    phrase: str | None = None
    severity: str = "major"


@dataclass(frozen=True)
class AlertMsg:
    record: AlertRecord


@dataclass(frozen=True)
class AckAlert:
    seq: int


ClientMessage = Hello | AlertMsg | AckAlert


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def decode(raw: str | bytes) -> dict:
    """Parse one frame into a JSON object or raise ProtocolError."""
    if isinstance(raw, bytes):
        raise ProtocolError("binary", "binary frames are not accepted; send JSON text")
    try:
        obj = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError("bad_json", f"malformed JSON: {str(exc)[:100]}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("bad_schema", "a message must be a JSON object")
    return obj


def _str(obj: Mapping, key: str, limit: int, *, required: bool = True,
         pattern: re.Pattern[str] | None = None) -> str | None:
    v = obj.get(key)
    if v is None:
        if required:
            raise ProtocolError("bad_schema", f"missing field {key!r}")
        return None
    if not isinstance(v, str):
        raise ProtocolError("bad_type", f"field {key!r} must be a string")
    if len(v) > limit:
        raise ProtocolError("too_long", f"field {key!r} is longer than {limit} characters")
    if pattern is not None and not pattern.fullmatch(v):
        raise ProtocolError("bad_value", f"field {key!r} has characters or a length not allowed")
    return v


def _seconds(obj: Mapping, key: str) -> float:
    v = obj.get(key)
    # bool is an int subclass; True as a time is a client bug, not 1.0 s.
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ProtocolError("bad_type", f"field {key!r} must be a number of seconds")
    v = float(v)
    if not math.isfinite(v) or not 0.0 <= v <= MAX_SECONDS:
        raise ProtocolError("bad_value", f"field {key!r} must be between 0 and {MAX_SECONDS:g}")
    return v


def _seq(obj: Mapping, key: str, default: int | None = None) -> int | None:
    v = obj.get(key, default)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_SEQ:
        raise ProtocolError("bad_type", f"field {key!r} must be a non-negative integer")
    return v


def parse_alert_body(alert_id: str, body: Any) -> AlertRecord:
    """Validate the `alert` object of an alert message (also used by the desk client)."""
    if not isinstance(body, dict):
        raise ProtocolError("bad_schema", "field 'alert' must be an object", ref=alert_id)
    try:
        start, end = _seconds(body, "start"), _seconds(body, "end")
        if end < start:
            raise ProtocolError("bad_value", "alert 'end' is before 'start'")
        return AlertRecord(
            id=alert_id,
            call_id=_str(body, "call_id", MAX_CALL_ID),  # type: ignore[arg-type]
            rule=_str(body, "rule", MAX_RULE, pattern=NAME_RE),  # type: ignore[arg-type]
            start=start,
            end=end,
            emitted=_seconds(body, "emitted"),
            text=_str(body, "text", MAX_TEXT),  # type: ignore[arg-type]
            evidence=_str(body, "evidence", MAX_EVIDENCE),  # type: ignore[arg-type]
            phrase=_str(body, "phrase", MAX_PHRASE, required=False),
            severity=_str(body, "severity", MAX_SEVERITY, required=False,
                          pattern=NAME_RE) or "major",
        )
    except ProtocolError as exc:
        raise ProtocolError(exc.code, exc.message, ref=alert_id) from None


def parse_message(raw: str | bytes) -> ClientMessage:
    """Parse and validate one client frame; raise ProtocolError on anything off-schema."""
    obj = decode(raw)
    kind = obj.get("type")
    if kind == "hello":
        role = obj.get("role")
        if role not in ("desk", "console"):
            raise ProtocolError("bad_value", "hello 'role' must be 'desk' or 'console'")
        token = obj.get("token")
        if token is None or token == "":
            raise ProtocolError("missing_token", "hello has no token")
        token = _str(obj, "token", MAX_TOKEN)
        if role == "desk":
            desk = _str(obj, "desk", 64, pattern=NAME_RE)
            return Hello(role="desk", token=token, desk=desk)  # type: ignore[arg-type]
        return Hello(role="console", token=token,  # type: ignore[arg-type]
                     since=_seq(obj, "since", 0) or 0,
                     ack_since=_seq(obj, "ack_since"),
                     name=_str(obj, "name", 64, required=False, pattern=NAME_RE) or "console",
                     tail=_seq(obj, "tail"),
                     epoch=_str(obj, "epoch", 64, required=False, pattern=ID_RE))
    if kind == "alert":
        alert_id = _str(obj, "id", 128, pattern=ID_RE)
        return AlertMsg(parse_alert_body(alert_id, obj.get("alert")))  # type: ignore[arg-type]
    if kind == "ack_alert":
        seq = _seq(obj, "seq")
        if seq is None:
            raise ProtocolError("bad_schema", "missing field 'seq'")
        return AckAlert(seq)
    if not isinstance(kind, str):
        raise ProtocolError("bad_schema", "missing field 'type'")
    raise ProtocolError("unknown_type", f"unknown message type {kind[:32]!r}")


def alert_body(alert: Alert | Mapping[str, Any]) -> dict:
    """The `alert` object a desk sends, from an events.Alert or a plain dict."""
    d = alert.to_dict() if isinstance(alert, Alert) else dict(alert)
    keys = ("call_id", "rule", "start", "end", "emitted", "text", "evidence", "phrase", "severity")
    return {k: d[k] for k in keys if d.get(k) is not None}


def dumps(obj: dict) -> str:
    # ensure_ascii=False keeps Chinese text readable and ~3x smaller on the wire.
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def error(code: str, message: str, ref: str | None = None) -> str:
    msg = {"type": "error", "code": code, "message": message}
    if ref is not None:
        msg["ref"] = ref
    return dumps(msg)
