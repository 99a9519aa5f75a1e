"""Scripted scored calls for the QA-report tests: real rules on typed transcripts, no audio or model."""
from __future__ import annotations

import json

from monitor.events import CallEvent, ToneEvent
from monitor.judge_input import JudgeInput
from monitor.phrasebook import load_profile
from monitor.pipeline import CallReport, judged_report
from monitor.rules.engine import ALL_RULES
from tests.scripted import agent, caller


def scripted_report(call: str, lines, duration: float, profile: str = "zte", hangup_by: str = "caller",
                    meta: dict[str, str] | None = None) -> CallReport:
    """A call judged by the real rules from (role, start, end, text) lines."""
    transcripts = [(agent if role == "agent" else caller)(s, e, text) for role, s, e, text in lines]
    tones = [ToneEvent("caller", duration - 1.5, duration - 0.5, "busy_450")] if hangup_by == "caller" else []
    events = [CallEvent(duration - 1.0, "hangup", "agent")] if hangup_by == "agent" else []
    p = load_profile(profile)
    report = judged_report(call, p, JudgeInput(
        roles=("agent", "caller"), direction="inbound", rules=ALL_RULES, transcripts=transcripts,
        confirmed_tones=tones, tones=tones, events=events, duration=duration, path=f"calls/{call}",
        hotwords=p.hotwords))
    report.meta = dict(meta or {})
    return report


GOOD = [("agent", 0.5, 2.5, "您好，中兴通讯，请问有什么可以帮您？"), ("caller", 3.0, 6.0, "我家宽带断了"),
        ("agent", 6.5, 9.0, "好的，我帮您查一下"), ("caller", 9.5, 10.5, "好的"),
        ("agent", 11.0, 13.0, "感谢您的来电，再见")]
RUDE = [("agent", 0.5, 1.5, "喂"), ("caller", 2.0, 5.0, "我家宽带断了"),
        ("agent", 4.0, 7.0, "我也没办法，这个我不管"), ("caller", 7.5, 9.0, "那怎么办"),
        ("agent", 9.5, 10.5, "你自己看着办")]


def week(tmp_path):
    """Three scripted calls of two agents over two days, written as a JSONL report; returns (path, rows)."""
    reports = [
        scripted_report("2026-11-16_王芳_001.wav", GOOD, 15.0,
                        meta={"agent": "王芳", "team": "一组", "date": "2026-11-16", "queue": "宽带"}),
        scripted_report("2026-11-16_张伟_002.wav", RUDE, 12.0, hangup_by="agent",
                        meta={"agent": "张伟", "team": "二组", "date": "2026-11-16", "queue": "综合"}),
        scripted_report("2026-11-17_王芳_003.wav", RUDE, 12.0,
                        meta={"agent": "王芳", "team": "一组", "date": "2026-11-17"}),
    ]
    rows = [json.loads(json.dumps(r.to_dict(), ensure_ascii=False)) for r in reports]
    path = tmp_path / "week.jsonl"
    path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in rows), encoding="utf-8")
    return path, rows
