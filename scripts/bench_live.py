"""Live-path benchmark: the dev corpus replayed in real time into a real hub.

Starts `monitor hub`, then desk processes (`monitor replay --realtime --hub ...`),
one per profile of the corpus (so three desks run side by side), each replaying
its calls one after another at real time. Prints:
- alert latency (emitted - end, seconds into the call) p50/p95 for alerts raised
  while the call goes on, and separately for the end-of-call rules (closing,
  hangup: emitted - call end) and greeting alerts (emitted - deadline);
- agreement with batch scoring (`monitor score` on the same files, measured in
  the same run): share of violations found by both (same rule and phrase,
  start within 3 s);
- mean CPU of each desk process (% of one core) and its peak RSS.

    .venv/bin/python scripts/bench_live.py [--corpus DIR] [--speed 1] [--calls N]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

import psutil
from benchlib import free_port, percentile

REPO = Path(__file__).resolve().parents[1]
MONITOR = str(REPO / ".venv" / "bin" / "monitor")
TOKEN = "bench-live-token"


def watch(procs: dict[str, psutil.Popen]) -> dict[str, dict]:
    """Poll the desk processes until they end: CPU seconds, wall, peak RSS."""
    stats = {k: {"peak_rss": 0, "cpu": 0.0, "t0": time.monotonic(), "wall": 0.0} for k in procs}
    running = dict(procs)
    while running:
        for k, p in list(running.items()):
            try:
                mem = p.memory_info().rss
                cpu = p.cpu_times()
                stats[k]["peak_rss"] = max(stats[k]["peak_rss"], mem)
                stats[k]["cpu"] = cpu.user + cpu.system
            except psutil.NoSuchProcess:
                pass
            if p.poll() is not None:
                stats[k]["wall"] = time.monotonic() - stats[k]["t0"]
                del running[k]
        time.sleep(0.25)
    return stats


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=Path(os.environ.get("MONITOR_CORPUS")
                                                          or REPO.parent / "shared" / "corpus" / "dev"))
    ap.add_argument("--speed", type=float, default=1.0, help="replay speed (1 = real time)")
    ap.add_argument("--calls", type=int, default=0, help="only the first N calls (0 = all)")
    a = ap.parse_args()
    calls = []
    for line in (a.corpus / "manifest.jsonl").read_text().splitlines():
        m = json.loads(line)
        labels = json.loads((a.corpus / m["labels"]).read_text())
        calls.append((a.corpus / m["audio"], labels))
    if a.calls:
        calls = calls[:a.calls]
    by_profile: dict[str, list[Path]] = defaultdict(list)
    for path, labels in calls:
        by_profile[labels["profile"]].append(path)
    durations = {p.stem: labels["duration"] for p, labels in calls}

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        port = free_port()
        hub = subprocess.Popen([MONITOR, "hub", "--port", str(port), "--db", str(tmp / "hub.sqlite3"),
                                "--token", TOKEN, "--log-level", "warning"])
        try:
            time.sleep(1.5)
            # Batch scoring of the same calls, for the agreement figure.
            batch_reports = {}
            for profile, files in by_profile.items():
                out = tmp / f"batch-{profile}.jsonl"
                subprocess.run([MONITOR, "score", *map(str, files), "--profile", profile, "--out", str(out),
                                "--quiet", "--no-progress"], check=True, capture_output=True)
                for line in out.read_text().splitlines():
                    d = json.loads(line)
                    batch_reports[Path(d["call"]).stem] = d["violations"]
            desks = {}
            for profile, files in by_profile.items():
                desks[profile] = psutil.Popen(
                    [MONITOR, "replay", *map(str, files), "--profile", profile, "--realtime", "--speed",
                     str(a.speed), "--hub", f"ws://127.0.0.1:{port}/ws", "--token", TOKEN, "--desk",
                     f"desk-{profile}", "--spool", str(tmp / f"{profile}.spool"),
                     "--out", str(tmp / f"live-{profile}.jsonl")],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            stats = watch(desks)
            for k, p in desks.items():
                if p.returncode != 0:
                    sys.exit(f"bench: desk {k} failed: {p.stderr.read().decode()[-800:]}")
            req = urllib.request.Request(f"http://127.0.0.1:{port}/api/alerts?since=0&limit=100000",
                                         headers={"Authorization": f"Bearer {TOKEN}"})
            data = json.loads(urllib.request.urlopen(req, timeout=30).read())
            alerts = data["alerts"] if isinstance(data, dict) else data
        finally:
            hub.terminate()
            hub.wait(10)

    during, end_rules, greeting = [], [], []
    for al in alerts:
        if al["rule"] in ("closing", "hangup", "closing_offer"):
            end_rules.append(al["emitted"] - durations[al["call_id"]])
        elif al["rule"] == "greeting":
            greeting.append(al["emitted"] - 5.0)
        else:
            during.append(al["emitted"] - al["end"])
    live: dict[str, list[dict]] = defaultdict(list)
    for al in alerts:
        live[al["call_id"]].append(al)
    both = only_batch = only_live = 0
    differences = []
    for cid, bv in batch_reports.items():
        lv = [x for x in live.get(cid, [])]
        used = set()
        for v in bv:
            hit = next((j for j, x in enumerate(lv) if j not in used and x["rule"] == v["rule"]
                        and x.get("phrase") == v.get("phrase") and abs(x["start"] - v["start"]) <= 3.0), None)
            if hit is None:
                only_batch += 1
                differences.append(f"batch only: {cid} {v['rule']} {v.get('phrase') or ''} @{v['start']}")
            else:
                used.add(hit)
                both += 1
        only_live += len(lv) - len(used)
        differences += [f"live only:  {cid} {x['rule']} {x.get('phrase') or ''} @{x['start']}"
                        for j, x in enumerate(lv) if j not in used]
    total = both + only_batch + only_live
    audio = sum(durations[p.stem] for _, files in by_profile.items() for p in files)
    print(f"calls                {len(calls)} ({audio:.0f} s of audio), {len(desks)} desks side by side, "
          f"speed {a.speed:g}")
    print(f"alerts at the hub    {len(alerts)}")
    print(f"latency in call      p50 {percentile(during, 50):.2f} s  p95 {percentile(during, 95):.2f} s  "
          f"(emitted - end; {len(during)} alerts; target p95 <= 1.5 s)")
    print(f"greeting             p50 {percentile(greeting, 50):.2f} s  max {max(greeting, default=float('nan')):.2f} s "
          f"after the 5 s deadline ({len(greeting)} alerts; the deadline waits for words still being said)")
    print(f"end-of-call rules    p50 {percentile(end_rules, 50):.2f} s  p95 {percentile(end_rules, 95):.2f} s "
          f"after the call ended ({len(end_rules)} alerts)")
    print(f"agreement with batch {both / total * 100 if total else 100:.1f}% ({both} same, {only_batch} batch only, "
          f"{only_live} live only; target >= 95%)")
    for d in differences:
        print(f"    {d}")
    slow = sorted((al["emitted"] - al["end"], al["call_id"], al["rule"]) for al in alerts
                  if al["rule"] not in ("closing", "hangup", "closing_offer", "greeting"))[-3:]
    print("slowest in-call alerts " + ", ".join(f"{c} {r} {lat:.2f} s" for lat, c, r in slow))
    for k, st in stats.items():
        cpu = st["cpu"] / st["wall"] * 100 if st["wall"] else 0
        print(f"desk {k:<10}      mean CPU {cpu:.0f}% of one core, peak RSS {st['peak_rss'] / 2**20:.0f} MiB "
              f"(targets <= 50%, <= 800 MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
