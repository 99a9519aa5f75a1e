#!/usr/bin/env python3
"""Board update latency: desk event -> tile updated in a real Chromium, with many desks.

    python scripts/bench_board.py                      # 50 desks, 2 calls each, speed 1
    python scripts/bench_board.py --desks 10 --calls 1 --speed 2

The hub runs as a subprocess (`python -m monitor.hub`, transcripts live). The desks run in
another one (all 50 on one event loop, as `--worker`) through the whole live path (paced audio, VAD, tone detector, rules, the hub
client, redaction); only the recogniser reads the words from a script. Headless Debian
Chromium (/usr/bin/chromium, driven by Playwright) shows the console's board; a
MutationObserver records when each tile changes. For every desk event (a call starts, a
line of the transcript is sent) the latency is the time from the desk handing it to its
hub client to the first tile state in the browser that shows it. Prints p50/p95/max and
how many events were never shown (should be 0). Loopback only; bounded by the calls.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchlib import free_port, percentile

from monitor.asr.scripted import Line
from monitor.hub.protocol import TranscriptLine
from monitor.live.scripted_desk import ScriptedCall, replay_desk
from monitor.live.sinks import HubSink
from monitor.redact import redact

DESK_TOKEN = "bench-desk-token-0123456789"
CONSOLE_TOKEN = "bench-console-token-0123456789"
CHROMIUM = os.environ.get("MONITOR_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

SCRIPT = [("agent", 0.5, 2.0, "您好，中兴通讯！"), ("caller", 2.5, 4.5, "我想问一下宽带{n}号的费用。"),
          ("agent", 5.0, 7.5, "好的，我帮您查一下，这个套餐每月{n}元。"), ("caller", 8.0, 9.5, "我的电话是13812345678。"),
          ("agent", 10.0, 12.0, "这种小事也找我，你们自己处理一下。"), ("caller", 12.5, 14.0, "我要投诉！"),
          ("agent", 15.0, 17.0, "感谢您的来电，再见！")]
CALL_S = 18.5

# Every tile change, as the browser sees it (installed before the page's own script).
OBSERVER = """
window.__obs = [];
new MutationObserver((muts) => {
  const now = Date.now();
  const seen = new Set();
  for (const m of muts) {
    const n = m.target.nodeType === 1 ? m.target : m.target.parentElement;
    const tile = n && n.closest && n.closest('.tile');
    if (!tile || seen.has(tile)) continue;
    seen.add(tile);
    window.__obs.push([now, tile.dataset.desk, tile.dataset.state, tile.dataset.callId,
      (tile.querySelector('.words.agent .said') || {}).textContent || '',
      (tile.querySelector('.words.caller .said') || {}).textContent || '']);
  }
}).observe(document, {subtree: true, childList: true, attributes: true, characterData: true});
"""


def make_calls(desk: int, calls: int) -> list[ScriptedCall]:
    return [ScriptedCall(f"d{desk}-c{k}", [Line(r, a, b, t.format(n=desk * 10 + k))  # type: ignore[arg-type]
                                           for r, a, b, t in SCRIPT], CALL_S) for k in range(calls)]


class Events:
    """Desk events with the wall time they were handed to the hub client."""

    def __init__(self) -> None:
        self.items: list[tuple[float, str, str, str, str]] = []  # (t, desk, kind, call_id, text)

    def watch(self, sink: HubSink) -> None:
        client, desk = sink.client, sink.client.desk
        started, transcript = client.call_started, client.transcript

        async def call_started(call_id: str, *a: Any, **kw: Any) -> None:
            self.items.append((time.time(), desk, "start", call_id, ""))
            await started(call_id, *a, **kw)

        def on_line(line: TranscriptLine) -> bool:
            t = time.time()
            sent = transcript(line)
            if sent:
                self.items.append((t, desk, line.role, line.call_id, redact(line.text)[-200:]))
            return sent

        client.call_started = call_started  # type: ignore[method-assign]
        client.transcript = on_line  # type: ignore[method-assign]


def _only(events: Events, kind: str) -> Events:
    out = Events()
    out.items = [x for x in events.items if x[2] == kind]
    return out


def latencies(events: Events, obs: list[list]) -> tuple[list[float], int]:
    by_desk: dict[str, list[list]] = {}
    for o in obs:
        by_desk.setdefault(o[1], []).append(o)
    out, missing = [], 0
    for t, desk, kind, call_id, text in events.items:
        seen = None
        for at, _, state, call, agent, caller in by_desk.get(desk, []):
            if at / 1000 < t - 0.005:  # clocks are the same machine's; allow rounding
                continue
            shown = (state == "on_call" and call == call_id) if kind == "start" else \
                (call == call_id and (agent if kind == "agent" else caller) == text)
            if shown:
                seen = at / 1000
                break
        if seen is None:
            missing += 1
        else:
            out.append(max(0.0, seen - t) * 1000)
    return out, missing


def worker(args: argparse.Namespace) -> int:
    """The desks (run as a child process, so they do not share a GIL with the browser driver)."""
    events = Events()
    lag: list[float] = []
    tmp = Path(args.out).parent
    url = f"ws://127.0.0.1:{args.port}/ws"

    async def probe() -> None:  # how late the desks' event loop runs
        while True:
            t = time.monotonic()
            await asyncio.sleep(0.05)
            lag.append((time.monotonic() - t - 0.05) * 1000)

    async def one(i: int) -> None:
        await asyncio.sleep(random.Random(i).uniform(0, args.spread))
        await replay_desk(url, DESK_TOKEN, f"desk-{i:02d}", make_calls(i, args.calls),
                          tmp / f"desk-{i}.spool", speed=args.speed, on_sink=events.watch)

    async def all_desks() -> None:
        watch = asyncio.create_task(probe())
        await asyncio.gather(*(one(i) for i in range(args.desks)))
        watch.cancel()

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    asyncio.run(all_desks())
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime) / (time.monotonic() - t0)
    Path(args.out).write_text(json.dumps({"events": events.items, "lag": lag, "cpu": cpu}))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--desks", type=int, default=50)
    ap.add_argument("--calls", type=int, default=2, help="calls per desk, one after the other")
    ap.add_argument("--speed", type=float, default=1.0, help="audio pace: 2 = twice real time")
    ap.add_argument("--spread", type=float, default=10.0, help="seconds over which the desks start")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="bench-board-"))
    port = free_port()
    hub = subprocess.Popen([sys.executable, "-m", "monitor.hub", "--port", str(port), "--db", str(tmp / "hub.db"),
                            "--token", DESK_TOKEN, "--console-token", CONSOLE_TOKEN, "--transcripts", "live",
                            "--sync", "normal", "--log-level", "warning"], cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=open(tmp / "hub.log", "wb"))
    desks: subprocess.Popen | None = None
    try:
        time.sleep(1.0)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.add_init_script(OBSERVER)
            page.goto(f"http://127.0.0.1:{port}/#token={CONSOLE_TOKEN}")
            page.wait_for_selector('#status[data-state="online"]', timeout=15000)
            t0 = time.monotonic()
            out = tmp / "events.json"
            desks = subprocess.Popen([sys.executable, __file__, "--worker", "--port", str(port), "--out", str(out),
                                      "--desks", str(args.desks), "--calls", str(args.calls),
                                      "--speed", str(args.speed), "--spread", str(args.spread)], cwd=ROOT)
            budget = args.spread + args.calls * (CALL_S / args.speed + 5) + 60
            while desks.poll() is None and time.monotonic() - t0 < budget:
                page.wait_for_timeout(500)  # keep Playwright's loop (and the page) going
            if desks.poll() != 0:
                print("the desks failed or ran out of time", file=sys.stderr)
                return 1
            wall = time.monotonic() - t0
            page.wait_for_timeout(1000)
            obs = page.evaluate("window.__obs")
            browser.close()
        result = json.loads(out.read_text())
        events = Events()
        events.items = [tuple(x) for x in result["events"]]  # type: ignore[misc]
        lag, desk_cpu = result["lag"], result["cpu"]
        lat, missing = latencies(events, obs)
        start_lat, _ = latencies(_only(events, "start"), obs)
        starts = [x for x in events.items if x[2] == "start"]
        print(f"desks {args.desks}, calls {len(starts)}, transcript lines {len(events.items) - len(starts)}, "
              f"speed {args.speed:g}, wall {wall:.0f} s, desk process CPU {desk_cpu:.2f} cores")
        print(f"board latency (desk event -> tile updated in Chromium), {len(lat)} events: "
              f"p50 {percentile(lat, 50):.0f} ms, p95 {percentile(lat, 95):.0f} ms, "
              f"max {max(lat, default=float('nan')):.0f} ms; never shown: {missing}")
        print(f"  call starts only: p50 {percentile(start_lat, 50):.0f} ms, p95 {percentile(start_lat, 95):.0f} ms; "
              f"desk event loop lag p95 {percentile(lag, 95):.0f} ms ({args.desks} desks share one process here)")
        return 0 if lat and missing == 0 else 1
    finally:
        if desks is not None and desks.poll() is None:
            desks.kill()
        hub.terminate()
        try:
            hub.wait(10)
        except subprocess.TimeoutExpired:
            hub.kill()


if __name__ == "__main__":
    sys.exit(main())
