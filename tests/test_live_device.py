"""A call played into a real virtual audio device reaches the supervisor hub as alerts."""
import json
import subprocess
import time

import soundfile as sf

from tests.live_support import MONITOR, free_port, hub_alerts, hub_process, pulse_null_sinks, wait_port


def wait_for(predicate, timeout: float, step: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def run_desk_on_a_played_call(tmp_path, env, devices, play, call="jingyi-rude", profile="jingyi"):
    """Start hub + `monitor live`, hook-start a call, play it, hook-end it; the hub's alerts and desk output."""
    with hub_process(tmp_path) as (ws_url, http, token):
        control = free_port()
        desk = subprocess.Popen(MONITOR + ["live", "--profile", profile, *devices,
                                           "--control-port", str(control), "--no-audio-calls", "--max-calls", "1",
                                           "--hub", ws_url, "--token", token, "--desk", "desk-7",
                                           "--spool", str(tmp_path / "desk.spool")],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_port(control, timeout=60)
            subprocess.run(MONITOR + ["call", "start", "--port", str(control), "--id", "call-1"], check=True,
                           capture_output=True, env=env)
            play()
            subprocess.run(MONITOR + ["call", "end", "--by", "caller", "--port", str(control)], check=True,
                           capture_output=True, env=env)
            out, err = desk.communicate(timeout=120)
        finally:
            if desk.poll() is None:
                desk.kill()
        assert desk.returncode == 0, err[-2000:]
        return wait_for(lambda: hub_alerts(http, token), timeout=10), out


def expected(samples_dir, call="jingyi-rude"):
    labels = json.loads((samples_dir / f"{call}.json").read_text())
    return {(v["rule"], v.get("phrase")) for v in labels["violations"]}


def test_playing_a_call_into_the_desk_device_raises_its_alerts_at_the_hub(tmp_path, samples_dir):
    """One stereo device: channel 0 the agent, 1 the caller (the null sink's monitor)."""
    with pulse_null_sinks(_mkdir(tmp_path / "pa")) as env:
        env = {**env, "PULSE_SOURCE": "callsink.monitor"}

        def play():
            subprocess.run(["paplay", "-d", "callsink", str(samples_dir / "jingyi-rude.flac")], check=True,
                           env=env, timeout=60)

        alerts, out = run_desk_on_a_played_call(tmp_path, env, ["--agent-device", "pulse"], play)
    assert {(a["rule"], a.get("phrase")) for a in alerts} == expected(samples_dir), (alerts, out)
    assert all(a["desk"] == "desk-7" and a["call_id"] == "call-1" for a in alerts)
    greeting = next(a for a in alerts if a["rule"] == "greeting")
    # Raised once the opening words are known (both sides talk across the 5 s deadline
    # here), not at the end of the 24 s call.
    assert greeting["emitted"] <= 10.0
    assert "dropped 0" in out


def test_two_devices_one_per_side_of_the_call(tmp_path, samples_dir):
    """The agent's microphone and the call's playback side as two input devices."""
    audio, rate = sf.read(samples_dir / "jingyi-rude.flac", dtype="float32")
    for i, side in enumerate(("agentsink", "callersink")):
        sf.write(tmp_path / f"{side}.wav", audio[:, i], rate)
    with pulse_null_sinks(_mkdir(tmp_path / "pa"), sinks=("agentsink", "callersink"), channels=1) as env:

        def play():
            players = [subprocess.Popen(["paplay", "-d", side, str(tmp_path / f"{side}.wav")], env=env)
                       for side in ("agentsink", "callersink")]
            for p in players:
                assert p.wait(timeout=60) == 0

        alerts, out = run_desk_on_a_played_call(
            tmp_path, env, ["--agent-device", "agentsink", "--caller-device", "callersink"], play)
    assert {(a["rule"], a.get("phrase")) for a in alerts} == expected(samples_dir), (alerts, out)


def _mkdir(p):
    p.mkdir(parents=True, exist_ok=True)
    return p


def test_one_mono_device_with_both_sides_mixed(tmp_path, samples_dir):
    """A recorder tap or PBX line giving one channel with both sides: `monitor live --mono`
    tells them apart as batch mono scoring does; the caller's words raise nothing against the agent."""
    audio, rate = sf.read(samples_dir / "jingyi-rude.flac", dtype="float32")
    sf.write(tmp_path / "mix.wav", 0.5 * (audio[:, 0] + audio[:, 1]), rate)
    labels = json.loads((samples_dir / "jingyi-rude.json").read_text())
    with pulse_null_sinks(_mkdir(tmp_path / "pa"), sinks=("mixsink",), channels=1) as env:

        def play():
            subprocess.run(["paplay", "-d", "mixsink", str(tmp_path / "mix.wav")], check=True, env=env, timeout=60)

        alerts, out = run_desk_on_a_played_call(tmp_path, env, ["--agent-device", "mixsink", "--mono"], play)
    rules = {a["rule"] for a in alerts}
    assert "greeting" in rules, (alerts, out)  # the rude opening "喂，什么事？" is the agent's
    for a in alerts:
        if a["rule"] == "forbidden":
            said = [u for u in labels["utterances"] if u["start"] < a["end"] and a["start"] < u["end"]]
            assert any(u["channel"] == "agent" for u in said), a
