"""Batch-scoring benchmark on the labelled dev corpus.

Scores every call of the corpus with `monitor score` (both channels
transcribed, real Whisper base int8) in a child process and prints:
- audio seconds per wall second (target >= 20x real time),
- the child's peak RSS (target <= 1 GiB),
- the evaluation against the labels (../shared/tools/evaluate.py),
- a baseline measured in the same run: faster-whisper's own transcribe()
  (30 s window per utterance) on the utterances of a few calls, against our
  short-window batched decoding of the same utterances.

    .venv/bin/python scripts/bench_batch.py [--corpus DIR] [--baseline-calls N]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def corpus_profiles(corpus: Path) -> tuple[list[Path], dict[str, str]]:
    files, mapping = [], {}
    for line in (corpus / "manifest.jsonl").read_text().splitlines():
        m = json.loads(line)
        labels = json.loads((corpus / m["labels"]).read_text())
        files.append(corpus / m["audio"])
        mapping[Path(m["audio"]).stem] = labels["profile"]
    return files, mapping


def run_score(corpus: Path, mapping: dict, out: Path, threads: int) -> tuple[float, float, float]:
    """(wall seconds, audio seconds, peak RSS MiB) of one `monitor score` child."""
    map_file = out.with_suffix(".profiles.json")
    map_file.write_text(json.dumps(mapping))
    cmd = [str(REPO / ".venv" / "bin" / "monitor"), "score", str(corpus), "--profile-map", str(map_file),
           "--out", str(out), "--quiet", "--no-progress", "--threads", str(threads)]
    if not Path(cmd[0]).exists():
        cmd[0:1] = [sys.executable, "-m", "monitor.cli"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"bench: monitor score failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    audio = sum(json.loads(line)["duration"] for line in out.read_text().splitlines() if line.strip())
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    return wall, audio, peak_mib


def baseline(files: list[Path], mapping: dict, threads: int) -> tuple[float, float, int]:
    """(ours s, faster-whisper transcribe() s, utterances) on the same utterances."""
    from faster_whisper import WhisperModel

    from monitor.asr.whisper import AsrOptions, WhisperTranscriber
    from monitor.audio.files import load_call
    from monitor.phrasebook import load_profile
    from monitor.pipeline import caller_tones, utterances_of
    from monitor.vad import VadOptions

    utts = []
    for f in files:
        call = load_call(f)
        _, tones = caller_tones(call)
        utts.extend(utterances_of(call, tones, VadOptions()))
    profile = load_profile(mapping[files[0].stem])
    ours = WhisperTranscriber(AsrOptions(cpu_threads=threads, hotwords=profile.hotwords))
    t0 = time.perf_counter()
    ours.transcribe(utts)
    t_ours = time.perf_counter() - t0
    model = WhisperModel(str(ours.model_dir), device="cpu", compute_type="int8", cpu_threads=threads)
    t0 = time.perf_counter()
    for u in utts:
        segments, _ = model.transcribe(u.samples, language="zh", beam_size=ours.opt.beam_size,
                                       initial_prompt=ours.opt.initial_prompt, condition_on_previous_text=False,
                                       hotwords=" ".join(profile.hotwords) or None)
        "".join(s.text for s in segments)
    return t_ours, time.perf_counter() - t0, len(utts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=Path(os.environ.get("MONITOR_CORPUS")
                                                          or REPO.parent / "shared" / "corpus" / "dev"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--baseline-calls", type=int, default=4, help="calls for the baseline comparison (0: skip)")
    ap.add_argument("--out", type=Path, help="keep the report here")
    a = ap.parse_args()
    if not (a.corpus / "manifest.jsonl").is_file():
        sys.exit(f"bench: no corpus at {a.corpus}")
    files, mapping = corpus_profiles(a.corpus)
    with tempfile.TemporaryDirectory() as tmp:
        out = a.out or Path(tmp) / "report.jsonl"
        wall, audio, peak = run_score(a.corpus, mapping, out, a.threads)
        print(f"calls            {len(files)}")
        print(f"audio            {audio:.1f} s")
        print(f"wall             {wall:.1f} s (including model load)")
        print(f"speed            {audio / wall:.1f}x real time (target >= 20x)")
        print(f"peak RSS         {peak:.0f} MiB (target <= 1024 MiB)")
        ev = subprocess.run([sys.executable, str(a.corpus.parents[1] / "tools" / "evaluate.py"), str(a.corpus),
                             str(out), "--json"], capture_output=True, text=True)
        if ev.returncode == 0:
            res = json.loads(ev.stdout)
            for rule, r in res["rules"].items():
                print(f"{rule:<16} P {r['precision']:.2f} R {r['recall']:.2f} F1 {r['f1']:.2f}")
            m = res["micro"]
            print(f"{'micro':<16} P {m['precision']:.2f} R {m['recall']:.2f} F1 {m['f1']:.2f}")
            for e in res["errors"]:
                print(f"    {e}")
        else:
            print(f"evaluate.py failed: {ev.stderr.strip()[-300:]}")
    if a.baseline_calls:
        t_ours, t_base, n = baseline(files[:a.baseline_calls], mapping, a.threads)
        print(f"baseline         {n} utterances of {a.baseline_calls} calls: transcribe() {t_base:.1f} s, "
              f"ours {t_ours:.1f} s -> {t_base / t_ours:.1f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
