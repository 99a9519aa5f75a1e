#!/usr/bin/env python3
"""Does the live path raise what batch scoring raises? Replays every call of a folder with
`monitor replay` (grouped by profile) and compares its violations with a `monitor score`
report of the same folder.

    .venv/bin/monitor score DIR --profile-map MAP.json --out score.jsonl --quiet
    .venv/bin/python scripts/replay_vs_score.py DIR --profile-map MAP.json --score score.jsonl

A violation agrees when the other path has one of the same rule starting within --tol
seconds. Prints per-call differences and the agreement; exits 1 when they differ.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

MONITOR = Path(sys.executable).with_name("monitor")
AUDIO = (".wav", ".flac", ".mp3", ".ogg")


def violations(rows: list[dict], key: str) -> dict[str, list[tuple[str, float]]]:
    return {Path(r[key]).stem: sorted((v["rule"], v["start"]) for v in r["violations"]) for r in rows}


def unmatched(a: list[tuple[str, float]], b: list[tuple[str, float]], tol: float) -> list[tuple[str, float]]:
    left = list(b)
    out = []
    for rule, t in a:
        hit = next((x for x in left if x[0] == rule and abs(x[1] - t) <= tol), None)
        if hit is None:
            out.append((rule, t))
        else:
            left.remove(hit)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--profile-map", type=Path, required=True)
    ap.add_argument("--score", type=Path, required=True, help="monitor score report of the folder")
    ap.add_argument("--tol", type=float, default=1.0)
    a = ap.parse_args(argv)
    profiles = json.loads(a.profile_map.read_text(encoding="utf-8"))
    groups: dict[str, list[Path]] = defaultdict(list)
    for p in sorted(a.folder.iterdir()):
        if p.suffix in AUDIO:
            groups[profiles.get(p.stem, profiles.get(p.name, "zte"))].append(p)
    live: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for profile, files in sorted(groups.items()):
            out = Path(tmp) / f"{profile}.jsonl"
            subprocess.run([str(MONITOR), "replay", "--profile", profile, "--out", str(out), *map(str, files)],
                           check=False, stdout=subprocess.DEVNULL)
            live += [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines() if x.strip()]
    batch = violations([json.loads(x) for x in a.score.read_text(encoding="utf-8").splitlines() if x.strip()], "call")
    replayed = violations(live, "call_id")
    same = total = 0
    for call in sorted(batch):
        b, r = batch[call], replayed.get(call)
        if r is None:
            print(f"{call}: not replayed")
            total += len(b)
            continue
        only_b, only_r = unmatched(b, r, a.tol), unmatched(r, b, a.tol)
        total += len(b) + len(only_r)
        same += len(b) - len(only_b)
        if only_b or only_r:
            print(f"{call}: only in score {only_b}  only in replay {only_r}")
    print(f"violations agreeing: {same} of {total} ({100.0 * same / max(1, total):.1f} %), {len(batch)} calls")
    return 0 if same == total else 1


if __name__ == "__main__":
    sys.exit(main())
