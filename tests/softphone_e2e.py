"""A desk beside a real softphone: a labelled call placed over real SIP (baresip, G.711) and captured from sound devices.

Used by tests/test_softphone_baresip.py and scripts/bench_softphone.py.

The agent's softphone hears the agent through a PulseAudio null sink ("agentmic",
which the agent's side of the call is played into) and plays the caller into a
headset sink ("agentspk"). The desk captures both from sound devices, as on a real
desk, and follows baresip's own call events over ctrl_tcp. The caller's baresip
speaks the caller's side of the recording.
"""
from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import soundfile as sf

from tests.baresip_support import sip_call_pair
from tests.live_support import MONITOR, hub_alerts, hub_process, pulse_null_sinks


@dataclass
class PlannedCall:
    """The agent hangs up `agent_hangs_up_at` s after pick-up; None: the caller hangs up when its side ends."""

    agent_hangs_up_at: float | None = None


@dataclass
class CallRun:
    call_id: str
    planned: PlannedCall
    desks_during: list[dict] = field(default_factory=list)  # GET /api/desks while the call went on


@dataclass
class SoftphoneRun:
    calls: list[CallRun]
    alerts: list[dict]
    desks_after: list[dict]
    desk_out: str
    desk_err: str
    desk_returncode: int
    desk_cpu_s: float
    desk_wall_s: float
    desk_peak_rss: int


def split_call(recording: Path, labels: dict, tmp: Path) -> tuple[Path, Path, float]:
    """The agent's side (16 kHz) and the caller's side cut where the caller hung up; that time."""
    audio, rate = sf.read(recording, dtype="float32", always_2d=True)
    ch = labels["channels"]
    cut = float(labels["hangup"]["t"]) if labels.get("hangup") else len(audio) / rate
    agent, caller = tmp / "agent.wav", tmp / "caller.wav"
    sf.write(agent, audio[:int(cut * rate), ch["agent"]], rate)
    sf.write(caller, audio[:int(cut * rate), ch["caller"]], rate)
    return agent, caller, cut


def _get(url: str, token: str) -> dict:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def run_softphone_desk(tmp: Path, recording: Path, labels: dict, plan: list[PlannedCall],
                       profile: str) -> SoftphoneRun:
    """Hub, two baresip phones and `monitor live --softphone baresip://...`; the planned calls, one by one."""
    pa = tmp / "pa"
    pa.mkdir(parents=True, exist_ok=True)
    agent_wav, caller_wav, caller_ends = split_call(recording, labels, tmp)
    runs: list[CallRun] = []
    with pulse_null_sinks(pa, sinks=("agentmic", "agentspk"), channels=1) as env, \
            hub_process(tmp) as (ws_url, http, token), \
            sip_call_pair(tmp / "sip", env, "agentmic", "agentspk", caller_wav) as pair:
        desk = psutil.Popen(MONITOR + ["live", "--profile", profile, "--agent-device", "agentmic",
                                       "--caller-device", "agentspk",
                                       "--softphone", f"baresip://127.0.0.1:{pair.agent_ctrl_port}",
                                       "--control-port", "0", "--max-calls", str(len(plan)),
                                       "--hub", ws_url, "--token", token, "--desk", "desk-7",
                                       "--spool", str(tmp / "desk.spool")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out: list[str] = []
        listening = threading.Event()

        def read_stdout() -> None:
            assert desk.stdout is not None
            for line in desk.stdout:
                out.append(line)
                if "listening" in line:
                    listening.set()

        reader = threading.Thread(target=read_stdout, daemon=True)
        reader.start()
        peak_rss, t0 = 0, time.monotonic()
        try:
            if not listening.wait(120):
                raise RuntimeError(f"the desk did not start: {''.join(out)[-2000:]}")
            for planned in plan:
                call_id = pair.dial()
                picked_up = time.monotonic()
                player = subprocess.Popen(["paplay", "-d", "agentmic", str(agent_wav)], env=env)
                run = CallRun(call_id, planned)
                runs.append(run)
                ends_at = planned.agent_hangs_up_at if planned.agent_hangs_up_at is not None else caller_ends + 1.5
                while time.monotonic() - picked_up < ends_at:
                    peak_rss = max(peak_rss, desk.memory_info().rss)
                    if len(run.desks_during) < 3 and time.monotonic() - picked_up > 3.0:
                        run.desks_during.append(_get(f"{http}/api/desks", token))
                    time.sleep(0.5)
                if planned.agent_hangs_up_at is not None:
                    pair.hangup_agent()
                else:
                    pair.wait_caller_closed(timeout=30)
                player.wait(timeout=60)
                time.sleep(1.0)  # the phones settle before the next call
            cpu = desk.cpu_times()
            _, err = desk.communicate(timeout=180)
            reader.join(timeout=10)
        finally:
            if desk.poll() is None:
                desk.kill()
        wall = time.monotonic() - t0
        alerts = hub_alerts(http, token)
        desks_after = _get(f"{http}/api/desks", token)["desks"]
    return SoftphoneRun(runs, alerts, desks_after, "".join(out), err, desk.returncode,
                        cpu.user + cpu.system, wall, peak_rss)
