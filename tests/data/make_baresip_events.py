"""Record what baresip's ctrl_tcp really sends, for tests/test_baresip_client.py.

    .venv/bin/python -m tests.data.make_baresip_events

Two real baresip UAs on loopback (tests/baresip_support.py); the raw bytes of
the agent's and the caller's ctrl_tcp streams over three calls go to
baresip-1.0-events.bin (agent) and baresip-1.0-caller-events.bin (caller):

1. the caller hangs up after ~5.5 s (RTCP events come every 5 s)
2. the agent hangs up after ~1 s
3. the caller's WAV (6 s) ends: aufile closes the caller's call ("end of file")
then the agent's baresip gets SIGTERM (SHUTDOWN, EXIT) and the stream ends.
The agent's stream opens with the answer to a `listcalls` command.
"""
from __future__ import annotations

import json
import socket
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from monitor.live.baresip import netstring
from tests.baresip_support import sip_call_pair
from tests.live_support import pulse_null_sinks

HERE = Path(__file__).resolve().parent


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        wav = tmp / "caller.wav"
        t = np.arange(6 * 8000) / 8000
        sf.write(wav, 0.1 * np.sin(2 * np.pi * 440 * t), 8000, subtype="PCM_16")
        (tmp / "pa").mkdir()
        with pulse_null_sinks(tmp / "pa", sinks=("agentmic", "agentspk"), channels=1) as env, \
                sip_call_pair(tmp / "bs", env, "agentmic", "agentspk", wav) as pair:
            raw = bytearray()
            sock = socket.create_connection(("127.0.0.1", pair.agent_ctrl_port))
            sock.sendall(netstring(json.dumps({"command": "listcalls", "token": "probe"}).encode()))

            def read() -> None:
                while data := sock.recv(65536):
                    raw.extend(data)

            reader = threading.Thread(target=read)
            reader.start()
            time.sleep(0.5)
            pair.dial()
            time.sleep(5.5)
            pair.hangup_caller()
            time.sleep(0.5)
            pair.dial()
            time.sleep(1)
            pair.hangup_agent()
            time.sleep(0.5)
            pair.dial()
            pair.wait_caller_closed(timeout=15)
            time.sleep(0.5)
            pair.agent.stop()
            reader.join(10)
            sock.close()
            caller = bytes(pair.caller_ctrl.raw)
    (HERE / "baresip-1.0-events.bin").write_bytes(bytes(raw))
    (HERE / "baresip-1.0-caller-events.bin").write_bytes(caller)
    print(f"agent {len(raw)} bytes, caller {len(caller)} bytes")


if __name__ == "__main__":
    main()
