"""The supervisor's floor in a real headless Chromium: three desks replay three calls
through the whole live path (VAD, rules, hub client; the recogniser reads a script) into a
real hub, and the console shows them.

Set MONITOR_DOCS_SCREENSHOTS=1 to refresh docs/board.png, docs/transcript.png and
docs/phone.png from this run.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import time
import urllib.request
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from test_hub_browser import CHROMIUM, CHROMIUM_ARGS, HubThread, open_console, require_browser
from test_hub_support import DESK_TOKEN, options

from monitor.asr.scripted import Line
from monitor.live.scripted_desk import ScriptedCall, replay_desk

pytestmark = pytest.mark.timeout(120)

SUPERVISOR_TOKEN = "supervisor-wang-token-0001"
DOCS = Path(__file__).resolve().parent.parent / "docs"

GREET = Line("agent", 0.5, 2.0, "您好，中兴通讯！")
BYE = Line("agent", 15.0, 17.0, "感谢您的来电，再见！")
CALLS = {
    # The caller reads out a phone number and an ID-card number: they reach the hub masked.
    "desk-1": ScriptedCall("call-a", [GREET, Line("caller", 2.5, 5.5, "我的电话是13812345678，身份证号110105199001011234。"),
                                      Line("agent", 6.0, 8.0, "好的，我帮您查一下。"), BYE], 19.0),
    # The agent says a forbidden phrase: a major alert, a red mark on the tile.
    "desk-2": ScriptedCall("call-b", [GREET, Line("caller", 2.5, 4.5, "我的设备坏了。"),
                                      Line("agent", 5.0, 7.0, "这种小事也找我，你们自己处理一下。"), BYE], 19.0),
    # The caller threatens to complain: an escalation alert.
    "desk-3": ScriptedCall("call-c", [GREET, Line("caller", 2.5, 4.5, "你们这个太差了，我要投诉！"),
                                      Line("agent", 5.0, 7.0, "非常抱歉，我马上帮您处理。"), BYE], 19.0),
}
STAGGER = 1.5  # seconds between the desks' call starts


def api(http_url: str, path: str) -> Any:
    req = urllib.request.Request(http_url + path, headers={"Authorization": f"Bearer {SUPERVISOR_TOKEN}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def seconds_of(text: str) -> int:
    m = re.fullmatch(r"(?:(\d+):)?(\d\d):(\d\d)", text.strip())
    assert m, f"not a running duration: {text!r}"
    h, mm, ss = (int(g or 0) for g in m.groups())
    return h * 3600 + mm * 60 + ss


def widest(page: Any) -> float:
    """The right edge of the widest visible element (px): over the viewport = side scrolling."""
    return page.evaluate("""() => Math.max(document.documentElement.scrollWidth,
        ...[...document.querySelectorAll('body *')].filter(e => e.offsetParent !== null)
            .map(e => e.getBoundingClientRect().right))""")


def test_three_desks_on_the_board_transcript_escalation_ack_with_note_and_phone_layout(tmp_path: Path) -> None:
    sync_playwright = require_browser()
    from playwright.sync_api import expect

    ht, desks = HubThread(), HubThread()  # the desks get their own event loop
    runs: list[Future] = []
    try:
        hub = ht.start(options(tmp_path, console_names={SUPERVISOR_TOKEN: "王芳"}))
        http_url = hub.http_url
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            errors: list[str] = []
            page = open_console(browser, http_url, errors, SUPERVISOR_TOKEN, 1280, 800)
            expect(page.locator("#view-board")).to_be_visible()  # the board is the first screen

            # 1. Three desks start their calls 1.5 s apart: each tile is on a call within 2 s
            #    of its start, with the right running duration.
            started: dict[str, float] = {}
            for i, (name, call) in enumerate(CALLS.items()):
                started[name] = time.time()
                runs.append(asyncio.run_coroutine_threadsafe(
                    replay_desk(hub.url, DESK_TOKEN, name, [call], tmp_path / f"{name}.spool"), desks.loop))
                tile = page.locator(f'.tile[data-desk="{name}"]')
                expect(tile).to_have_attribute("data-state", "on_call", timeout=2000)
                assert time.time() - started[name] < 2.0
                expect(tile).to_have_attribute("data-call-id", call.call_id)
                if i < len(CALLS) - 1:
                    time.sleep(max(0.0, started[name] + STAGGER - time.time()))
            expect(page.locator(".tile")).to_have_count(3)
            time.sleep(1.2)  # let the durations tick
            desks_now = {d["desk"]: d for d in api(http_url, "/api/desks")["desks"]}
            for name in CALLS:
                call_started = desks_now[name]["call_started"]  # the desk's own clock
                assert 0 <= call_started - started[name] < 2.0
                shown = seconds_of(page.locator(f'.tile[data-desk="{name}"] .duration').inner_text())
                assert abs(shown - (time.time() - call_started)) <= 1.5, (name, shown)

            # 2. The forbidden phrase (desk-2) and the complaint (desk-3) put a red mark on
            #    their tiles, which sort first; the last words of each side are shown.
            tile2 = page.locator('.tile[data-desk="desk-2"]')
            expect(tile2.locator(".mark")).to_be_visible(timeout=12000)
            tile3 = page.locator('.tile[data-desk="desk-3"]')
            expect(tile3.locator(".mark")).to_be_visible(timeout=8000)
            expect(tile3).to_have_class(re.compile(r"\bescalation\b"))  # its own colour
            expect(tile2).not_to_have_class(re.compile(r"\bescalation\b"))
            expect(page.locator(".tile").nth(2)).to_have_attribute("data-desk", "desk-1")  # calm: last
            expect(tile3.locator(".words.caller .said")).to_contain_text("我要投诉")
            assert page.title().startswith("(2) ")  # unacknowledged major alerts + escalations
            assert page.evaluate("window.__notified") >= 2  # sound + notification were raised

            # 3. Opening desk-1's tile shows its live transcript, both sides in turn, with the
            #    phone and ID-card numbers masked.
            page.locator('.tile[data-desk="desk-1"]').click()
            lines = page.locator("#transcript-lines li")
            expect(lines.nth(0)).to_contain_text("您好，中兴通讯", timeout=5000)
            expect(lines.nth(1)).to_contain_text("138****5678", timeout=8000)
            expect(lines.nth(1)).to_contain_text("110***********1234")
            expect(lines.nth(1)).to_have_class(re.compile(r"\bcaller\b"))
            expect(lines.nth(2)).to_contain_text("我帮您查一下", timeout=8000)
            if os.environ.get("MONITOR_DOCS_SCREENSHOTS"):
                page.screenshot(path=str(tmp_path / "transcript.png"))
            assert "13812345678" not in page.content() and "110105199001011234" not in page.content()
            # desk-2's transcript highlights the phrase behind its alert.
            page.click("#transcript-back")
            tile2.click()
            expect(page.locator("#transcript-lines mark.phrase")).to_have_text("这种小事也找我", timeout=5000)
            page.click("#transcript-back")
            if os.environ.get("MONITOR_DOCS_SCREENSHOTS"):
                page.screenshot(path=str(tmp_path / "board.png"))

            # 4. The escalation call raised an escalation alert, in its own colour.
            page.click('.tab[data-view="alerts"]')
            esc = page.locator('#alert-rows tr[data-severity="escalation"]')
            expect(esc).to_have_count(1)
            expect(esc.locator("td.rule")).to_have_text("客户要投诉")
            expect(esc.locator("td.desk")).to_have_text("desk-3")
            assert page.evaluate("getComputedStyle(document.querySelector("
                                 "'#alert-rows tr[data-severity=escalation] td.rule')).color") \
                != page.evaluate("getComputedStyle(document.querySelector("
                                 "'#alert-rows tr[data-rule=forbidden] td.rule')).color")

            # 5. Acknowledging with a note stores the supervisor's name (from the token) and
            #    the note; the red mark goes.
            row = page.locator('#alert-rows tr[data-rule="forbidden"]')
            row.locator("button.ack-btn").click()
            row.locator("input.ack-note").fill("已提醒坐席注意服务用语")
            row.locator("button.ack-confirm").click()
            expect(row.locator(".acked-by")).to_contain_text("王芳")
            expect(row.locator(".ack-note-text")).to_have_text("已提醒坐席注意服务用语")
            stored = [a for a in api(http_url, "/api/alerts")["alerts"] if a["rule"] == "forbidden"]
            assert [(a["acked_by"], a["ack_note"]) for a in stored] == [("王芳", "已提醒坐席注意服务用语")]
            page.click('.tab[data-view="board"]')
            expect(tile2.locator(".mark")).to_be_hidden()
            assert page.title().startswith("(1) ")

            # 6. At phone width (390 px) every view fits without scrolling sideways.
            page.set_viewport_size({"width": 390, "height": 844})
            for view in ("board", "alerts", "history"):
                page.click(f'.tab[data-view="{view}"]')
                if view == "history":
                    page.click('#history-form button[type="submit"]')
                    n = len(api(http_url, "/api/alerts")["alerts"])
                    assert n >= 2
                    expect(page.locator("#history-rows tr")).to_have_count(n)
                assert widest(page) <= 390.5, view
            page.click('.tab[data-view="board"]')
            page.locator('.tile[data-desk="desk-1"]').click()
            expect(lines.nth(2)).to_be_visible()
            assert widest(page) <= 390.5, "transcript"
            page.click("#transcript-back")
            if os.environ.get("MONITOR_DOCS_SCREENSHOTS"):
                page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)

            # 7. English as an option: labels, rule names and evidence switch at once.
            page.select_option("#lang", "en")
            expect(page.locator('.tab[data-view="board"]')).to_have_text("Board")
            expect(page.locator('#alert-rows tr[data-rule="forbidden"] td.rule')).to_have_text("forbidden phrase")
            expect(page.locator('#alert-rows tr[data-rule="forbidden"] td.evidence')).to_have_text(
                "agent said “这种小事也找我”: exact")
            page.select_option("#lang", "zh")
            expect(page.locator('#alert-rows tr[data-rule="forbidden"] td.evidence')).to_have_text(
                "坐席说了“这种小事也找我”（完全一致）")
            assert errors == []
            browser.close()
        for r in runs:
            summaries = r.result(timeout=30)
            assert len(summaries) == 1
        if os.environ.get("MONITOR_DOCS_SCREENSHOTS"):
            DOCS.mkdir(exist_ok=True)
            for name in ("board.png", "transcript.png", "phone.png"):
                shutil.copy(tmp_path / name, DOCS / name)
    finally:
        for r in runs:
            r.cancel()
        desks.close()
        ht.close()
