"""Replaying recordings through the live path gives what batch scoring gives (real model)."""
import json
import subprocess

import pytest

from monitor.phrasebook import load_profile
from monitor.pipeline import score_call
from tests.live_support import MONITOR, free_port, hub_alerts, hub_process, replay_in_process

CALLS = [("samples", "demo-zte.flac", "zte"), ("samples", "tel-unicom.wav", "unicom"),
         ("samples", "jingyi-rude.flac", "jingyi"), ("corpus", "dev-000.wav", "zte"),
         ("corpus", "dev-006.flac", "unicom"), ("corpus", "dev-017.wav", "zte")]


def key(v):
    return v.rule, v.phrase


@pytest.mark.parametrize("where, name, profile", CALLS)
def test_live_replay_raises_the_same_violations_as_batch(where, name, profile, request, whisper_factory):
    folder = request.getfixturevalue("samples_dir" if where == "samples" else "corpus_dir")
    prof = load_profile(profile)
    stt = whisper_factory(prof.hotwords)
    batch = score_call(folder / name, prof, stt)
    live = replay_in_process(folder / name, prof, stt)
    assert sorted(map(key, live.violations)) == sorted(map(key, batch.violations))
    for lv in live.violations:
        bv = next(b for b in batch.violations if key(b) == key(lv))
        assert abs(lv.start - bv.start) <= 1.0, (lv, bv)


def test_replay_command_pushes_alerts_to_the_hub_and_spools_while_it_is_down(tmp_path, samples_dir):
    spool = tmp_path / "desk.spool"
    dead = f"ws://127.0.0.1:{free_port()}/ws"
    r = subprocess.run(MONITOR + ["replay", str(samples_dir / "jingyi-rude.flac"), "--profile", "jingyi",
                                  "--hub", dead, "--token", "hub-token-for-live-tests", "--desk", "d1",
                                  "--spool", str(spool)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr  # alerts left undelivered: not a success
    assert "greeting" in r.stdout and "forbidden" in r.stdout  # printed at the desk all the same
    problem = [line for line in r.stderr.splitlines() if "unreachable" in line]
    assert problem and dead.replace("/ws", "") in problem[0], r.stderr  # said what is wrong
    assert "2 alert(s) not delivered to the hub" in r.stderr, r.stderr
    with hub_process(tmp_path) as (ws_url, http, token):
        r = subprocess.run(MONITOR + ["replay", str(samples_dir / "tel-unicom.wav"), "--profile", "unicom",
                                      "--realtime", "--speed", "8", "--hub", ws_url, "--token", token,
                                      "--desk", "d1", "--spool", str(spool), "--out", str(tmp_path / "s.jsonl")],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        alerts = hub_alerts(http, token)
    got = sorted((a["call_id"], a["rule"]) for a in alerts)
    assert got == [("jingyi-rude", "forbidden"), ("jingyi-rude", "greeting"), ("tel-unicom", "forbidden")]
    assert [a["seq"] for a in alerts] == sorted(a["seq"] for a in alerts)
    summary = json.loads((tmp_path / "s.jsonl").read_text())
    assert summary["call_id"] == "tel-unicom" and summary["score"] < 100
