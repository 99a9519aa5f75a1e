#!/usr/bin/env python3
"""List a report's errors on a synthetic corpus with what the monitor heard, what the label
says and the field conditions of the call (DEVELOPMENT-ONLY; stdlib only).

    python3 scripts/field_failures.py /tmp/field /tmp/field/report.jsonl

Errors are matched as ../shared/tools/evaluate.py matches them (greeting, closing, hangup
once per call; forbidden and hold by time, 3 s tolerance). The last lines count errors per
field condition (a call with several conditions counts for each).
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

CALL_RULES = ("greeting", "closing", "hangup")
EVENT_RULES = ("forbidden", "hold")


def near(items: list, t0: float, t1: float, channel: str | None = None) -> str:
    got = [u for u in items if u["start"] <= t1 + 0.5 and u["end"] >= t0 - 0.5
           and (channel is None or u["channel"] == channel)]
    return " | ".join(f"{u['channel'][0]}@{u['start']:.1f}:{u['text']}" for u in got) or "-"


def overlaps(a: dict, b: dict, tol: float) -> bool:
    return a["start"] - tol <= b["end"] and b["start"] - tol <= a["end"]


def main(argv: list | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("report", type=Path)
    ap.add_argument("--tol", type=float, default=3.0)
    a = ap.parse_args(argv)
    meta = json.loads((a.corpus / "synth_meta.json").read_text(encoding="utf-8"))
    reps = {}
    for line in a.report.read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            reps[Path(r["call"]).stem] = r
    per_kind: Counter = Counter()
    calls_per_kind: Counter = Counter()
    for line in (a.corpus / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
        m = json.loads(line)
        cid = m["call_id"]
        lab = json.loads((a.corpus / m["labels"]).read_text(encoding="utf-8"))
        rep = reps.get(cid, {"violations": [], "transcript": []})
        kinds = meta.get(cid, {}).get("field", [])
        for k in kinds or ["(none)"]:
            calls_per_kind[k] += 1
        tr, utt = rep.get("transcript", []), lab["utterances"]
        errs = []
        for rule in CALL_RULES:
            want = [v for v in lab["violations"] if v["rule"] == rule]
            got = [v for v in rep["violations"] if v.get("rule") == rule]
            if want and not got:
                w = want[0]
                errs.append((rule, "fn", w["start"], f"label {w['start']}-{w['end']}: {near(utt, w['start'], w['end'], 'agent')}",
                             f"heard: {near(tr, w['start'], w['end'])}"))
            elif got and not want:
                g = got[0]
                errs.append((rule, "fp", g["start"], f"monitor: {g.get('text', '')} ({g.get('evidence', '')})",
                             f"label: {near(utt, g['start'], g['end'])}"))
        for rule in EVENT_RULES:
            want = [v for v in lab["violations"] if v["rule"] == rule]
            got = [v for v in rep["violations"] if v.get("rule") == rule and "start" in v]
            used: set = set()
            for w in want:
                hit = next((j for j, g in enumerate(got) if j not in used and overlaps(w, g, a.tol)), None)
                if hit is None:
                    errs.append((rule, "fn", w["start"], f"label {w.get('phrase', '')} @{w['start']}-{w['end']}: "
                                 f"{near(utt, w['start'], w['end'], 'agent')}",
                                 f"heard: {near(tr, w['start'], w['end'])}"))
                else:
                    used.add(hit)
            for j, g in enumerate(got):
                if j not in used:
                    errs.append((rule, "fp", g["start"], f"monitor {g.get('phrase', '')} @{g['start']}: "
                                 f"{g.get('text', '')} ({g.get('evidence', '')})",
                                 f"label: {near(utt, g['start'], g['end'])}"))
        for rule, kind, _t, x, y in sorted(errs, key=lambda e: e[2]):
            print(f"{cid} {rule} {kind} [{lab['condition']}]\n    {x}\n    {y}")
            for k in kinds or ["(none)"]:
                per_kind[k] += 1
    print("\nerrors per field condition (calls with it):")
    for k, n in calls_per_kind.most_common():
        print(f"  {k:12s} {per_kind[k]:3d} errors in {n} calls ({per_kind[k] / n:.2f}/call)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
