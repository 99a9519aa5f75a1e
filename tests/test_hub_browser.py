"""The web console in a real headless Chromium (Debian's /usr/bin/chromium).

Fails (does not skip) when Chromium or Playwright is missing: the console page is a
first-class interface and must be tested in a browser.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import threading
import urllib.request
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest
from test_hub_support import CONSOLE_TOKEN, body, desk_ws, options, push

from monitor.hub.options import HubOptions
from monitor.hub.server import Hub

pytestmark = pytest.mark.timeout(90)

CHROMIUM = os.environ.get("MONITOR_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


class HubThread:
    """A hub on its own event loop in a thread, so Playwright's sync API can drive the test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.hub: Hub | None = None

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self, opts: HubOptions) -> Hub:
        self.hub = Hub(opts)
        self.call(self.hub.start())
        return self.hub

    def stop_hub(self) -> None:
        if self.hub is not None:
            self.call(self.hub.close())
            self.hub = None

    def close(self) -> None:
        self.stop_hub()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def require_browser() -> Any:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"Chromium not found at {CHROMIUM}: install Debian's browser with "
                    "`apt-get install -y chromium` (listed in scripts/apt-packages.txt)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright for Python is missing: pip install -r "
                    "scripts/requirements-hub.txt (never `playwright install`)")
    return sync_playwright


def open_console(browser: Any, http_url: str, errors: list[str], token: str = CONSOLE_TOKEN,
                 width: int = 1400, height: int = 700) -> Any:
    """A console page signed in with `token` and online; page errors go to `errors`."""
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": width, "height": height})
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{http_url}/#token={token}")
    expect(page.locator("#status")).to_have_attribute("data-state", "online", timeout=10000)
    return page


def api_alerts(http_url: str) -> list[dict]:
    req = urllib.request.Request(f"{http_url}/api/alerts",
                                 headers={"Authorization": f"Bearer {CONSOLE_TOKEN}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())["alerts"]


def test_console_page_live_filter_ack_and_resume(tmp_path: Path) -> None:
    sync_playwright = require_browser()
    from playwright.sync_api import expect

    ht = HubThread()
    try:
        hub = ht.start(options(tmp_path))
        port, http_url = hub.port, hub.http_url
        desk1 = ht.call(desk_ws(hub.url, "desk-1"))
        desk2 = ht.call(desk_ws(hub.url, "desk-2"))
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            errors: list[str] = []
            page = open_console(browser, http_url, errors)
            status = page.locator("#status")
            assert "token" not in page.url  # moved out of the address bar
            expect(page.locator("#login")).to_be_hidden()
            page.evaluate("window.__sameDocument = 42")
            page.click('.tab[data-view="alerts"]')  # the board is the first screen
            rows = page.locator("#alert-rows tr")

            # 1. A pushed alert appears without a reload, with desk, rule and the words.
            ht.call(push(desk1, "a:1", body(1, text="我不知道，你找领导去", phrase="找领导去")))
            expect(rows).to_have_count(1)
            first = rows.nth(0)
            expect(first.locator("td.desk")).to_have_text("desk-1")
            expect(first.locator("td.rule")).to_have_text("服务忌语")  # Chinese first
            expect(first).to_have_attribute("data-rule", "forbidden")
            expect(first.locator("td.text")).to_have_text("我不知道，你找领导去")
            expect(first.locator("td.text .phrase")).to_have_text("找领导去")
            expect(first.locator("td.evidence")).not_to_contain_text("%")  # a stereo desk's line
            ht.call(push(desk2, "b:1", body(2, rule="greeting", text="喂，哪位",
                                            phrase=None, evidence="rude opening", role_confidence=0.795)))
            expect(rows).to_have_count(2)
            expect(rows.nth(0).locator("td.desk")).to_have_text("desk-2")  # newest first
            # a mono desk's line says how sure it is the agent's, floored as the reports show it
            expect(rows.nth(0).locator("td.evidence")).to_contain_text("混合录音，这句是坐席的可能性 79%")
            # a finding to review says how sure in its own evidence: not twice
            shown = page.evaluate("""alertEvidence({rule: "forbidden_unsure", role_confidence: 0.55,
                evidence: "agent said “我不知道”: exact; whose line is unsure (the agent's at 0.55)"})""")
            assert shown == "混合录音中说“我不知道”的这句话是坐席的可能性为 0.55，请人工核实"

            # 2. Filters by desk and by rule.
            visible = page.locator("#alert-rows tr:not([hidden])")
            page.select_option("#desk-filter", "desk-1")
            expect(visible).to_have_count(1)
            expect(visible.nth(0).locator("td.desk")).to_have_text("desk-1")
            page.select_option("#desk-filter", "")
            page.select_option("#rule-filter", "greeting")
            expect(visible).to_have_count(1)
            expect(visible.nth(0).locator("td.text")).to_have_text("喂，哪位")
            page.select_option("#rule-filter", "")
            expect(visible).to_have_count(2)

            # 3. Acknowledge: the row shows it and the hub stored it. The console token here
            #    names no supervisor, so the hub records the default console name (a named
            #    token is tested in test_board_browser.py).
            row_a = page.locator('#alert-rows tr[data-seq="1"]')
            row_a.locator("button.ack-btn").click()
            row_a.locator("button.ack-confirm").click()
            expect(row_a).to_have_class(re.compile(r"\backed\b"))
            expect(row_a.locator(".acked-by")).to_contain_text("console")
            assert api_alerts(http_url)[0]["acked_by"] == "console"
            page.check("#unacked-only")
            expect(visible).to_have_count(1)
            page.uncheck("#unacked-only")

            # 4. The hub goes away and comes back on the same port: the page reconnects by
            #    itself, resumes after its last seq (no duplicates) and shows new alerts.
            ht.stop_hub()
            expect(status).to_have_attribute("data-state", "offline", timeout=5000)
            hub = ht.start(options(tmp_path, port=port))
            desk1 = ht.call(desk_ws(hub.url, "desk-1"))
            ht.call(push(desk1, "a:2", body(3, rule="closing", text="好的", phrase=None)))
            expect(status).to_have_attribute("data-state", "online", timeout=15000)
            expect(rows).to_have_count(3, timeout=10000)
            expect(rows.nth(0).locator("td.rule")).to_have_text("结束语")
            expect(row_a).to_have_class(re.compile(r"\backed\b"))
            assert page.evaluate("window.__sameDocument") == 42  # never reloaded
            page.screenshot(path=str(tmp_path / "console.png"), full_page=True)
            shutil.copy(tmp_path / "console.png", "/tmp/hub-console.png")
            assert errors == []

            # 5. Without a token the page asks for one; a wrong one is refused clearly.
            other = browser.new_page()
            other.goto(http_url + "/")
            expect(other.locator("#login")).to_be_visible()
            other.fill("#token-input", "wrong-token")
            other.click("#login button")
            expect(other.locator("#login-error")).to_contain_text("invalid token")
            other.fill("#token-input", CONSOLE_TOKEN)
            other.click("#login button")
            expect(other.locator("#status")).to_have_attribute("data-state", "online")
            expect(other.locator("#alert-rows tr")).to_have_count(3)
            browser.close()
    finally:
        ht.close()


def test_an_alert_its_desk_withdraws_is_struck_through_with_the_reason_live_and_after_a_reload(tmp_path: Path) -> None:
    sync_playwright = require_browser()
    from playwright.sync_api import expect

    ht = HubThread()
    try:
        # a supervisor whose console is named like a desk: still shown as the one who acknowledged
        hub = ht.start(options(tmp_path, console_names={"sup-token-named-like-a-desk-01": "desk-1"}))
        desk = ht.call(desk_ws(hub.url, "desk-1"))
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            errors: list[str] = []
            page = open_console(browser, hub.http_url, errors)
            page.click('.tab[data-view="alerts"]')
            ht.call(push(desk, "a:1", body(1, text="我不知道，你找领导去", phrase="找领导去", role_confidence=0.93)))
            ht.call(push(desk, "a:2", body(2, text="我不知道", phrase="不知道", role_confidence=0.95)))
            ht.call(push(desk, "a:3", body(3, text="不知道", phrase="不知道", role_confidence=0.91)))
            row = page.locator('#alert-rows tr[data-seq="1"]')
            expect(row).not_to_have_class(re.compile(r"\bwithdrawn\b"))

            async def withdraw(alert_id: str, reason: str) -> dict:
                await desk.send(json.dumps({"type": "withdraw", "id": f"w-{alert_id}", "alert": alert_id, "reason": reason}))
                return json.loads(await desk.recv())
            assert ht.call(withdraw("a:1", "caller_line"))["type"] == "ack"
            expect(row).to_have_class(re.compile(r"\bwithdrawn\b"))
            expect(row.locator(".withdrawn-why")).to_have_text("坐席端撤回：整通复判认定这句是客户说的")
            expect(row.locator(".acked-by")).to_have_count(0)  # no one acknowledged it
            assert row.locator("td.text").evaluate("e => getComputedStyle(e).textDecorationLine") == "line-through"
            assert row.locator("td.evidence").evaluate("e => getComputedStyle(e).textDecorationLine") == "line-through"
            other = page.locator('#alert-rows tr[data-seq="2"]')
            expect(other).not_to_have_class(re.compile(r"\bwithdrawn\b"))
            assert other.locator("td.text").evaluate("e => getComputedStyle(e).textDecorationLine") == "none"
            page.check("#unacked-only")
            expect(page.locator("#alert-rows tr:not([hidden])")).to_have_count(2)
            page.uncheck("#unacked-only")
            # A supervisor can still acknowledge it with a note, and a note being typed when the
            # withdrawal arrives is kept.
            page.locator('#alert-rows tr[data-seq="2"] button.ack-btn').click()
            page.locator('#alert-rows tr[data-seq="2"] input.ack-note').fill("听了录音")
            assert ht.call(withdraw("a:2", "side_unsure"))["type"] == "ack"
            second = page.locator('#alert-rows tr[data-seq="2"]')
            expect(second.locator(".withdrawn-why")).to_have_text("坐席端撤回：整通复判说话人存疑，转人工核实")
            expect(second.locator("input.ack-note")).to_have_value("听了录音")
            second.locator("button.ack-confirm").click()
            expect(second.locator(".acked-by")).to_contain_text("console")
            expect(second.locator(".ack-note-text")).to_have_text("听了录音")
            expect(second.locator(".withdrawn-why")).to_have_text("坐席端撤回：整通复判说话人存疑，转人工核实")
            assert api_alerts(hub.http_url)[1]["ack_note"] == "听了录音"
            # Acknowledged by a supervisor first, then withdrawn: both shown, the supervisor named.
            ht.call(http_ack(hub.http_url, "sup-token-named-like-a-desk-01", 3, "已提醒"))
            third = page.locator('#alert-rows tr[data-seq="3"]')
            expect(third.locator(".acked-by")).to_contain_text("desk-1")
            assert ht.call(withdraw("a:3", "side_unsure"))["type"] == "ack"
            expect(third.locator(".withdrawn-why")).to_have_text("坐席端撤回：整通复判说话人存疑，转人工核实")
            expect(third.locator(".acked-by")).to_contain_text("desk-1")
            expect(third.locator(".ack-note-text")).to_have_text("已提醒")
            # In English, and on a page opened later from the history it catches up on.
            later = open_console(browser, hub.http_url, errors)
            expect(later.locator("#status")).to_have_text("实时")
            later.select_option("#lang", "en")
            expect(later.locator("#status")).to_have_text("live")  # the status line follows the language
            later.click('.tab[data-view="alerts"]')
            expect(later.locator('#alert-rows tr[data-seq="1"] .withdrawn-why')).to_have_text(
                "withdrawn by the desk: the whole call gives this line to the caller")
            later.screenshot(path=str(tmp_path / "withdrawn.png"), full_page=True)
            assert errors == []
            browser.close()
    finally:
        ht.close()


async def http_ack(http_url: str, token: str, seq: int, note: str) -> dict:
    def post() -> dict:
        from urllib.parse import quote
        req = urllib.request.Request(f"{http_url}/api/ack?seq={seq}&note={quote(note)}", method="POST",
                                     headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())
    return await asyncio.to_thread(post)
