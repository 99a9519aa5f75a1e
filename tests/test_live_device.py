"""A call played into a real virtual audio device reaches the supervisor hub as alerts."""
import json
import subprocess
import time


from tests.live_support import MONITOR, free_port, hub_alerts, hub_process, pulse_null_sinks, wait_port


def wait_for(predicate, timeout: float, step: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def test_playing_a_call_into_the_desk_device_raises_its_alerts_at_the_hub(tmp_path, samples_dir):
    labels = json.loads((samples_dir / "jingyi-rude.json").read_text())
    with pulse_null_sinks(_mkdir(tmp_path / "pa")) as env, \
            hub_process(tmp_path) as (ws_url, http, token):
        control = free_port()
        env = {**env, "PULSE_SOURCE": "callsink.monitor"}
        desk = subprocess.Popen(MONITOR + ["live", "--profile", "jingyi", "--agent-device", "pulse",
                                           "--control-port", str(control), "--no-audio-calls", "--max-calls", "1",
                                           "--hub", ws_url, "--token", token, "--desk", "desk-7",
                                           "--spool", str(tmp_path / "desk.spool")],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_port(control, timeout=60)
            subprocess.run(MONITOR + ["call", "start", "--port", str(control), "--id", "call-1"], check=True,
                           capture_output=True, env=env)
            subprocess.run(["paplay", "-d", "callsink", str(samples_dir / "jingyi-rude.flac")], check=True,
                           env=env, timeout=60)
            subprocess.run(MONITOR + ["call", "end", "--by", "caller", "--port", str(control)], check=True,
                           capture_output=True, env=env)
            out, err = desk.communicate(timeout=120)
        finally:
            if desk.poll() is None:
                desk.kill()
        assert desk.returncode == 0, err[-2000:]
        alerts = wait_for(lambda: hub_alerts(http, token), timeout=10)
    got = {(a["rule"], a.get("phrase")) for a in alerts}
    want = {(v["rule"], v.get("phrase")) for v in labels["violations"]}
    assert got == want, (alerts, out)
    assert all(a["desk"] == "desk-7" and a["call_id"] == "call-1" for a in alerts)
    greeting = next(a for a in alerts if a["rule"] == "greeting")
    # Raised once the opening words are known (both sides talk across the 5 s deadline
    # here), not at the end of the 24 s call.
    assert greeting["emitted"] <= 10.0
    assert "dropped 0" in out


def _mkdir(p):
    p.mkdir(parents=True, exist_ok=True)
    return p
