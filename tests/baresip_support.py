"""Two real baresip user agents on loopback placing a real SIP call (G.711 PCMU).

The agent's softphone is wired like a desk's: it hears the agent through a
"microphone" (the monitor of a PulseAudio null sink, which a test plays the
agent's side into with paplay) and plays the call into a "headset" (another
null sink, whose monitor the desk captures as the caller's side). The caller
"speaks" a WAV file (baresip's aufile) and hears the agent in a third sink.

    with pulse_null_sinks(pa, sinks=("agentmic", "agentspk"), channels=1) as env, \\
         sip_call_pair(tmp, env, "agentmic", "agentspk", caller_wav) as pair:
        desk connects to baresip://127.0.0.1:{pair.agent_ctrl_port}
        call_id = pair.dial()            # the caller dials; the agent answers at once
        ...; pair.hangup_agent() or pair.hangup_caller()

The agent's ctrl_tcp belongs to the desk (it serves one client only), so both
phones are driven through baresip's `httpd` module; the caller's own ctrl_tcp
is read here for the caller's side of the call (`caller_events`).

What baresip 1.0.0 does (measured on loopback):
- dial -> the agent's CALL_ESTABLISHED: 10-80 ms (auto answer). The caller's
  aufile starts at the SDP answer, about when the agent's call is established;
  its t = 0 reaches the agent's speaker sink 0.18-0.20 s after the agent's
  CALL_ESTABLISHED, sample-exact (correlation 1.00 at the sink's 16 kHz).
- paplay into the agent's microphone sink: 0.4-0.9 s from launch to the caller's ear.
- aufile loads the whole file and at its end closes the call. It checks once
  a second from the call's start, so for a file of L s: AUDIO_ERROR "0,end of
  file" at ceil(L) s, the caller's CALL_CLOSED "end of file" 0.14 s later and
  the agent's CALL_CLOSED "Connection reset by peer" (the caller hung up)
  at ceil(L) + 0.28 s after the agent's CALL_ESTABLISHED. So the caller's WAV,
  cut at the hang-up, is the caller's hang-up; for an agent's hang-up make the
  WAV longer than the call. Each call plays the file from its start.
- aufile needs 8000 Hz mono 16-bit (the PCMU rate): `sip_call_pair` converts.
- PulseAudio clients (paplay, pacat) can take ~2 s before their audio flows.
- On SIGTERM baresip sends SHUTDOWN and EXIT but no CALL_CLOSED for its calls
  (the peer gets a BYE: "Connection reset by peer"); after SIGKILL the peer's call stays up (no RTP timeout).
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from monitor.live.baresip import NetstringDecoder, netstring
from tests.live_support import free_port

BARESIP = shutil.which("baresip") or "/usr/bin/baresip"
MODULES = "/usr/lib/baresip/modules"
RATE = 8000  # PCMU's clock: what aufile must be given

CONFIG = """\
poll_method		epoll
sip_listen		127.0.0.1:{sip_port}
net_interface		127.0.0.1
call_local_timeout	120
call_max_calls		4
audio_player		{player}
audio_source		{source}
audio_alert		{player}
audio_level		no
ausrc_format		s16
auplay_format		s16
auenc_format		s16
audec_format		s16
audio_buffer		20-160
rtp_tos			184
rtcp_mux		no
jitter_buffer_delay	5-10
rtp_stats		no
module_path		{modules}
module			g711.so
module			alsa.so
module			aufile.so
module_tmp		account.so
module_app		menu.so
ringback_disabled	yes
menu_bell		no
module_app		ctrl_tcp.so
module_app		httpd.so
ctrl_tcp_listen		127.0.0.1:{ctrl_port}
http_listen		127.0.0.1:{http_port}
"""


def baresip_config(sip_port: int, ctrl_port: int, http_port: int, source: str, player: str) -> str:
    """A baresip 1.0 config on loopback only: PCMU, ALSA/aufile audio, ctrl_tcp and httpd."""
    return CONFIG.format(sip_port=sip_port, ctrl_port=ctrl_port, http_port=http_port,
                         source=source, player=player, modules=MODULES)


def account_line(user: str, sip_port: int, answer: str = "manual") -> str:
    """One account, never registering (regint=0), PCMU only; answer: manual|auto."""
    return f"<sip:{user}@127.0.0.1:{sip_port}>;regint=0;answermode={answer};audio_codecs=PCMU\n"


@dataclass
class UserAgent:
    """One baresip process and its config dir; commands go through its httpd."""

    name: str
    dir: Path
    env: dict
    sip_port: int
    ctrl_port: int
    http_port: int
    proc: subprocess.Popen | None = None
    starts: int = 0

    @property
    def uri(self) -> str:
        return f"sip:{self.name}@127.0.0.1:{self.sip_port}"

    @property
    def log(self) -> Path:
        """stdout+stderr of the current run (agent.log, then agent-2.log after a restart...)."""
        return self.dir.parent / (f"{self.name}.log" if self.starts <= 1 else f"{self.name}-{self.starts}.log")

    def start(self, timeout: float = 15.0) -> None:
        self.starts += 1
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([BARESIP, "-f", str(self.dir)], env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        for port in (self.ctrl_port, self.http_port):
            while not _listening(port):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"baresip {self.name} did not start (exit {self.proc.poll()}): "
                                       f"{self.log_text()[-1500:]}")
                time.sleep(0.05)

    def command(self, line: str, timeout: float = 10.0) -> str:
        """A menu command, e.g. "hangup" or "dial sip:...", through httpd; its text reply."""
        url = f"http://127.0.0.1:{self.http_port}/raw/?" + urllib.parse.quote("/" + line, safe="/")  # a bare "@" gets a 404
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.read().decode(errors="replace")

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM (baresip hangs up its calls and exits); SIGKILL if it does not within `timeout`."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def kill(self) -> None:
        """SIGKILL: a crash, no goodbye on any socket."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class CtrlTcpReader:
    """Reads one baresip's ctrl_tcp events in a thread (for the caller's side)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.settimeout(None)
        self.events: list[dict] = []
        self.raw = bytearray()  # every byte received, as sent
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        dec = NetstringDecoder()
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                return
            self.raw += data
            for payload in dec.feed(data):
                msg = json.loads(payload)
                if msg.get("event"):
                    msg["_t"] = time.monotonic()
                    with self.cond:
                        self.events.append(msg)
                        self.cond.notify_all()

    def send(self, command: str, params: str | None = None) -> None:
        msg = {"command": command, **({"params": params} if params is not None else {})}
        self.sock.sendall(netstring(json.dumps(msg).encode()))

    def wait(self, predicate, start: int = 0, timeout: float = 15.0) -> dict:
        """The first event from index `start` on for which predicate(event) holds."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for ev in self.events[start:]:
                    if predicate(ev):
                        return ev
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no such baresip event in {timeout} s; got {[e.get('type') for e in self.events]}")
                self.cond.wait(left)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)


@dataclass
class SipCallPair:
    agent: UserAgent
    caller: UserAgent
    caller_ctrl: CtrlTcpReader
    caller_wav: Path  # the 8 kHz mono file the caller speaks
    caller_ear_sink: str
    calls: list[str] = field(default_factory=list)

    @property
    def agent_ctrl_port(self) -> int:
        """The agent's ctrl_tcp port: the desk's `--softphone baresip://127.0.0.1:PORT`."""
        return self.agent.ctrl_port

    @property
    def agent_log(self) -> Path:
        return self.agent.log

    @property
    def caller_log(self) -> Path:
        return self.caller.log

    @property
    def caller_events(self) -> list[dict]:
        return self.caller_ctrl.events

    def dial(self, timeout: float = 15.0) -> str:
        """The caller dials the agent (who answers at once); the call id once the call is up at the caller."""
        start = len(self.caller_ctrl.events)
        self.caller.command(f"dial {self.agent.uri}")
        ev = self.caller_ctrl.wait(lambda e: e.get("type") == "CALL_ESTABLISHED" or (
            e.get("type") == "CALL_CLOSED" and e.get("id") not in self.calls), start, timeout)
        if ev["type"] != "CALL_ESTABLISHED":
            raise RuntimeError(f"the call failed at the caller: {ev.get('param')} (see {self.caller.log})")
        self.calls.append(ev["id"])
        return ev["id"]

    def hangup_agent(self, timeout: float = 10.0) -> str:
        """The agent hangs up (a local hang-up at the agent's phone); the caller's CALL_CLOSED param."""
        return self._hangup(self.agent, timeout)

    def hangup_caller(self, timeout: float = 10.0) -> str:
        """The caller hangs up (the agent's phone gets a BYE); the caller's CALL_CLOSED param."""
        return self._hangup(self.caller, timeout)

    def _hangup(self, ua: UserAgent, timeout: float) -> str:
        call_id = self.calls[-1] if self.calls else None
        ua.command("hangup")
        ev = self.caller_ctrl.wait(lambda e: e.get("type") == "CALL_CLOSED" and e.get("id") == call_id,
                                   0, timeout)
        return ev.get("param", "")

    def wait_caller_closed(self, timeout: float = 60.0) -> dict:
        """The caller's CALL_CLOSED of the last call (e.g. at the end of its WAV)."""
        call_id = self.calls[-1] if self.calls else None
        return self.caller_ctrl.wait(lambda e: e.get("type") == "CALL_CLOSED" and e.get("id") == call_id,
                                     0, timeout)

    def restart_agent(self, crash: bool = False) -> None:
        """Stop (SIGTERM, or SIGKILL with crash=True) and start the agent's baresip again, same ports."""
        if crash:
            self.agent.kill()
        else:
            self.agent.stop()
        self.agent.start()


def caller_audio(src: Path | None, out: Path, channel: int | None = None, seconds: float = 120.0) -> Path:
    """The caller's speech as aufile wants it: 8 kHz mono 16-bit WAV.

    `src` None: `seconds` of a quiet noise floor (never digital silence).
    A stereo `src` needs `channel` (e.g. 1, the caller's channel of a labelled call).
    """
    if src is None:
        x = (np.random.default_rng(7).standard_normal(int(seconds * RATE)) * 0.003).astype(np.float32)
    else:
        audio, rate = sf.read(src, dtype="float32", always_2d=True)
        if audio.shape[1] > 1 and channel is None:
            raise ValueError(f"{src} has {audio.shape[1]} channels: say which one the caller speaks")
        x = audio[:, channel or 0]
        if rate != RATE:
            import soxr

            x = soxr.resample(x, rate, RATE)
    sf.write(out, np.clip(x, -1, 1), RATE, subtype="PCM_16")
    return out


@contextmanager
def sip_call_pair(tmp: Path, pulse_env: dict, agent_mic_sink: str, agent_speaker_sink: str,
                  caller_wav: Path | None = None, *, caller_channel: int | None = None,
                  caller_ear_sink: str | None = None):
    """Agent and caller baresip on loopback, wired to the PulseAudio server of `pulse_env`.

    agent_mic_sink: a null sink; the agent's phone captures its monitor (play the
      agent's side into this sink).
    agent_speaker_sink: a null sink; the agent's phone plays the call into it
      (the desk captures its monitor, e.g. the ALSA device of the same name that
      `pulse_null_sinks` defines, as the caller's side).
    caller_wav: what the caller says (converted to 8 kHz mono); None: a quiet
      noise floor for two minutes. At its end the caller hangs up.
    caller_ear_sink: where the caller hears the agent; None: a private null sink
      made on that server for the pair (and removed after).
    """
    tmp.mkdir(parents=True, exist_ok=True)
    home = tmp / "baresip-home"  # its .asoundrc names the ALSA PCMs the phones use
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in pulse_env.items() if k not in ("PULSE_SINK", "PULSE_SOURCE")}
    env["HOME"] = str(home)
    with ExitStack() as stack:
        if caller_ear_sink is None:
            caller_ear_sink = f"baresip_caller_ear_{os.getpid()}_{free_port()}"
            module = subprocess.run(["pactl", "load-module", "module-null-sink", f"sink_name={caller_ear_sink}",
                                     "channels=1", "rate=8000"], env=env, check=True, capture_output=True,
                                    text=True, timeout=10).stdout.strip()
            stack.callback(subprocess.run, ["pactl", "unload-module", module], env=env, capture_output=True,
                           timeout=10)
        pcms = {"bs_agent_mic": f"{agent_mic_sink}.monitor", "bs_agent_speaker": agent_speaker_sink,
                "bs_caller_ear": caller_ear_sink}
        (home / ".asoundrc").write_text("".join(f'pcm.{name} {{\n  type pulse\n  device "{dev}"\n}}\n'
                                                for name, dev in pcms.items()))
        wav = caller_audio(caller_wav, tmp / "caller-8k.wav", caller_channel)
        agent = _user_agent(tmp, "agent", env, "alsa,bs_agent_mic", "alsa,bs_agent_speaker", "auto")
        caller = _user_agent(tmp, "caller", env, f"aufile,{wav}", "alsa,bs_caller_ear", "manual")
        stack.callback(agent.stop)
        stack.callback(caller.stop)
        agent.start()
        caller.start()
        reader = CtrlTcpReader(caller.ctrl_port)
        stack.callback(reader.close)
        yield SipCallPair(agent, caller, reader, wav, caller_ear_sink)


def _user_agent(tmp: Path, name: str, env: dict, source: str, player: str, answer: str) -> UserAgent:
    d = tmp / f"baresip-{name}"
    d.mkdir(exist_ok=True)
    ua = UserAgent(name, d, env, sip_port=free_port(), ctrl_port=free_port(), http_port=free_port())
    (d / "config").write_text(baresip_config(ua.sip_port, ua.ctrl_port, ua.http_port, source, player))
    (d / "accounts").write_text(account_line(name, ua.sip_port, answer))
    (d / "contacts").write_text("")
    return ua


def _listening(port: int) -> bool:
    """A TCP socket listens on `port`, seen in /proc/net/tcp: connecting to ctrl_tcp
    to find out would take its only connection from its client."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if state == "0A" and int(local.split(":")[1], 16) == port:
            return True
    return False

