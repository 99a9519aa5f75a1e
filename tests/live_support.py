"""Running real processes for the live tests: a PulseAudio server, the hub, the desk."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MONITOR = [str(REPO / ".venv" / "bin" / "monitor")] if (REPO / ".venv" / "bin" / "monitor").exists() \
    else [sys.executable, "-m", "monitor.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port}")


def stop(proc: subprocess.Popen, timeout: float) -> None:
    """Ask a server process to stop; kill it if it does not within `timeout` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()


@contextmanager
def pulse_null_sinks(tmp: Path, sinks=("callsink",), channels: int = 2):
    """A private PulseAudio server with null sinks; yields the env to reach it.

    Each sink's monitor is also an ALSA capture device named after the sink
    (via an .asoundrc in the server's HOME), so two sinks give a desk two
    input devices, one per role.
    """
    exe = shutil.which("pulseaudio")
    if not exe:
        raise RuntimeError("pulseaudio is not installed (scripts/apt-packages.txt lists it; run scripts/setup.sh)")
    sock = tmp / "native"
    conf = tmp / "pa.pa"
    lines = [f"load-module module-native-protocol-unix auth-anonymous=1 socket={sock}"]
    lines += [f"load-module module-null-sink sink_name={s} channels={channels} rate=16000" for s in sinks]
    lines += ["load-module module-always-sink"]
    conf.write_text("\n".join(lines) + "\n")
    (tmp / ".asoundrc").write_text("".join(
        f'pcm.{s} {{\n  type pulse\n  device {s}.monitor\n  hint {{ show on description "{s}" }}\n}}\n'
        for s in sinks))
    env = {**os.environ, "PULSE_RUNTIME_PATH": str(tmp), "PULSE_SERVER": f"unix:{sock}", "HOME": str(tmp)}
    proc = subprocess.Popen([exe, "-n", "-F", str(conf), "--exit-idle-time=-1", "--daemonize=no",
                             "--log-target=stderr"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while not sock.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"pulseaudio did not start: {proc.stderr.read().decode()[-500:]}")
            time.sleep(0.1)
        yield env
    finally:
        stop(proc, 5)


@contextmanager
def hub_process(tmp: Path, token: str = "hub-token-for-live-tests", tls: tuple[Path, Path] | None = None):
    """`monitor hub` on a free loopback port; with `tls` (cert, key) it serves wss:// and https://."""
    port = free_port()
    extra = ["--cert", str(tls[0]), "--key", str(tls[1])] if tls else []
    proc = subprocess.Popen(MONITOR + ["hub", "--port", str(port), "--db", str(tmp / "hub.sqlite3"),
                                       "--token", token, "--log-level", "warning", *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    s = "s" if tls else ""
    try:
        wait_port(port)
        yield f"ws{s}://127.0.0.1:{port}/ws", f"http{s}://127.0.0.1:{port}", token
    finally:
        stop(proc, 10)


def hub_alerts(http: str, token: str, cafile: Path | None = None) -> list[dict]:
    import ssl

    ctx = ssl.create_default_context(cafile=str(cafile)) if cafile else None
    req = urllib.request.Request(f"{http}/api/alerts?since=0", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
        data = json.loads(r.read())
    return data["alerts"] if isinstance(data, dict) else data


def replay_in_process(path: Path, profile, transcriber, sinks=(), live=None, call_id: str = "c"):
    """A recording through an in-process desk as fast as it decodes (`monitor replay` without
    --realtime): the call's summary."""
    import asyncio

    from monitor.live.desk import Desk, DeskOptions
    from monitor.live.session import LiveOptions
    from monitor.live.sources import ReplaySource

    source = ReplaySource(path, speed=0.0)

    async def go():
        desk = Desk(profile, transcriber, list(sinks), DeskOptions(desk="t", live=live or LiveOptions()))
        try:
            return await desk.run_call(source.frames(), source.roles, call_id, speed=0.0)
        finally:
            await desk.close()

    return asyncio.run(go())
