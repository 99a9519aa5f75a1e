"""The real model on the labelled dev calls: what the quality team will get.

Runs every dev call through the batch pipeline once (Whisper base int8, both
channels) and checks the evaluation targets of the batch-scoring issue.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.phrasebook import load_profile
from monitor.pipeline import score_call

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def corpus_report(corpus_dir, whisper_factory, tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus") / "report.jsonl"
    reports = {}
    with open(out, "w", encoding="utf-8") as f:
        for line in (corpus_dir / "manifest.jsonl").read_text().splitlines():
            m = json.loads(line)
            labels = json.loads((corpus_dir / m["labels"]).read_text())
            profile = load_profile(labels["profile"])
            r = score_call(corpus_dir / m["audio"], profile, whisper_factory(profile.hotwords))
            reports[m["call_id"]] = (r, labels)
            f.write(json.dumps(r.to_dict(), ensure_ascii=False) + "\n")
    evaluate = corpus_dir.parents[1] / "tools" / "evaluate.py"
    ev = subprocess.run([sys.executable, str(evaluate), str(corpus_dir), str(out), "--json"],
                        capture_output=True, text=True, check=True)
    return reports, json.loads(ev.stdout)


def test_dev_corpus_meets_the_accuracy_targets(corpus_report):
    _, ev = corpus_report
    assert ev["missing_calls"] == 0
    assert ev["micro"]["f1"] >= 0.90, ev["errors"]
    for rule, r in ev["rules"].items():
        assert r["f1"] >= 0.85, f"{rule}: {r} {ev['errors']}"
    assert ev["rules"]["forbidden"]["precision"] >= 0.95


def test_caller_hangups_are_decided_by_the_busy_tone(corpus_report):
    reports, _ = corpus_report
    for cid, (r, labels) in reports.items():
        if labels["hangup"]["by"] == "caller":
            assert "busy_450" in r.hangup_evidence, cid
            assert abs(r.tones[0].start - labels["hangup"]["t"]) < 0.5, cid


def test_no_alert_ever_quotes_a_hallucination_or_the_prompt(corpus_report):
    reports, _ = corpus_report
    for r, _ in reports.values():
        for v in r.violations:
            assert "普通话的句子" not in v.text and "字幕" not in v.text


def test_report_transcript_holds_both_sides_in_simplified_chinese(corpus_report):
    reports, _ = corpus_report
    r, _ = reports["dev-001"]
    d = r.to_dict()
    assert {t["channel"] for t in d["transcript"]} == {"agent", "caller"}
    text = "".join(t["text"] for t in d["transcript"])
    assert not set("這個們說來電話務") & set(text)


def test_recommended_service_phrases_the_agent_used_are_listed(corpus_report):
    reports, _ = corpus_report
    r, labels = reports["dev-005"]  # the agent says "您放心，这件事交给我做吧" and "我们马上就去做"
    assert set(r.recommended_used) == {"您放心这件事交给我做吧", "我们马上就去做"}
