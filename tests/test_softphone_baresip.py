"""A desk beside a real softphone: a real SIP call (baresip, G.711 PCMU) captured from sound devices.

Two baresip user agents on loopback place two calls of a labelled recording; the
desk runs `monitor live --softphone baresip://...` and sends its alerts to a real hub.
Call 1: the caller hangs up first (its side ends). Call 2: the agent hangs up first.
"""
import json

import pytest

from tests.softphone_e2e import PlannedCall, run_softphone_desk

CALL = "jingyi-rude"


@pytest.fixture(scope="module")
def softphone_run(tmp_path_factory, samples_dir):
    labels = json.loads((samples_dir / f"{CALL}.json").read_text())
    assert labels["hangup"]["by"] == "caller"
    plan = [PlannedCall(), PlannedCall(agent_hangs_up_at=20.2)]  # after the agent's 再见, before the caller's
    run = run_softphone_desk(tmp_path_factory.mktemp("softphone"), samples_dir / f"{CALL}.flac", labels, plan,
                             profile=labels["profile"])
    return run, labels


def test_the_labelled_violations_arrive_with_baresips_call_id(softphone_run):
    run, labels = softphone_run
    assert run.desk_returncode == 0, run.desk_err[-3000:]
    want = {(v["rule"], v.get("phrase")) for v in labels["violations"]}
    for call in run.calls:
        got = {(a["rule"], a.get("phrase")) for a in run.alerts if a["call_id"] == call.call_id and a["rule"] != "hangup"}
        assert got == want, (call.call_id, run.alerts, run.desk_out)
    assert {a["call_id"] for a in run.alerts} == {c.call_id for c in run.calls}
    assert all(a["desk"] == "desk-7" for a in run.alerts)


def test_the_caller_hanging_up_first_raises_no_hangup_alert(softphone_run):
    run, _ = softphone_run
    first = run.calls[0].call_id
    assert [a for a in run.alerts if a["call_id"] == first and a["rule"] == "hangup"] == []


def test_the_agent_hanging_up_first_raises_one_hangup_alert_with_the_softphones_evidence(softphone_run):
    run, _ = softphone_run
    second = run.calls[1].call_id
    hangups = [a for a in run.alerts if a["call_id"] == second and a["rule"] == "hangup"]
    assert len(hangups) == 1, run.alerts
    assert "baresip: Connection reset by user" in hangups[0]["evidence"]
    assert abs(hangups[0]["start"] - 20.2) < 2.0  # where the hang-up happened in the call


def test_the_hub_shows_the_desk_on_the_call_and_then_its_last_score(softphone_run):
    run, _ = softphone_run
    for call in run.calls:
        seen = [d for snapshot in call.desks_during for d in snapshot["desks"] if d["desk"] == "desk-7"]
        assert seen and all(d["on_call"] and d["call_id"] == call.call_id for d in seen), call.desks_during
        assert all(d.get("peer", "").startswith("sip:caller@") for d in seen)
        assert all(d.get("softphone") == "baresip connected" for d in seen)
    (desk,) = [d for d in run.desks_after if d["desk"] == "desk-7"]
    assert not desk["on_call"]
    assert desk["last_call"]["call_id"] == run.calls[1].call_id
    assert desk["last_call"]["score"] < 100 and desk["last_call"]["violations"] == 3
