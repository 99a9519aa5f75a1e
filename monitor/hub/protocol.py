"""Wire format between desks, consoles and the hub (JSON text frames).

Client -> hub
  {"type": "hello", "role": "desk", "token": T, "desk": "desk-07", "heartbeat": 10}
                               (heartbeat: seconds between the desk's heartbeats; the hub
                               shows the desk stale after 3 missed ones. Default: hub option)
  {"type": "hello", "role": "console", "token": T, "since": 0, "ack_since": 0, "name": "sup-1",
   "tail": 1000, "epoch": E}   (ack_since: replay acks after it, default: acks from now on;
                               tail: a view showing only the newest N may skip older history;
                               epoch: the hub database `since` refers to)
  {"type": "alert", "id": "<desk-unique id>", "alert": {call_id, rule, start, end, emitted,
                                                      text, evidence, phrase?, severity?,
                                                      role_confidence?: 0-1, a mono desk's
                                                      line being the agent's}}
  {"type": "ack_alert", "seq": N, "note"?: "..."}       (console: acknowledge an alert, with an
                                                       optional note; who acks is the name
                                                       bound to the console token, else the
                                                       hello's name)
  {"type": "status", "status": {"state": "idle" | "on_call", "call_id"?, "call_started"?,
                                "profile"?, "peer"?, "score"?, "last_call"?: {"call_id", "score",
                                "ended", "violations"}}, "desk"?: D}
                     (desk: its state, sent after every (re)connect and on each change;
                      on_call needs call_id and call_started (unix s); an idle status drops
                      the call fields; last_call absent = keep the one the hub has;
                      desk, if given, must be the desk of the hello)
  {"type": "heartbeat"}                                 (desk: still alive, every N s)
  {"type": "withdraw", "id": "<desk-unique id>", "alert": "<id of one of its alerts>",
   "reason": "caller_line" | "side_unsure" | "not_held"}
                     (desk: an alert it raised live that the call's final judgement does not
                      hold: a mixed-mono line the whole call gives to the caller, or whose side
                      it leaves unsure; only when the welcome said "withdraw": true; answered
                      like an alert, with ack (seq: the alert's) or reject; only the desk's own
                      alerts, stored at most WITHDRAW_WINDOW_S ago)
  {"type": "transcript", "line": {"call_id", "role": "agent" | "caller", "start", "end", "text"}}
                     (desk: one recognised utterance of its current call; only when the
                      welcome said "transcripts": true. score in status: the call's running
                      score)

Hub -> client
  {"type": "welcome", "role": ..., "desk"?: ..., "last_seq": N, "last_ack_seq": M,
   "epoch": E, "since": S, "reset": bool, "status": true, "transcripts": bool, "redact": bool,
   "withdraw": true}
                    (console: S is where its stream starts; reset is true when the hello
                     named another epoch: forget the old seqs. desk: status true = this hub
                     takes status and heartbeat frames; transcripts: it takes transcript
                     frames; redact: mask phone/ID/bank numbers before sending; withdraw: it
                     takes withdraw frames)
  {"type": "ack", "id": ..., "seq": N, "duplicate": bool}   (desk: alert is stored)
  {"type": "reject", "id": ..., "reason": ...}              (desk: alert can never be stored)
  {"type": "alert", "seq": N, "id": ..., "desk": ..., ...}  (console)
  {"type": "acked", "ack_seq": M, "seq": N, "by": ..., "at": wall time, "note"?: ...,
   "withdrawn"?: reason}  (console; withdrawn: the desk took the alert back, it is no finding
                           (reason: a key of GET /api/labels "withdrawn"); by is "" until a
                           supervisor acknowledges it, before or after the withdrawal)
  {"type": "transcript", "desk": D, "call_id", "role", "start", "end", "text", "received"}
                    (console: a line of a desk's current call, live; GET /api/transcript?desk=D
                     returns the lines of its current or last call)
  {"type": "caught_up", "seq": N}          (console: history sent, live from here)
  {"type": "desk", "desk": D, "connected": bool, "stale": bool, "last_seen": unix s | null,
   "heartbeat": s, "on_call": bool, "call_id", "call_started", "profile", "peer", "score"
   (null when idle), "last_alert": {"seq", "at", "rule"} | null, "last_words": {"agent",
   "caller"} (the current call's last line of each side, when transcripts are live),
   "attention": N (the current call's unacknowledged major/critical/escalation alerts),
   "escalations": M (how many of those are escalations),
   "last_call": {"call_id", "score", "ended", "violations"} | null}
                    (console: one per known desk right after caught_up, then one whenever
                     a desk connects, disconnects, goes stale or back, or reports a new
                     status, or its call's "attention" changes (a major alert or
                     escalation arrives, one is acknowledged). Transcript lines do not
                     send one: the transcript frame says it.
                     GET /api/desks returns the same objects without "type")
  {"type": "error", "code": ..., "message": ...}

Everything a client sends is untrusted: every field is type- and length-checked here, and
JSON constants NaN/Infinity are refused, strings that are not valid Unicode (a lone
surrogate such as "\\ud800", which JSON escapes can carry but UTF-8 cannot store or send) are
refused, and numbers too large for a float are refused, so nothing odd reaches the store or
other clients.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Literal

# Close codes (4000-4999 are free for applications).
CLOSE_BAD_HELLO = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_HELLO_TIMEOUT = 4408
CLOSE_TOO_SLOW = 4429  # the console's bounded send queue overflowed: resume from last seq
CLOSE_POLICY = 1008  # too many protocol errors
CLOSE_TRY_AGAIN = 1013  # the hub is full: reconnect later

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
MAX_PROFILE = 64
MAX_PEER = 256  # a SIP URI with parameters
MAX_UNIX = 4102444800.0  # 2100-01-01: a wall-clock time beyond it is garbage
MAX_SCORE = 1e6
MAX_VIOLATIONS = 1_000_000
MAX_NOTE = 500
MIN_HEARTBEAT, MAX_HEARTBEAT = 0.05, 3600.0
# Why a desk may withdraw an alert (monitor.labels.WITHDRAWN words them).
WITHDRAW_REASONS = ("caller_line", "side_unsure", "not_held")
# A desk withdraws an alert when its call ends (a spooled withdrawal may wait out a hub outage
# with its alert): one stored longer ago than this is history, no longer the desk's to take back.
WITHDRAW_WINDOW_S = 2 * 3600.0


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
    heartbeat: float | None = None  # desk role: seconds between its heartbeats


@dataclass(frozen=True)
class Alert:
    """One alert, the one type for it from the desk that raises it to every console.

    The desk fills in what it heard; `id` is its desk-unique id once spooled, `seq` and
    `received` come from the hub when it is stored, `acked_*` when a supervisor acks it.
    """

    desk: str
    call_id: str
    rule: str
    start: float
    end: float
    emitted: float  # seconds into the call when the desk sent it
    text: str
    evidence: str
    phrase: str | None = None
    severity: str = "major"
    # A mixed-mono desk's line: how sure it is the agent's (0-1; None on a stereo desk).
    role_confidence: float | None = None
    id: str | None = None
    seq: int | None = None
    received: float | None = None  # hub wall clock
    acked_at: float | None = None
    acked_by: str | None = None
    ack_note: str | None = None
    withdrawn: str | None = None  # why the desk took it back (hub: once it has)

    # What a desk sends (the `alert` object of its frame); the rest is added on the way.
    BODY: ClassVar[tuple[str, ...]] = ("call_id", "rule", "start", "end", "emitted", "text", "evidence",
                                       "phrase", "severity", "role_confidence")

    def to_wire(self) -> dict:
        """Every field that is set (None left out)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def body(self) -> dict:
        return {k: getattr(self, k) for k in self.BODY if getattr(self, k) is not None}

    def to_message(self) -> dict:
        """The `alert` frame consoles get (and /api/alerts returns)."""
        return {"type": "alert", **self.to_wire()}

    @classmethod
    def from_wire(cls, alert_id: str, body: Any, desk: str = "") -> Alert:
        """A desk's `alert` object, validated as untrusted input (ProtocolError if not valid)."""
        return parse_alert_body(alert_id, body, desk)


@dataclass(frozen=True)
class AlertMsg:
    record: Alert


@dataclass(frozen=True)
class AckAlert:
    seq: int
    note: str | None = None


@dataclass(frozen=True)
class Withdraw:
    """A desk takes back one of its alerts (`alert`: the id it sent it with; `reason`: one of
    WITHDRAW_REASONS)."""

    id: str
    alert: str
    reason: str

    def to_wire(self) -> dict:
        return {"type": "withdraw", "id": self.id, "alert": self.alert, "reason": self.reason}

    @classmethod
    def from_wire(cls, obj: Mapping) -> Withdraw:
        wid = _str(obj, "id", 128, pattern=ID_RE)
        try:
            alert = _str(obj, "alert", 128, pattern=ID_RE)
            reason = _str(obj, "reason", 32)
        except ProtocolError as exc:
            raise ProtocolError(exc.code, exc.message, ref=wid) from None
        if reason not in WITHDRAW_REASONS:
            raise ProtocolError("bad_value", f"'reason' must be one of {', '.join(WITHDRAW_REASONS)}", ref=wid)
        return cls(wid, alert, reason)  # type: ignore[arg-type]


@dataclass(frozen=True)
class LastCall:
    """A desk's last finished call."""

    call_id: str
    score: float
    ended: float  # unix seconds
    violations: int

    def to_wire(self) -> dict:
        return {"call_id": self.call_id, "score": self.score, "ended": self.ended,
                "violations": self.violations}

    @classmethod
    def from_wire(cls, obj: Any) -> LastCall:
        if not isinstance(obj, dict):
            raise ProtocolError("bad_schema", "field 'last_call' must be an object")
        count = obj.get("violations")
        if isinstance(count, bool) or not isinstance(count, int) \
                or not 0 <= count <= MAX_VIOLATIONS:
            raise ProtocolError("bad_type", "field 'violations' must be a count "
                                            f"(0 to {MAX_VIOLATIONS})")
        return cls(call_id=_str(obj, "call_id", MAX_CALL_ID),  # type: ignore[arg-type]
                   score=_number(obj, "score", -MAX_SCORE, MAX_SCORE),
                   ended=_number(obj, "ended", 0.0, MAX_UNIX),
                   violations=count)


@dataclass(frozen=True)
class DeskStatus:
    """What a desk is doing, as it reports it (hub side: validated untrusted input)."""

    state: Literal["idle", "on_call"] = "idle"
    call_id: str | None = None
    call_started: float | None = None  # unix seconds
    profile: str | None = None
    peer: str | None = None  # the other party (number or name), when the desk knows it
    last_call: LastCall | None = None
    # The desk's softphone link when it follows one (e.g. "baresip connected", "baresip away":
    # while away no call is followed, which a supervisor must see).
    softphone: str | None = None
    score: float | None = None  # the current call's running score

    @property
    def on_call(self) -> bool:
        return self.state == "on_call"

    def to_wire(self) -> dict:
        d: dict[str, Any] = {"state": self.state}
        for k in ("call_id", "call_started", "profile", "peer", "softphone", "score"):
            if getattr(self, k) is not None:
                d[k] = getattr(self, k)
        if self.last_call is not None:
            d["last_call"] = self.last_call.to_wire()
        return d

    @classmethod
    def from_wire(cls, obj: Any) -> DeskStatus:
        if not isinstance(obj, dict):
            raise ProtocolError("bad_schema", "field 'status' must be an object")
        state = obj.get("state")
        if state not in ("idle", "on_call"):
            raise ProtocolError("bad_value", "status 'state' must be 'idle' or 'on_call'")
        last = obj.get("last_call")
        last_call = None if last is None else LastCall.from_wire(last)
        softphone = _label(obj, "softphone", MAX_PROFILE)
        if state == "idle":
            # Leftover call fields on an idle desk would show a call that is over.
            return cls(last_call=last_call, softphone=softphone)
        return cls(state="on_call",
                   call_id=_str(obj, "call_id", MAX_CALL_ID),  # same rule as in alerts
                   call_started=_number(obj, "call_started", 0.0, MAX_UNIX),
                   profile=_label(obj, "profile", MAX_PROFILE),
                   peer=_label(obj, "peer", MAX_PEER),
                   last_call=last_call, softphone=softphone,
                   score=None if obj.get("score") is None else
                   _number(obj, "score", -MAX_SCORE, MAX_SCORE))


@dataclass(frozen=True)
class StatusMsg:
    status: DeskStatus
    desk: str | None = None  # when given, must be the desk of the session


@dataclass(frozen=True)
class Heartbeat:
    pass


@dataclass(frozen=True)
class TranscriptLine:
    """One recognised utterance of a desk's call, the one type for it from desk to console."""

    call_id: str
    role: Literal["agent", "caller"]
    start: float
    end: float
    text: str
    desk: str | None = None  # set by the hub
    received: float | None = None  # hub wall clock

    BODY: ClassVar[tuple[str, ...]] = ("call_id", "role", "start", "end", "text")

    def body(self) -> dict:
        """The `line` object a desk sends."""
        return {k: getattr(self, k) for k in self.BODY}

    def to_wire(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def to_message(self) -> dict:
        return {"type": "transcript", **self.to_wire()}

    @classmethod
    def from_wire(cls, obj: Any) -> TranscriptLine:
        if not isinstance(obj, dict):
            raise ProtocolError("bad_schema", "field 'line' must be an object")
        role = obj.get("role")
        if role not in ("agent", "caller"):
            raise ProtocolError("bad_value", "line 'role' must be 'agent' or 'caller'")
        start, end = _seconds(obj, "start"), _seconds(obj, "end")
        if end < start:
            raise ProtocolError("bad_value", "line 'end' is before 'start'")
        return cls(call_id=_str(obj, "call_id", MAX_CALL_ID),  # type: ignore[arg-type]
                   role=role, start=start, end=end,
                   text=_str(obj, "text", MAX_TEXT))  # type: ignore[arg-type]


@dataclass(frozen=True)
class TranscriptMsg:
    line: TranscriptLine


ClientMessage = Hello | AlertMsg | AckAlert | StatusMsg | Heartbeat | TranscriptMsg | Withdraw


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


_SURROGATE = re.compile("[\ud800-\udfff]")


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
    if _SURROGATE.search(v):
        # Cannot be encoded as UTF-8: it would fail in the store and on every console.
        raise ProtocolError("bad_value", f"field {key!r} is not valid Unicode "
                                         "(lone surrogate)")
    if pattern is not None and not pattern.fullmatch(v):
        raise ProtocolError("bad_value", f"field {key!r} has characters or a length not allowed")
    return v


def _label(obj: Mapping, key: str, limit: int) -> str | None:
    """An optional bounded one-line printable string, shown as-is on the consoles;
    empty counts as absent."""
    v = _str(obj, key, limit, required=False)
    if v is not None and not v.isprintable():
        raise ProtocolError("bad_value", f"field {key!r} must be printable text on one line")
    return v or None


def _float(v: float) -> float:
    try:
        return float(v)
    except OverflowError:  # an int with hundreds of digits: out of range, not a crash
        return math.inf


def _number(obj: Mapping, key: str, lo: float, hi: float) -> float:
    v = obj.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ProtocolError("bad_type", f"field {key!r} must be a number")
    v = _float(v)
    if not math.isfinite(v) or not lo <= v <= hi:
        raise ProtocolError("bad_value", f"field {key!r} must be between {lo:g} and {hi:g}")
    return v


def _seconds(obj: Mapping, key: str) -> float:
    v = obj.get(key)
    # bool is an int subclass; True as a time is a client bug, not 1.0 s.
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ProtocolError("bad_type", f"field {key!r} must be a number of seconds")
    v = _float(v)
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


def parse_alert_body(alert_id: str, body: Any, desk: str = "") -> Alert:
    """Validate the `alert` object of an alert message (also used by the desk client)."""
    if not isinstance(body, dict):
        raise ProtocolError("bad_schema", "field 'alert' must be an object", ref=alert_id)
    try:
        start, end = _seconds(body, "start"), _seconds(body, "end")
        if end < start:
            raise ProtocolError("bad_value", "alert 'end' is before 'start'")
        return Alert(
            desk=desk,
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
            role_confidence=None if body.get("role_confidence") is None
            else _number(body, "role_confidence", 0.0, 1.0),
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
            heartbeat = None if obj.get("heartbeat") is None else \
                _number(obj, "heartbeat", MIN_HEARTBEAT, MAX_HEARTBEAT)
            return Hello(role="desk", token=token, desk=desk,  # type: ignore[arg-type]
                         heartbeat=heartbeat)
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
        note = _str(obj, "note", MAX_NOTE, required=False)
        return AckAlert(seq, note.strip() or None if note is not None else None)
    if kind == "status":
        return StatusMsg(DeskStatus.from_wire(obj.get("status")),
                         _str(obj, "desk", 64, required=False, pattern=NAME_RE))
    if kind == "heartbeat":
        return Heartbeat()
    if kind == "transcript":
        return TranscriptMsg(TranscriptLine.from_wire(obj.get("line")))
    if kind == "withdraw":
        return Withdraw.from_wire(obj)
    if not isinstance(kind, str):
        raise ProtocolError("bad_schema", "missing field 'type'")
    raise ProtocolError("unknown_type", f"unknown message type {kind[:32]!r}")


def alert_body(alert: Alert | Mapping[str, Any]) -> dict:
    """The `alert` object a desk sends, from an Alert or a plain dict."""
    if isinstance(alert, Alert):
        return alert.body()
    return {k: alert[k] for k in Alert.BODY if alert.get(k) is not None}


def dumps(obj: dict) -> str:
    # ensure_ascii=False keeps Chinese text readable and ~3x smaller on the wire.
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def error(code: str, message: str, ref: str | None = None) -> str:
    msg = {"type": "error", "code": code, "message": message}
    if ref is not None:
        msg["ref"] = ref
    return dumps(msg)
