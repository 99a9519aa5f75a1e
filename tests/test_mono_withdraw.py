"""A live mono alert that the call's end does not hold is taken back, at the desk and on the board."""
from __future__ import annotations

import asyncio
import json

import numpy as np

from monitor.asr.scripted import Line, ScriptedTranscriber
from monitor.events import AudioFrame, EndOfStream
from monitor.live.desk import Desk, DeskOptions
from monitor.live.session import LiveOptions
from monitor.phrasebook import load_profile
from tests.test_vad import quiet, voiced

SR = 16000
ZTE = load_profile("zte")
# One mixed channel, two voices. The caller's "我不知道您这边能不能查到" follows the caller's own
# question, so the words and turns so far make it the agent's answer (over the live bar); the call's
# two voices, known only once enough lines are heard, make its side unsure (a finding to review).
AGENT_F0, CALLER_F0 = 260.0, 170.0
SCRIPT = [("agent", Line("agent", 0.5, 2.0, "您好，中兴通讯！")),
          ("caller", Line("agent", 2.6, 4.5, "我想问一下这个设备多少钱？")),
          ("caller", Line("agent", 5.1, 7.0, "我不知道您这边能不能查到。")),
          ("agent", Line("agent", 7.6, 9.4, "您别着急，我帮您查一下。")),
          ("caller", Line("agent", 10.0, 11.5, "型号是8100。")),
          ("agent", Line("agent", 12.0, 13.5, "请问您的设备是哪一年买的？")),
          ("caller", Line("agent", 14.0, 15.5, "我想是去年买的。")),
          ("agent", Line("agent", 16.0, 18.0, "好的，感谢您的来电，再见！")),
          ("caller", Line("agent", 18.6, 19.5, "好的，再见。"))]


def mono_audio(one_voice: bool, seconds: float = 21.0) -> np.ndarray:
    x = quiet(seconds)
    for who, ln in SCRIPT:
        burst = voiced(ln.end - ln.start, f0=AGENT_F0 if who == "agent" or one_voice else CALLER_F0)
        x[int(ln.start * SR):int(ln.start * SR) + len(burst)] = burst
    return x


class Board:
    """A sink that keeps what a supervisor would see: alerts, and the ones taken back."""

    def __init__(self) -> None:
        self.alerts: list = []
        self.withdrawn: list = []

    async def emit(self, alert) -> None:
        self.alerts.append(alert)

    async def withdraw(self, alert, reason: str) -> None:
        self.withdrawn.append((alert, reason))

    async def close(self) -> None:
        pass


async def desk_call(sinks: list, one_voice: bool = False, desk_name: str = "d1"):
    """The scripted mono call through an in-process desk with these sinks, on the audio's time."""
    x = mono_audio(one_voice)

    async def frames():
        b = int(0.1 * SR)
        for i in range(0, len(x), b):
            yield AudioFrame("agent", i / SR, x[i:i + b])
        yield EndOfStream(len(x) / SR)

    desk = Desk(ZTE, ScriptedTranscriber([ln for _, ln in SCRIPT]), sinks,
                DeskOptions(desk=desk_name, live=LiveOptions(mono_roles="auto")))
    try:
        return await desk.run_call(frames(), ("agent",), call_id="m1", speed=0)
    finally:
        await desk.close()


def run_mono_call(board: Board, one_voice: bool = False):
    return asyncio.run(desk_call([board], one_voice))


def test_a_live_mono_alert_whose_line_the_whole_call_makes_unsure_is_withdrawn_and_kept_for_review():
    board = Board()
    summary = run_mono_call(board)
    raised = [a for a in board.alerts if a.rule == "forbidden"]
    assert len(raised) == 1 and raised[0].role_confidence >= 0.9  # live, from the lines so far
    assert [a for a, _ in board.withdrawn] == raised
    reason = board.withdrawn[0][1]
    assert reason == "side_unsure"
    # the call's result agrees with the board: the phrase is left to review, not a violation
    assert [v.rule for v in summary.violations if v.phrase == "我不知道"] == ["forbidden_unsure"]
    assert [a.withdrawn for a in summary.alerts if a.rule == "forbidden"] == [reason]


def test_a_live_mono_alert_the_whole_call_holds_stands():
    board = Board()
    summary = run_mono_call(board, one_voice=True)  # no voice tells the sides apart: the words and turns stand
    assert [v.rule for v in summary.violations if v.phrase == "我不知道"] == ["forbidden"]
    assert [a.rule for a in board.alerts if a.phrase == "我不知道"] == ["forbidden"]
    assert board.withdrawn == []


def test_the_supervisors_hub_shows_the_live_alert_withdrawn_and_the_finding_to_review(tmp_path):
    import urllib.request

    from test_hub_support import CONSOLE_TOKEN, DESK_TOKEN, options

    from monitor.hub.server import Hub
    from monitor.live.sinks import HubSink

    def alerts(url: str) -> list[dict]:
        req = urllib.request.Request(f"{url}/api/alerts", headers={"Authorization": f"Bearer {CONSOLE_TOKEN}"})
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())["alerts"]

    async def go():
        async with Hub(options(tmp_path)) as hub:
            sink = HubSink(hub.url, DESK_TOKEN, "desk-7", tmp_path / "desk.spool")
            await desk_call([sink], desk_name="desk-7")  # closing the desk flushes its spool
            return await asyncio.to_thread(alerts, hub.http_url)

    got = {a["rule"]: a for a in asyncio.run(go()) if a.get("phrase") == "我不知道"}
    assert got["forbidden"]["withdrawn"] == "side_unsure"
    assert got["forbidden"]["acked_by"] == ""  # withdrawn by its desk, acknowledged by no one
    assert "withdrawn" not in got["forbidden_unsure"]


def test_the_desks_terminal_and_alert_log_say_the_alert_was_withdrawn_and_why(tmp_path):
    import io

    from monitor.live.sinks import JsonlSink, PrintSink

    out = io.StringIO()
    log = tmp_path / "alerts.jsonl"
    asyncio.run(desk_call([PrintSink(out), JsonlSink(log)]))
    lines = out.getvalue().splitlines()
    raised = next(k for k, ln in enumerate(lines) if ln.split("] ")[1].startswith("forbidden "))
    taken_back = next(k for k, ln in enumerate(lines) if "坐席端撤回" in ln)
    assert raised < taken_back
    assert "forbidden 服务忌语 “我不知道” 坐席端撤回：整通复判说话人存疑，转人工核实" in lines[taken_back]
    logged = [json.loads(ln) for ln in log.read_text().splitlines()]
    forb = [a for a in logged if a["rule"] == "forbidden"]
    # the alert, then the same alert (call, rule, phrase, start) with why it was withdrawn
    assert [a.get("withdrawn") for a in forb] == [None, "side_unsure"]
    assert len({(a["call_id"], a["rule"], a["phrase"], a["start"]) for a in forb}) == 1


def test_a_withdrawal_says_whose_line_the_whole_call_made_it():
    from monitor.events import Transcript, Violation
    from monitor.live.session import _why_withdrawn

    def line(role, conf):
        return Transcript(role, 5.0, 7.0, "我不知道您这边能不能查到。", role_confidence=conf)

    def found(rule):
        return Violation(rule, 5.1, 6.0, "agent", "我不知道您这边能不能查到。", "agent said “我不知道”: exact")

    assert _why_withdrawn(found("forbidden"), [line("caller", 0.73)]) == "caller_line"
    assert _why_withdrawn(found("forbidden"), [line("agent", 0.56)]) == "side_unsure"  # left to review
    assert _why_withdrawn(found("greeting"), [line("agent", 0.56)]) == "not_held"  # no review for it
    assert _why_withdrawn(found("forbidden"), []) == "not_held"
