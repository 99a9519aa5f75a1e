"""Score the labelled dev calls mixed down to mono and measure who-said-what.

    .venv/bin/python scripts/bench_mono.py [CORPUS] [--calls dev-000,dev-005] [--mono-roles auto|agent]

Mixes each call to one channel (0.5 * (agent + caller), the labels copied) in a temporary
folder, scores it with the real model, and prints: the attribution accuracy (share of the
labelled speech time given to the right side, overall and per field condition), the
evaluate.py results of the mono report with the micro-F1 of greeting, forbidden and closing
(the issue's target), and the speed (x real time).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]


def mix_to_mono(src: Path, dst: Path, calls: set[str] | None = None) -> list[dict]:
    """Mono copies of the corpus calls in dst (WAV at the source rate) with their labels and a manifest."""
    dst.mkdir(parents=True, exist_ok=True)
    out = []
    for line in (src / "manifest.jsonl").read_text().splitlines():
        m = json.loads(line)
        if calls and m["call_id"] not in calls:
            continue
        x, rate = sf.read(src / m["audio"], dtype="float32", always_2d=True)
        name = Path(m["audio"]).stem + ".wav"
        sf.write(dst / name, 0.5 * (x[:, 0] + x[:, 1]), rate, subtype="PCM_16")
        shutil.copy(src / m["labels"], dst / m["labels"])
        out.append({**m, "audio": name})
    (dst / "manifest.jsonl").write_text("".join(json.dumps(m) + "\n" for m in out))
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus", nargs="?", default=str(REPO.parent / "shared" / "corpus" / "dev"))
    ap.add_argument("--calls", default="", help="comma-separated call ids (default: all)")
    ap.add_argument("--mono-roles", default="auto", choices=("auto", "agent"))
    ap.add_argument("--keep", default="", help="write the mono corpus and report here instead of a temp dir")
    ap.add_argument("--threads", type=int, default=2, help="monitor score --threads (calls side by side)")
    a = ap.parse_args()

    from monitor.judge_input import JudgeInput
    from monitor.roles import speech_time_accuracy

    work = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="mono-dev-"))
    corpus = work / "mono"
    manifest = mix_to_mono(Path(a.corpus), corpus, set(filter(None, a.calls.split(","))) or None)
    labels = {Path(m["audio"]).stem: json.loads((corpus / m["labels"]).read_text()) for m in manifest}
    profile_map = work / "profiles.json"
    profile_map.write_text(json.dumps({k: v["profile"] for k, v in labels.items()}))
    report = work / "mono-report.jsonl"
    # Scored as a QA team would: `monitor score` on the folder (calls side by side, --threads).
    exe = REPO / ".venv" / "bin" / "monitor"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "monitor.cli"]
    t0 = time.perf_counter()
    done = subprocess.run(cmd + ["score", *[str(corpus / m["audio"]) for m in manifest], "--profile-map", str(profile_map),
                                 "--out", str(report), "--quiet", "--no-progress", "--mono-roles", a.mono_roles,
                                 "--threads", str(a.threads)], capture_output=True, text=True)
    wall_s = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"bench_mono: monitor score failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    right: dict[str, float] = defaultdict(float)
    covered: dict[str, float] = defaultdict(float)
    audio_s = 0.0
    for line in report.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        lab = labels[Path(r["call"]).stem]
        audio_s += r["duration"]
        heard = JudgeInput.from_dict(r["judge_input"]).transcripts
        ok, cov = speech_time_accuracy(heard, [(u["channel"], u["start"], u["end"]) for u in lab["utterances"]])
        for key in ("all", lab["condition"]):
            right[key] += ok
            covered[key] += cov
        print(f"{lab['call_id']} {lab['condition']:9s} attribution {ok / max(cov, 1e-9):.3f} "
              f"violations {[v['rule'] for v in r['violations']]} want {[v['rule'] for v in lab['violations']]}")
    print("\nattribution accuracy (share of labelled speech time given to the right side):")
    for key in sorted(right, key=lambda k: (k != "all", k)):
        print(f"  {key:9s} {right[key] / max(covered[key], 1e-9):.3f}  ({covered[key]:.0f} s heard)")
    print(f"\nspeed: {audio_s:.0f} s of audio in {wall_s:.0f} s = {audio_s / max(wall_s, 1e-9):.1f}x real time "
          f"(monitor score --threads {a.threads}, model load included; target >= 15x)")
    evaluate = Path(a.corpus).resolve().parents[1] / "tools" / "evaluate.py"
    if not evaluate.exists():  # a corpus elsewhere (e.g. made by scripts/make_synth_corpus.py)
        evaluate = REPO.parent / "shared" / "tools" / "evaluate.py"
    print(f"\n{evaluate} {corpus} {report}")
    rc = subprocess.run([sys.executable, str(evaluate), str(corpus), str(report)]).returncode
    res = json.loads(subprocess.run([sys.executable, str(evaluate), str(corpus), str(report), "--json"],
                                    capture_output=True, text=True).stdout)
    tp, fp, fn = (sum(res["rules"][r][k] for r in ("greeting", "forbidden", "closing")) for k in ("tp", "fp", "fn"))
    p, r = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    print(f"  greeting+forbidden+closing micro P {p:.2f}  R {r:.2f}  F1 {2 * p * r / max(p + r, 1e-9):.2f}")
    return rc


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
