"""Score the labelled dev calls mixed down to mono and measure who-said-what.

    .venv/bin/python scripts/bench_mono.py [CORPUS] [--calls dev-000,dev-005] [--mono-roles auto|agent]

Mixes each call to one channel (0.5 * (agent + caller), the labels copied) in a temporary
folder, scores it with the real model, and prints: the attribution accuracy (share of the
labelled speech time given to the right side, overall and per field condition), the
evaluate.py results of the mono report, and the speed (x real time).
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
    a = ap.parse_args()

    from monitor.asr.whisper import AsrOptions, WhisperTranscriber
    from monitor.phrasebook import load_profile
    from monitor.pipeline import ScoreOptions, score_call
    from monitor.roles import speech_time_accuracy

    work = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="mono-dev-"))
    corpus = work / "mono"
    manifest = mix_to_mono(Path(a.corpus), corpus, set(filter(None, a.calls.split(","))) or None)
    transcribers: dict[tuple[str, ...], WhisperTranscriber] = {}
    right: dict[str, float] = defaultdict(float)
    covered: dict[str, float] = defaultdict(float)
    audio_s = wall_s = 0.0
    report = work / "mono-report.jsonl"
    with open(report, "w", encoding="utf-8") as f:
        for m in manifest:
            labels = json.loads((corpus / m["labels"]).read_text())
            profile = load_profile(labels["profile"])
            if profile.hotwords not in transcribers:
                transcribers[profile.hotwords] = WhisperTranscriber(AsrOptions(hotwords=profile.hotwords, cpu_threads=2))
            t0 = time.perf_counter()
            r = score_call(corpus / m["audio"], profile, transcribers[profile.hotwords],
                           ScoreOptions(mono_roles=a.mono_roles))
            wall_s += time.perf_counter() - t0
            audio_s += r.duration
            f.write(json.dumps(r.to_dict(), ensure_ascii=False) + "\n")
            ok, cov = speech_time_accuracy(
                r.transcript, [(u["channel"], u["start"], u["end"]) for u in labels["utterances"]])
            for key in ("all", labels["condition"]):
                right[key] += ok
                covered[key] += cov
            print(f"{m['call_id']} {labels['condition']:9s} attribution {ok / max(cov, 1e-9):.3f} "
                  f"violations {[v.rule for v in r.violations]} want {[v['rule'] for v in labels['violations']]}",
                  flush=True)
    print("\nattribution accuracy (share of labelled speech time given to the right side):")
    for key in sorted(right, key=lambda k: (k != "all", k)):
        print(f"  {key:9s} {right[key] / max(covered[key], 1e-9):.3f}  ({covered[key]:.0f} s heard)")
    print(f"\nspeed: {audio_s:.0f} s of audio in {wall_s:.0f} s = {audio_s / max(wall_s, 1e-9):.1f}x real time")
    evaluate = Path(a.corpus).resolve().parents[1] / "tools" / "evaluate.py"
    print(f"\n{evaluate} {corpus} {report}")
    return subprocess.run([sys.executable, str(evaluate), str(corpus), str(report)]).returncode


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
