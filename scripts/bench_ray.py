"""Ray scale-out benchmark: `monitor score --ray` on the labelled dev corpus with 1 and 2
worker actors on a local Ray cluster, against local scoring, and what a cluster would
score per day.

Starts its own Ray head on this machine (`ray start --head --num-cpus=C`, C = this
machine's CPUs), scores the whole corpus once per setting (a fresh driver each time: the
time includes connecting and loading one model per actor), checks that every run wrote
exactly the local report, stops the cluster (`ray stop --force`) and prints calls/s,
audio seconds per wall second and audio hours per day.

    .venv/bin/python scripts/bench_ray.py [--corpus DIR] [--cpus-per-worker 1] [--nodes N]
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}


def corpus_profiles(corpus: Path) -> tuple[list[Path], dict[str, str]]:
    files, mapping = [], {}
    for line in (corpus / "manifest.jsonl").read_text().splitlines():
        m = json.loads(line)
        files.append(corpus / m["audio"])
        mapping[Path(m["audio"]).stem] = json.loads((corpus / m["labels"]).read_text())["profile"]
    return files, mapping


def score(files: list[Path], pmap: Path, out: Path, *extra: str) -> tuple[float, list[dict]]:
    t0 = time.perf_counter()
    res = subprocess.run([str(BIN / "monitor"), "score", *map(str, files), "--profile-map", str(pmap),
                          "--out", str(out), "--no-progress", "-q", *extra], capture_output=True, text=True, env=ENV)
    wall = time.perf_counter() - t0
    if res.returncode not in (0, 1):
        sys.exit(f"bench_ray: monitor score failed ({res.returncode}): {res.stderr.strip()[-500:]}")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    for r in rows:
        r.pop("path", None)
        if isinstance(r.get("judge_input"), dict):
            r["judge_input"].pop("path", None)
    return wall, rows


def report_differences(local: list[dict], ray: list[dict]) -> None:
    if len(local) != len(ray):
        print(f"  differs: {len(ray)} rows, local {len(local)}")
    for a, b in zip(local, ray, strict=False):
        if a != b:
            keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            same_violations = [(v["rule"], v["start"]) for v in a.get("violations", [])] == \
                [(v["rule"], v["start"]) for v in b.get("violations", [])]
            print(f"  differs: {a.get('call')} in {', '.join(keys)}; violations "
                  f"{'the same' if same_violations else 'DIFFERENT'}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus" / "dev")
    ap.add_argument("--cpus-per-worker", type=int, default=1, help="CPUs (threads) per worker actor (default 1)")
    ap.add_argument("--local-threads", type=int, help="threads of the local run (default: all CPUs)")
    ap.add_argument("--nodes", type=int, default=100, help="cluster size for the per-day estimate (default 100)")
    args = ap.parse_args()
    files, mapping = corpus_profiles(args.corpus)
    cpus = os.cpu_count() or 2
    with tempfile.TemporaryDirectory() as tmp:
        pmap = Path(tmp) / "profiles.json"
        pmap.write_text(json.dumps(mapping))
        local_wall, local_rows = score(files, pmap, Path(tmp) / "local.jsonl", "--threads",
                                       str(args.local_threads or cpus))
        audio = sum(r.get("duration", 0.0) for r in local_rows)
        results = [(f"local, 1 process x {args.local_threads or cpus} threads", cpus, local_wall, True)]
        address = f"127.0.0.1:{free_port()}"
        t0 = time.perf_counter()
        subprocess.run([str(BIN / "ray"), "start", "--head", "--node-ip-address=127.0.0.1",
                        f"--port={address.split(':')[1]}", f"--num-cpus={cpus}", "--include-dashboard=false",
                        "--disable-usage-stats"], check=True, capture_output=True, env=ENV)
        print(f"ray start --head: {time.perf_counter() - t0:.1f} s", flush=True)
        try:
            for workers in (1, 2):
                if workers * args.cpus_per_worker > cpus:
                    continue
                wall, rows = score(files, pmap, Path(tmp) / f"ray{workers}.jsonl", "--ray", address,
                                   "--ray-workers", str(workers), "--ray-cpus", str(args.cpus_per_worker))
                results.append((f"ray, {workers} worker(s) x {args.cpus_per_worker} CPU", workers, wall,
                                rows == local_rows))
                report_differences(local_rows, rows)
        finally:
            subprocess.run([str(BIN / "ray"), "stop", "--force"], capture_output=True, env=ENV)
    print(f"\ncorpus: {len(files)} calls, {audio / 60:.1f} min of audio; machine: {cpus} CPUs")
    print(f"{'setting':<28} {'wall s':>7} {'calls/s':>8} {'audio x':>8} {'audio h/day':>12}  same as local")
    for name, _n, wall, same in results:
        print(f"{name:<28} {wall:7.1f} {len(files) / wall:8.3f} {audio / wall:8.1f} {audio / wall * 24:12.1f}"
              f"  {'yes' if same else 'NO'}")
    best = max((r for r in results if r[0].startswith("ray")), key=lambda r: len(files) / r[2], default=None)
    if best is not None:
        per_node = audio / best[2] * 24  # audio hours a day, one node like this one
        print(f"\na cluster of N nodes like this one ({cpus} cores) scores about N x {per_node:.0f} audio hours "
              f"a day ({args.nodes} nodes: {args.nodes * per_node:,.0f} h; 8,000 h/day needs "
              f"{-(-8000 // per_node):.0f} nodes), the driver only ships audio and writes the report")
    return 0 if all(r[3] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
