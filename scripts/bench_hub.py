#!/usr/bin/env python3
"""Load test of the alert hub on loopback: many desks push, several consoles watch.

    python scripts/bench_hub.py                         # 200 desks, 10 consoles, 500/s, 60 s,
                                                        # steady run then a run with a SIGKILL
    python scripts/bench_hub.py --duration 10 --mode steady
    python scripts/bench_hub.py --large                 # 1,000 desks at 1,000 alerts/s

The hub runs as a subprocess (`python -m monitor.hub`). In the "kill" run it is killed with
SIGKILL part-way and restarted on the same database: desks keep spooling and resend,
consoles reconnect and resume from their last seq. For every run it prints alerts sent,
received per console, lost, duplicated and delivery latency (desk send() -> console
receive) p50/p99. Exits non-zero if any alert was lost or duplicated, or if the steady
run's p99 is over --p99-target.
Traffic goes only to 127.0.0.1; every loop is bounded by --duration and timeouts.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchlib import free_port, percentile

from monitor.hub.console_client import ConsoleClient
from monitor.hub.desk_client import DeskClient

DESK_TOKEN = "bench-desk-token-0123456789"
CONSOLE_TOKEN = "bench-console-token-0123456789"
TEXTS = ["我不知道，你找领导去", "喂，干嘛", "这不归我们管", "您好，中兴通讯！", "再见"]
RULES = ["forbidden", "greeting", "closing", "hold", "hangup"]


class HubProcess:
    """The hub as a child process, restartable on the same database."""

    def __init__(self, port: int, db: Path, log: Path, extra: list[str] | None = None) -> None:
        self.port, self.db, self.log = port, db, log
        self.extra = extra or []
        self.proc: subprocess.Popen | None = None
        self.cpu_seconds = 0.0

    def start(self) -> None:
        cmd = [sys.executable, "-m", "monitor.hub", "--host", "127.0.0.1",
               "--port", str(self.port), "--db", str(self.db), "--token", DESK_TOKEN,
               "--console-token", CONSOLE_TOKEN, "--log-level", "warning", *self.extra]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=log)

    async def wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"hub exited with {self.proc.returncode}; see {self.log}")
            try:
                r, w = await asyncio.open_connection("127.0.0.1", self.port)
                w.write(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                ok = (await r.readline()).startswith(b"HTTP/1.1 200")
                w.close()
                if ok:
                    return
            except OSError:
                pass
            await asyncio.sleep(0.05)
        raise RuntimeError("hub did not come up")

    def _account_cpu(self) -> None:
        try:
            import psutil
            t = psutil.Process(self.proc.pid).cpu_times()  # type: ignore[union-attr]
            self.cpu_seconds += t.user + t.system
        except Exception:
            pass

    def kill(self) -> None:
        assert self.proc is not None
        self._account_cpu()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self._account_cpu()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class ConsoleStats:
    received: dict[str, int] = field(default_factory=dict)  # alert id -> times received
    latencies: list[float] = field(default_factory=list)
    caught_up: asyncio.Event = field(default_factory=asyncio.Event)
    reconnects: int = 0


async def run_once(args: argparse.Namespace, kill: bool) -> dict:
    work = Path(tempfile.mkdtemp(prefix="bench-hub-"))
    port = free_port()
    # Every desk connects from 127.0.0.1, like desks behind one NAT address: the hub's
    # limit on connections waiting to authenticate per address must allow the herd that
    # reconnects after the SIGKILL.
    herd = str(max(64, args.desks + args.consoles))
    hub = HubProcess(port, work / "hub.sqlite3", work / "hub.log",
                     ["--max-preauth-per-address", herd, "--max-preauth", herd,
                      "--sync", args.sync])
    hub.start()
    await hub.wait_ready()
    url = f"ws://127.0.0.1:{port}/ws"
    sent_at: dict[str, float] = {}

    consoles = [ConsoleClient(url, CONSOLE_TOKEN, 0, name=f"bench{i}", dedupe=False,
                              backoff_min=0.05, backoff_max=0.5) for i in range(args.consoles)]
    stats = [ConsoleStats() for _ in consoles]

    async def watch(client: ConsoleClient, st: ConsoleStats) -> None:
        async for frame in client.frames():
            kind = frame["type"]
            if kind == "alert":
                now = time.perf_counter()
                aid = frame["id"]
                n = st.received.get(aid, 0)
                st.received[aid] = n + 1
                if n == 0 and aid in sent_at:
                    st.latencies.append(now - sent_at[aid])
            elif kind == "caught_up":
                st.caught_up.set()

    watchers = [asyncio.create_task(watch(c, s)) for c, s in zip(consoles, stats, strict=True)]
    desks = [DeskClient(url, DESK_TOKEN, f"desk-{i:03d}", work / f"desk-{i:03d}.spool",
                        window=50, backoff_min=0.05, backoff_max=0.5)
             for i in range(args.desks)]
    for d in desks:
        await d.start()
    deadline = time.monotonic() + 20
    while (not all(d.connected for d in desks) or not all(s.caught_up.is_set() for s in stats)):
        if time.monotonic() > deadline:
            raise RuntimeError("desks/consoles did not connect")
        await asyncio.sleep(0.05)

    # Load: `rate` alerts/s in total, spread round-robin over the desks, paced every 10 ms.
    t0 = time.perf_counter()
    total = int(args.rate * args.duration)
    kill_at = args.kill_at * args.duration if kill else None
    emitted = 0
    killed = False
    while emitted < total:
        elapsed = time.perf_counter() - t0
        if kill_at is not None and not killed and elapsed >= kill_at:
            hub.kill()  # SIGKILL: no goodbye, no flush beyond what SQLite already committed
            killed = True
            print(f"  hub SIGKILLed at t={elapsed:.1f}s; down for {args.down:.1f}s", flush=True)

            async def restart() -> None:
                await asyncio.sleep(args.down)
                hub.start()
                await hub.wait_ready()
                print(f"  hub restarted at t={time.perf_counter() - t0:.1f}s", flush=True)
            restarter = asyncio.create_task(restart())
        due = min(total, int(args.rate * elapsed))
        while emitted < due:
            desk = desks[emitted % len(desks)]
            t = time.perf_counter()
            call_t = float(emitted % 600)
            aid = await desk.send({
                "call_id": f"{desk.desk}-call-{emitted // len(desks) // 20}",
                "rule": RULES[emitted % len(RULES)], "start": call_t, "end": call_t + 1.5,
                "emitted": call_t + 1.6, "text": TEXTS[emitted % len(TEXTS)],
                "evidence": "bench", "phrase": "找领导去" if emitted % 5 == 0 else None})
            sent_at[aid] = t
            emitted += 1
        await asyncio.sleep(0.01)
    gen_time = time.perf_counter() - t0
    if killed:
        await restarter

    # Drain: every desk's spool empty, then every console has everything (bounded waits).
    flushed = all(await asyncio.gather(*(d.flush(60) for d in desks)))
    drain_deadline = time.monotonic() + 30
    while time.monotonic() < drain_deadline:
        if all(len(s.received) >= len(sent_at) for s in stats):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # a late duplicate would show up here
    for c in consoles:
        await c.close()
    await asyncio.gather(*watchers, return_exceptions=True)
    desk_connects = sum(d.connects for d in desks)
    resent_dups = sum(d.duplicates for d in desks)
    for c, s in zip(consoles, stats, strict=True):
        s.reconnects = c.connects - 1
    for d in desks:
        await d.close()
    hub.stop()
    db = sqlite3.connect(hub.db)
    stored = db.execute("SELECT COUNT(*) FROM alerts").fetchone()[0]
    db.close()
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)

    sent_ids = set(sent_at)
    per_console = []
    all_lat: list[float] = []
    for s in stats:
        got = set(s.received)
        per_console.append({"received": len(got & sent_ids), "lost": len(sent_ids - got),
                            "duplicated": sum(n - 1 for n in s.received.values()),
                            "unexpected": len(got - sent_ids), "reconnects": s.reconnects})
        all_lat.extend(s.latencies)
    return {
        "kill": kill, "sent": len(sent_ids), "gen_seconds": gen_time, "flushed": flushed,
        "stored": stored, "consoles": per_console, "desk_connects": desk_connects,
        "resent_dups": resent_dups,
        "lost": sum(c["lost"] for c in per_console),
        "duplicated": sum(c["duplicated"] for c in per_console),
        "p50_ms": percentile(all_lat, 50) * 1000, "p99_ms": percentile(all_lat, 99) * 1000,
        "max_ms": max(all_lat) * 1000 if all_lat else float("nan"),
        "mean_ms": statistics.fmean(all_lat) * 1000 if all_lat else float("nan"),
        "hub_cpu_s": hub.cpu_seconds,
    }


def report(r: dict, args: argparse.Namespace) -> bool:
    title = "with hub SIGKILL + restart" if r["kill"] else "steady"
    print(f"\n== {title}: {args.desks} desks, {args.consoles} consoles, {args.rate:g}/s for "
          f"{args.duration:g}s ==")
    print(f"alerts sent      {r['sent']} (generated in {r['gen_seconds']:.1f}s; "
          f"desks flushed: {r['flushed']}; stored in hub db: {r['stored']})")
    for i, c in enumerate(r["consoles"]):
        print(f"console {i:2d}       received {c['received']}  lost {c['lost']}  "
              f"duplicated {c['duplicated']}  unexpected {c['unexpected']}  "
              f"reconnects {c['reconnects']}")
    print(f"lost (all)       {r['lost']}")
    print(f"duplicated (all) {r['duplicated']}")
    print(f"latency          p50 {r['p50_ms']:.1f} ms  p99 {r['p99_ms']:.1f} ms  "
          f"max {r['max_ms']:.1f} ms  mean {r['mean_ms']:.1f} ms")
    print(f"hub cpu          {r['hub_cpu_s']:.1f} s over the run; desk (re)connects "
          f"{r['desk_connects']}; resends the hub dropped as duplicates {r['resent_dups']}")
    ok = r["lost"] == 0 and r["duplicated"] == 0 and r["stored"] == r["sent"]
    if not r["kill"]:
        ok_lat = r["p99_ms"] <= args.p99_target
        print(f"target           zero lost/duplicated: {'PASS' if ok else 'FAIL'}; "
              f"p99 <= {args.p99_target:g} ms: {'PASS' if ok_lat else 'FAIL'}")
        ok = ok and ok_lat
    else:  # latency here includes the outage: no target
        print(f"target           zero lost/duplicated: {'PASS' if ok else 'FAIL'}")
    return ok


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--desks", type=int, default=200)
    p.add_argument("--consoles", type=int, default=10)
    p.add_argument("--rate", type=float, default=500.0, help="alerts per second, all desks")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of load per run")
    p.add_argument("--mode", choices=("both", "steady", "kill"), default="both")
    p.add_argument("--kill-at", type=float, default=0.5, help="fraction of the run")
    p.add_argument("--down", type=float, default=2.0, help="seconds the hub stays down")
    p.add_argument("--p99-target", type=float, default=200.0)
    p.add_argument("--large", action="store_true",
                   help="1,000 desks at 1,000 alerts/s (overrides --desks and --rate)")
    p.add_argument("--sync", choices=("full", "normal"), default="full",
                   help="the hub's --sync (default full, the hub's default)")
    p.add_argument("--keep", action="store_true",
                   help="keep the work directory (hub db, log, desk spools)")
    args = p.parse_args()
    if args.large:
        args.desks, args.rate = 1000, 1000.0
    if args.desks < 1 or args.consoles < 1 or args.rate <= 0 or args.duration <= 0:
        p.error("desks, consoles, rate and duration must be positive")
    # Each desk + console holds a socket and the desks a SQLite spool: raise the fd limit.
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 8192)), hard))
    except (ImportError, ValueError, OSError):
        pass
    if os.getloadavg()[0] > os.cpu_count():  # type: ignore[operator]
        print(f"note: load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores before "
              "the run: other work competes with the hub and the latency figures show it")
    ok = True
    for kill in ([False, True] if args.mode == "both" else [args.mode == "kill"]):
        r = asyncio.run(run_once(args, kill))
        ok &= report(r, args)
    print(f"\noverall: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
