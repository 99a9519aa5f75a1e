"""Phone, ID-card and bank-card numbers are masked before they leave the desk (PIPL)."""
from __future__ import annotations

import asyncio
import json
import sqlite3
import urllib.request
from pathlib import Path

import pytest
from test_hub_support import CONSOLE_TOKEN, DESK_TOKEN, options, run

from monitor.asr.scripted import Line
from monitor.hub.server import Hub
from monitor.live.scripted_desk import ScriptedCall, replay_desk
from monitor.redact import redact


@pytest.mark.parametrize("said, shown", [
    ("我的电话是13812345678谢谢", "我的电话是138****5678谢谢"),
    ("手机 138 1234 5678", "手机 138****5678"),
    ("幺三八一二三四五六七八", "138****5678"),                       # spoken as numerals
    ("身份证号110105199001011234", "身份证号110***********1234"),
    ("身份证11010519900101123X。", "身份证110***********123X。"),
    ("卡号6222020200112233445", "卡号6222***********3445"),
    ("座机010-87654321", "座机010****4321"),
])
def test_numbers_that_name_a_person_are_masked(said: str, shown: str) -> None:
    assert redact(said) == shown


@pytest.mark.parametrize("said", ["三百元", "2024年3月", "订单号12345", "工号 123456", "您好，中兴通讯！", ""])
def test_short_numbers_and_ordinary_words_are_left_alone(said: str) -> None:
    assert redact(said) == said


PHONE, ID_CARD = "13812345678", "110105199001011234"
CALL = ScriptedCall("call-pii", [
    Line("agent", 0.5, 2.0, "喂，说吧。"),  # a rude opening: an alert that quotes the words
    Line("caller", 2.5, 5.5, f"我的电话是{PHONE}，身份证号{ID_CARD}。"),
    Line("agent", 6.0, 8.0, f"好的，电话{PHONE}，身份证{ID_CARD}，再见！"),
], 9.0)


def _get(url: str) -> dict:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {CONSOLE_TOKEN}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def _replay(tmp_path: Path, **hub_options: object) -> tuple[dict, dict, bytes]:
    async def go() -> tuple[dict, dict, bytes]:
        async with Hub(options(tmp_path, **hub_options)) as hub:
            await replay_desk(hub.url, DESK_TOKEN, "desk-1", [CALL], tmp_path / "d.spool", speed=8.0)
            alerts = await asyncio.to_thread(_get, f"{hub.http_url}/api/alerts")
            lines = await asyncio.to_thread(_get, f"{hub.http_url}/api/transcript?desk=desk-1&call_id=call-pii")
        # The hub is closed: every byte of its database files, WAL included.
        dump = b"".join(f.read_bytes() for f in sorted(tmp_path.glob("hub.sqlite3*")))
        db = sqlite3.connect(tmp_path / "hub.sqlite3")
        dump += "\n".join(db.iterdump()).encode()
        db.close()
        return alerts, lines, dump
    return run(go(), 60)


def test_a_phone_and_an_id_card_number_spoken_in_a_call_reach_the_hub_masked(tmp_path: Path) -> None:
    alerts, transcript, dump = _replay(tmp_path)
    said = [x["text"] for x in transcript["lines"]]
    assert "我的电话是138****5678，身份证号110***********1234。" in said
    assert any("138****5678" in t and "110***********1234" in t for t in said if t.startswith("好的"))
    assert alerts["alerts"], "the call raised alerts"
    for a in alerts["alerts"]:
        assert PHONE not in a["text"] + a["evidence"] and ID_CARD not in a["text"] + a["evidence"]
    # Nowhere in the hub's database either (alerts, transcripts, anything).
    assert PHONE.encode() not in dump and ID_CARD.encode() not in dump
    assert b"138****5678" in dump


def test_a_hub_told_to_keep_the_numbers_gets_them_unmasked(tmp_path: Path) -> None:
    _alerts, transcript, _dump = _replay(tmp_path, redact=False)
    assert any(PHONE in x["text"] for x in transcript["lines"])
