"""Alert latency and desk cost beside a real softphone, next to `monitor replay` in the same run.

For each sample call: two baresip user agents on loopback place it twice over real
SIP with G.711 (PCMU) (the caller hangs up first, then the agent does), and a desk
(`monitor live --softphone baresip://...`) captures it from PulseAudio devices and
sends its alerts to a hub. Then the same recording goes through `monitor replay
--realtime` into a hub. For both paths it prints:
- alert latency p50/p95 of alerts raised while the call goes on (emitted - end of the
  words, seconds into the call) and of greeting alerts (emitted - the 5 s deadline);
- the desk's mean CPU (% of one core) and peak RSS.

    .venv/bin/python scripts/bench_softphone.py [--calls jingyi-rude,demo-zte]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchlib import percentile

from tests.live_support import MONITOR, hub_alerts, hub_process
from tests.softphone_e2e import PlannedCall, run_softphone_desk

END_RULES = ("closing", "hangup", "closing_offer")


def latencies(alerts: list[dict]) -> tuple[list[float], list[float]]:
    during = [a["emitted"] - a["end"] for a in alerts if a["rule"] not in END_RULES + ("greeting",)]
    greeting = [a["emitted"] - 5.0 for a in alerts if a["rule"] == "greeting"]
    return during, greeting


def replay(tmp: Path, recording: Path, profile: str) -> tuple[list[dict], float, float, int]:
    with hub_process(tmp) as (ws_url, http, token):
        t0 = time.monotonic()
        desk = psutil.Popen(MONITOR + ["replay", str(recording), "--profile", profile, "--realtime",
                                       "--hub", ws_url, "--token", token, "--desk", "replay",
                                       "--spool", str(tmp / "replay.spool")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        peak, cpu = 0, 0.0
        while desk.poll() is None:
            try:
                peak = max(peak, desk.memory_info().rss)
                t = desk.cpu_times()
                cpu = t.user + t.system
            except psutil.NoSuchProcess:
                break
            time.sleep(0.25)
        if desk.returncode != 0:
            sys.exit(f"bench: replay failed: {desk.stderr.read().decode()[-800:]}")
        return hub_alerts(http, token), cpu, time.monotonic() - t0, peak


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=Path, default=REPO / "samples")
    ap.add_argument("--calls", default="jingyi-rude,demo-zte,tel-unicom", help="sample calls (comma separated)")
    a = ap.parse_args()
    rows = {"baresip (G.711, sound devices)": ([], [], 0.0, 0.0, 0),
            "monitor replay --realtime": ([], [], 0.0, 0.0, 0)}
    for name in a.calls.split(","):
        labels = json.loads((a.samples / f"{name}.json").read_text())
        recording = a.samples / labels["audio"]
        ends = labels["hangup"]["t"] if labels.get("hangup") else labels["duration"]
        with tempfile.TemporaryDirectory() as tmp:
            run = run_softphone_desk(Path(tmp), recording, labels,
                                     [PlannedCall(), PlannedCall(agent_hangs_up_at=max(3.0, ends - 1.0))],
                                     labels["profile"])
            if run.desk_returncode != 0:
                sys.exit(f"bench: desk failed on {name}: {run.desk_err[-800:]}")
            (Path(tmp) / "replay").mkdir()
            r_alerts, r_cpu, r_wall, r_rss = replay(Path(tmp) / "replay", recording, labels["profile"])
        for key, alerts, cpu, wall, rss in (("baresip (G.711, sound devices)", run.alerts, run.desk_cpu_s,
                                             run.desk_wall_s, run.desk_peak_rss),
                                            ("monitor replay --realtime", r_alerts, r_cpu, r_wall, r_rss)):
            during, greeting = latencies(alerts)
            d, g, c, w, m = rows[key]
            rows[key] = (d + during, g + greeting, c + cpu, w + wall, max(m, rss))
        got = sorted((a["call_id"][:8], a["rule"], a.get("phrase") or "") for a in run.alerts)
        print(f"{name}: softphone alerts {got}", flush=True)
    print(f"{'path':<32} {'in-call p50':>11} {'p95':>6} {'n':>3} {'greeting p50':>13} {'max':>6} "
          f"{'CPU %':>6} {'peak RSS':>9}")
    for key, (during, greeting, cpu, wall, rss) in rows.items():
        print(f"{key:<32} {percentile(during, 50):10.2f}s {percentile(during, 95):5.2f}s {len(during):3d} "
              f"{percentile(greeting, 50):12.2f}s {max(greeting, default=float('nan')):5.2f}s "
              f"{cpu / wall * 100 if wall else 0:6.0f} {rss / 2**20:7.0f} MiB")
    print("(CPU: mean % of one core over the desk's run, model loading included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
