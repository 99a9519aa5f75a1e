"""Screenshots of a QA report page for the README (headless Chromium, Debian's /usr/bin/chromium).

    .venv/bin/python scripts/report_screenshots.py out/report.html docs/
writes docs/report.png (the top of the page), docs/report-agents.png (rankings) and
docs/report-call.png (the worst call opened, its first violation clicked).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM = os.environ.get("MONITOR_CHROMIUM", "/usr/bin/chromium")


def main(page: Path, out: Path) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        tab = browser.new_page(viewport={"width": 1400, "height": 900})
        tab.goto(page.resolve().as_uri())
        tab.wait_for_selector(".js-plotly-plot .main-svg")
        tab.wait_for_timeout(500)
        tab.screenshot(path=str(out / "report.png"))
        tab.locator("#agents").screenshot(path=str(out / "report-agents.png"))
        with_violation = tab.locator("#worst tr.open-call").filter(has_not_text="—").first
        target = with_violation.get_attribute("data-target")
        with_violation.click()
        call = tab.locator(f"#{target}")
        call.locator("ol.violations button.seek").first.click()
        tab.evaluate(f"document.querySelector('#{target} audio').pause()")
        tab.wait_for_timeout(300)
        call.screenshot(path=str(out / "report-call.png"))
        browser.close()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: report_screenshots.py REPORT.html OUTDIR")
    main(Path(sys.argv[1]), Path(sys.argv[2]))
