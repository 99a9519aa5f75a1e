"""Message validation, token checks and the Origin rule, without a network."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
from test_hub_support import body

from monitor.hub.auth import Authenticator, bearer_token, origin_allowed
from monitor.hub.protocol import (
    Alert,
    AlertMsg,
    Hello,
    ProtocolError,
    alert_body,
    dumps,
    parse_message,
)


def msg(**kw: object) -> str:
    return json.dumps(kw)


def test_valid_messages_parse() -> None:
    h = parse_message(msg(type="hello", role="console", token="t", since=5, name="sup-1"))
    assert h == Hello(role="console", token="t", since=5, name="sup-1")
    a = parse_message(msg(type="alert", id="desk-1:1", alert=body(3)))
    assert isinstance(a, AlertMsg) and a.record.start == 3.0 and a.record.phrase == "找领导去"


@pytest.mark.parametrize("raw,code", [
    ("{not json", "bad_json"),
    ("[1, 2]", "bad_schema"),
    (b"\x00binary", "binary"),
    (msg(type="nope"), "unknown_type"),
    (msg(role="desk"), "bad_schema"),
    (msg(type="hello", role="admin", token="t"), "bad_value"),
    (msg(type="hello", role="desk", token="t"), "bad_schema"),            # no desk name
    (msg(type="hello", role="desk", token="t", desk="../etc"), "bad_value"),
    (msg(type="hello", role="desk", token="t", desk="x" * 65), "too_long"),
    (msg(type="hello", role="console", token="t", since=-1), "bad_type"),
    (msg(type="hello", role="console", token="t", since="5"), "bad_type"),
    (msg(type="hello", role="console"), "missing_token"),
    (msg(type="ack_alert"), "bad_schema"),
    (msg(type="ack_alert", seq=True), "bad_type"),
])
def test_bad_messages_are_refused(raw: str | bytes, code: str) -> None:
    with pytest.raises(ProtocolError) as exc:
        parse_message(raw)
    assert exc.value.code == code


@pytest.mark.parametrize("field,value,code", [
    ("start", "1.0", "bad_type"),
    ("start", True, "bad_type"),
    ("start", -1, "bad_value"),
    ("end", 1e12, "bad_value"),
    ("text", 5, "bad_type"),
    ("text", "字" * 4001, "too_long"),
    ("rule", "rule with spaces", "bad_value"),
    ("call_id", None, "bad_schema"),
    ("role_confidence", 1.5, "bad_value"),
    ("role_confidence", "0.9", "bad_type"),
    ("role_confidence", True, "bad_type"),
])
def test_bad_alert_fields_carry_the_alert_id(field: str, value: object, code: str) -> None:
    b = body(1)
    b[field] = value
    with pytest.raises(ProtocolError) as exc:
        parse_message(msg(type="alert", id="d:1", alert=b))
    assert exc.value.code == code and exc.value.ref == "d:1"


def test_nan_and_infinity_are_refused() -> None:
    raw = '{"type":"alert","id":"d:1","alert":{"call_id":"c","rule":"r","start":NaN,' \
          '"end":1,"emitted":1,"text":"t","evidence":"e"}}'
    with pytest.raises(ProtocolError):
        parse_message(raw)


def test_alert_body_from_event_drops_desk_and_seq() -> None:
    a = Alert("desk-9", "c1", "closing", 1.0, 2.0, 2.5, "好的", "no 再见", seq=7)
    b = alert_body(a)
    assert "desk" not in b and "seq" not in b and b["rule"] == "closing"


def test_authenticator_roles_and_bound_desks() -> None:
    auth = Authenticator({"dtok": None, "bound": "desk-3"}, {"ctok"})
    assert auth.check("desk", "dtok", "any-desk").ok
    assert auth.check("console", "ctok").ok
    # Every refusal looks the same; the log detail says why.
    assert auth.check("console", "dtok").code == 4401
    assert auth.check("console", "dtok").detail == "a desk token cannot open a console"
    assert auth.check("desk", "ctok", "d").code == 4401
    assert auth.check("desk", "wrong", "d").code == 4401
    assert auth.check("console", "").code == 4401
    assert auth.check("desk", "bound", "desk-3").ok
    assert auth.check("desk", "bound", "desk-4").code == 4401
    assert {auth.check(*a).reason for a in [("console", "dtok"), ("desk", "ctok", "d"),
                                             ("desk", "wrong", "d"), ("desk", "bound", "x")]
            } == {"invalid token"}
    assert auth.check("console", "ctok\u00e9").code == 4401  # non-ASCII is just wrong
    with pytest.raises(ValueError):
        Authenticator({}, {"ctok"})


def test_bearer_header() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token("Bearer") is None
    assert bearer_token(None) is None


def test_origin_rule() -> None:
    assert origin_allowed(None, "127.0.0.1:8765", False, ())  # not a browser
    assert origin_allowed("http://127.0.0.1:8765", "127.0.0.1:8765", False, ())
    assert not origin_allowed("http://evil.example", "127.0.0.1:8765", False, ())
    assert not origin_allowed("http://127.0.0.1:9999", "127.0.0.1:8765", False, ())
    assert not origin_allowed("http://127.0.0.1:8765", "127.0.0.1:8765", True, ())  # scheme
    assert origin_allowed("https://hub.local", "hub.local", True, ())  # default port
    assert origin_allowed("http://wall.local", "127.0.0.1:8765", False, ("http://wall.local",))
    assert not origin_allowed("null", "127.0.0.1:8765", False, ())


def test_one_alert_type_from_the_desk_through_the_wire_to_the_console() -> None:
    raised = Alert("desk-9", "c1", "forbidden", 1.0, 2.0, 2.5, "我不知道", "forbidden phrase", phrase="不知道")
    msg = parse_message(dumps({"type": "alert", "id": "desk-9:1", "alert": raised.body()}))
    assert isinstance(msg, AlertMsg)
    # what the hub parses is the desk's alert, less what the hub adds
    assert replace(msg.record, desk="desk-9") == replace(raised, id="desk-9:1")
    stored = replace(msg.record, desk="desk-9", seq=5, received=1.7e9)
    frame = stored.to_message()
    assert frame["type"] == "alert" and frame["seq"] == 5 and frame["phrase"] == "不知道"
    assert Alert(**{k: v for k, v in frame.items() if k != "type"}) == stored


def test_a_mono_desks_alert_carries_how_sure_its_line_is_the_agents() -> None:
    raised = Alert("desk-9", "c1", "forbidden", 1.0, 2.0, 2.5, "不可能", "agent said “不可能”: exact",
                   phrase="不可能", role_confidence=0.93)
    msg = parse_message(dumps({"type": "alert", "id": "desk-9:2", "alert": raised.body()}))
    assert isinstance(msg, AlertMsg) and msg.record.role_confidence == 0.93
    frame = replace(msg.record, desk="desk-9", seq=6, received=1.7e9).to_message()
    assert frame["role_confidence"] == 0.93
    # a stereo desk's alert has none, on the wire too
    assert "role_confidence" not in replace(raised, role_confidence=None).body()


def test_the_terminals_say_how_sure_a_mono_alerts_line_is_the_agents() -> None:
    """The supervisor's terminal console and the desk's own terminal, as on the web console."""
    import asyncio
    import io

    from monitor.hub.console_tui import format_alert
    from monitor.live.sinks import PrintSink

    mono = Alert("desk-9", "c1", "forbidden", 1.0, 2.0, 2.5, "不可能", "agent said “不可能”: exact",
                 phrase="不可能", role_confidence=0.799, seq=3, received=1.7e9)
    stereo = replace(mono, role_confidence=None)
    assert format_alert(mono.to_message()).endswith("[混合录音，这句是坐席的可能性 79%]")
    assert format_alert(mono.to_message(), "en").endswith("[mixed mono: the agent's line at 79%]")
    assert "%" not in format_alert(stereo.to_message())
    out = io.StringIO()
    sink = PrintSink(out)
    asyncio.run(sink.emit(mono))
    asyncio.run(sink.emit(stereo))
    first, second = out.getvalue().splitlines()
    assert "坐席的可能性 79%" in first and "%" not in second
    # a finding to review states how sure in its own evidence, once and floored the same
    # (an outside tester saw "0.80" there beside "79%")
    from monitor.events import Transcript
    from monitor.phrasebook import load_profile
    from monitor.rules import RuleEngine

    engine = RuleEngine(load_profile("zte"))
    assert engine.on_transcript(Transcript(role="agent", start=1.0, end=2.5, text="我也没办法", role_confidence=0.799)) == []
    (review,) = [v for v in engine.end(3.0) if v.rule == "forbidden_unsure"]
    assert review.evidence.endswith("(the agent's at 0.79)")
    alert = Alert("desk-9", "c1", review.rule, review.start, review.end, 3.0, review.text, review.evidence,
                  phrase=review.phrase, role_confidence=review.role_confidence, seq=4, received=1.7e9)
    line = format_alert(alert.to_message())
    assert "0.79" in line and "%" not in line
