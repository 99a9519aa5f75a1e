"""The QA report page in a real headless Chromium: offline, Chinese, ranked, and a click on a violation seeks."""
import json
import os
import re

import pytest

from monitor.html_report import render, write_html
from monitor.qa_summary import summarise
from tests.qa_support import week

pytestmark = pytest.mark.timeout(120)

CHROMIUM = os.environ.get("MONITOR_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--autoplay-policy=no-user-gesture-required"]


@pytest.fixture(scope="module")
def page_file(scored_dev_subset, tmp_path_factory):
    """A week of scripted calls plus real dev calls (with their recordings), as a page in its own folder."""
    tmp = tmp_path_factory.mktemp("html")
    _, rows = week(tmp)
    real = [json.loads(json.dumps(r.to_dict(), ensure_ascii=False)) for r, _ in scored_dev_subset.values()]
    for d in real:
        d["meta"] = {"agent": "刘洋", "team": "二组", "date": "2026-11-18"}
    (tmp / "site").mkdir()
    path = tmp / "site" / "report.html"
    write_html(path, rows + real)
    return path, rows + real


def test_summary_ranks_agents_and_teams_and_puts_the_worst_calls_first(tmp_path):
    _, rows = week(tmp_path)
    s = summarise(rows + [{"call": "bad.wav", "error": "bad.wav: not audio", "violations": []}])
    assert [r["score"] for r in s.calls] == sorted(r["score"] for r in rows)
    assert [(a.name, a.calls) for a in s.agents] == [("张伟", 1), ("王芳", 2)]  # worst mean score first
    assert s.agents[1].mean_score == pytest.approx((100 + 50) / 2)
    assert [(t.name, t.calls) for t in s.teams] == [("二组", 1), ("一组", 2)]
    assert [(d.name, d.calls) for d in s.days] == [("2026-11-16", 2), ("2026-11-17", 1)]
    forbidden = next(c for c in s.by_rule if c.key == "forbidden")
    assert (forbidden.violations, forbidden.calls, forbidden.deductions) == (4, 2, 60.0)
    assert any(c.key.startswith("000 §8") for c in s.by_seed)
    assert [f["call"] for f in s.failed] == ["bad.wav"]


def test_the_page_is_one_self_contained_file(page_file):
    path, rows = page_file
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=[\"']?(https?:)?//", text)  # no CDN, nothing fetched
    assert "Plotly" in text and len(text) > 1_000_000  # plotly.js is inside the page
    for label in ("分数分布", "每日趋势", "各规则违规", "各条规范违规", "坐席排名", "班组排名", "最差通话", "服务忌语"):
        assert label in text
    audio = re.findall(r"<audio[^>]* src='([^']+)'", text)
    assert len(audio) == len(rows)
    real = [a for a in audio if a.endswith((".flac", ".wav")) and "dev-" in a]
    assert real and all(not a.startswith("/") for a in real)  # relative to the page
    assert all((path.parent / a).resolve().is_file() for a in real)


def test_the_page_in_chromium_offline_clicking_a_violation_seeks_the_player(page_file):
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)")
    from playwright.sync_api import expect, sync_playwright

    path, rows = page_file
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        fetched: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.route(re.compile(r"^https?://"), lambda route: (fetched.append(route.request.url), route.abort()))
        page.goto(path.as_uri())
        expect(page.locator(".js-plotly-plot")).to_have_count(6)
        expect(page.locator(".js-plotly-plot .main-svg").first).to_be_visible()
        # the worst calls come first
        scores = [float(s) for s in page.locator("#worst tr.open-call td.score").all_inner_texts()]
        assert scores == sorted(scores) and len(scores) == len(rows)
        # agents are ranked with their call counts
        assert page.locator("#agents table.ranking tr").nth(1).locator("td").nth(0).inner_text() == "张伟"
        # open a real call with a violation from the worst-calls table
        real = next(i for i, r in enumerate(sorted(rows, key=lambda r: r["score"]))
                    if r["call"].startswith("dev-") and r["violations"])
        call_id = page.locator("#worst tr.open-call").nth(real).get_attribute("data-target")
        page.locator("#worst tr.open-call").nth(real).click()
        call = page.locator(f"#{call_id}")
        expect(call).to_have_attribute("open", "")
        expect(call.locator("table.transcript th.agent")).to_have_text("坐席")
        expect(call.locator("table.transcript th.caller")).to_have_text("客户")
        seek = call.locator("ol.violations button.seek").last
        t = float(seek.get_attribute("data-t"))
        seek.click()
        page.wait_for_function(f"document.querySelector('#{call_id} audio').readyState >= 1")
        now = page.evaluate(f"document.querySelector('#{call_id} audio').currentTime")
        assert t - 0.05 <= now <= t + 2.0, (t, now)
        # a marker on the timeline seeks too
        marker = call.locator(".timeline .v-marker").first
        t0 = float(marker.get_attribute("data-t"))
        marker.click()
        now = page.evaluate(f"document.querySelector('#{call_id} audio').currentTime")
        assert t0 - 0.05 <= now <= t0 + 2.0, (t0, now)
        browser.close()
    assert errors == [] and fetched == []


def test_report_command_needs_an_output_and_reads_its_report(tmp_path):
    path, _ = week(tmp_path)
    page = render([json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()], tmp_path)
    assert page.startswith("<!doctype html>") and "王芳" in page
