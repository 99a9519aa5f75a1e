"""baresip's ctrl_tcp events as the desk's softphone (`--softphone baresip://HOST:PORT`).

The decoder and the mapping run on bytes recorded from baresip 1.0.0
(tests/data/make_baresip_events.py); the client runs against fake servers and
against two real baresip user agents placing real SIP calls on loopback.
"""
from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from monitor.events import Control
from monitor.live.baresip import (
    BaresipEvents,
    NetstringDecoder,
    NetstringError,
    SoftphoneError,
    event_to_control,
    hangup_by,
    netstring,
    parse_softphone_url,
)
from tests.baresip_support import sip_call_pair
from tests.live_support import free_port, pulse_null_sinks

DATA = Path(__file__).parent / "data"
AGENT_STREAM = (DATA / "baresip-1.0-events.bin").read_bytes()
CALLER_STREAM = (DATA / "baresip-1.0-caller-events.bin").read_bytes()


def messages(stream: bytes) -> list[dict]:
    return [json.loads(p) for p in NetstringDecoder().feed(stream)]


# -- netstrings -----------------------------------------------------------------------------
def test_a_recorded_stream_decodes_the_same_whole_or_byte_by_byte():
    whole = NetstringDecoder().feed(AGENT_STREAM)
    assert len(whole) == AGENT_STREAM.count(b':{"event":') + AGENT_STREAM.count(b':{"response":')
    dec = NetstringDecoder()
    pieces: list[bytes] = []
    for i in range(len(AGENT_STREAM)):
        pieces += dec.feed(AGENT_STREAM[i:i + 1])
    assert pieces == whole and dec.pending == 0
    assert json.loads(whole[0])["response"] is True  # the answer to `listcalls`
    assert json.loads(whole[-1]) == {"event": True, "type": "EXIT", "class": "application"}


def test_several_netstrings_in_one_feed_and_one_split_across_feeds():
    dec = NetstringDecoder()
    assert dec.feed(b'2:{},0:,5:hello,3:ab') == [b"{}", b"", b"hello"]
    assert dec.pending == len(b"3:ab")
    assert dec.feed(b"c") == []  # the comma is still missing
    assert dec.feed(b",1") == [b"abc"]
    assert dec.feed(b"2:" + b"x" * 12 + b",") == [b"x" * 12]


@pytest.mark.parametrize("garbage, says", [
    (b"HTTP/1.1 400 Bad Request\r\n\r\n", "expected a length, got b'HTTP/1.1 4"),
    (b"SIP/2.0 400 Bad Request\r\n", "expected a length"),
    (b"5:hello;", "not followed by ','"),
    (b"05:hello,", "expected a length, got b'05:hello,'"),
    (b"-1:,", "expected a length"),
    (b":,", "expected a length"),
    (b"99999999999999999999", "over the limit"),  # refused before any payload arrives
    (b"2000000:", "length 2000000 is over the limit of 1048576 bytes"),
])
def test_garbage_is_refused_with_a_clear_error(garbage, says):
    dec = NetstringDecoder()
    with pytest.raises(NetstringError, match="not a netstring stream") as err:
        dec.feed(garbage)
    assert says in str(err.value)
    with pytest.raises(NetstringError):  # framing is lost for good
        dec.feed(b"2:{},")


def test_netstrings_before_the_garbage_come_with_the_error():
    dec = NetstringDecoder(max_length=10)
    with pytest.raises(NetstringError, match="over the limit of 10") as err:
        dec.feed(b"2:{},0:,11:")
    assert err.value.payloads == [b"{}", b""]
    assert netstring(b"{}") == b"2:{},"


# -- events -> Controls -----------------------------------------------------------------------
def test_the_recorded_calls_become_starts_and_ends_with_who_hung_up():
    """Agent's phone: call 1 the caller hangs up, call 2 the agent, call 3 the caller's WAV ends."""
    controls = [c for c in map(event_to_control, messages(AGENT_STREAM)) if c]
    ids = [m["id"] for m in messages(AGENT_STREAM) if m.get("type") == "CALL_ESTABLISHED"]
    peer = messages(AGENT_STREAM)[1]["peeruri"]
    assert peer.startswith("sip:caller@127.0.0.1:")
    assert controls == [
        Control("start", call_id=ids[0], peer=peer, source="baresip", reason=peer),
        Control("end", by="caller", call_id=ids[0], peer=peer, source="baresip", reason="Connection reset by peer"),
        Control("start", call_id=ids[1], peer=peer, source="baresip", reason=peer),
        Control("end", by="agent", call_id=ids[1], peer=peer, source="baresip", reason="Connection reset by user"),
        Control("start", call_id=ids[2], peer=peer, source="baresip", reason=peer),
        Control("end", by="caller", call_id=ids[2], peer=peer, source="baresip", reason="Connection reset by peer"),
    ]
    # CALL_RTCP is of class "call" too, and ignored
    assert sum(m.get("type") == "CALL_RTCP" for m in messages(AGENT_STREAM)) >= 3


def test_the_callers_phone_sees_the_same_calls_from_its_side():
    """Who hung up is always relative to the phone that reports it; the id is the SIP Call-ID on both."""
    caller = [c for c in map(event_to_control, messages(CALLER_STREAM)) if c]
    agent = [c for c in map(event_to_control, messages(AGENT_STREAM)) if c]
    assert [c.call_id for c in caller] == [c.call_id for c in agent]
    assert [(c.action, c.by, c.reason) for c in caller if c.action == "end"] == [
        ("end", "agent", "Connection reset by user"),  # the caller's own hang-up: local
        ("end", "caller", "Connection reset by peer"),
        ("end", None, "end of file"),  # aufile ran out: an audio device error, nobody's hang-up
    ]


@pytest.mark.parametrize("param", ["486 Busy Here", "Local timeout", "rtp stream error", "end of file",
                                   "408 Request Timeout", "", "Connection timed out"])
def test_other_reasons_leave_who_hung_up_to_the_audio(param):
    ev = {"event": True, "class": "call", "type": "CALL_CLOSED", "id": "x1", "peeruri": "sip:b@h", "param": param}
    assert event_to_control(ev) == Control("end", by=None, call_id="x1", peer="sip:b@h", source="baresip",
                                           reason=param)
    assert hangup_by(param) is None


@pytest.mark.parametrize("event", [
    {"event": True, "class": "call", "type": "CALL_RINGING", "id": "a", "param": "sip:x@y"},
    {"event": True, "class": "call", "type": "CALL_INCOMING", "id": "a", "param": "sip:x@y"},
    {"event": True, "class": "call", "type": "CALL_RTCP", "id": "a", "param": "audio"},
    {"event": True, "class": "other", "type": "CALL_ESTABLISHED", "id": "a"},
    {"event": True, "class": "register", "type": "REGISTER_OK", "param": "200 OK"},
    {"event": True, "class": "application", "type": "EXIT"},
    {"response": True, "ok": True, "data": "", "token": "t"},
    {"event": False, "class": "call", "type": "CALL_CLOSED", "id": "a"},
])
def test_everything_else_is_ignored(event):
    assert event_to_control(event) is None


def test_missing_fields_become_none():
    assert event_to_control({"event": True, "class": "call", "type": "CALL_ESTABLISHED"}) == \
        Control("start", source="baresip")
    assert event_to_control({"event": True, "class": "call", "type": "CALL_CLOSED", "id": 7, "param": None}) == \
        Control("end", source="baresip")


@pytest.mark.parametrize("url, expected", [
    ("baresip://127.0.0.1:4444", ("127.0.0.1", 4444)),
    ("baresip://localhost:4444/", ("localhost", 4444)),
    ("baresip://[::1]:4444", ("::1", 4444)),
])
def test_softphone_url(url, expected):
    assert parse_softphone_url(url) == expected


@pytest.mark.parametrize("url", ["127.0.0.1:4444", "baresip://127.0.0.1", "http://127.0.0.1:4444",
                                 "baresip://:4444", "baresip://h:0", "baresip://h:70000", "baresip://h:44x",
                                 "baresip://h:4444/x", "baresip://h:4444?a=1", "baresip://u@h:4444", ""])
def test_bad_softphone_urls(url):
    with pytest.raises(ValueError, match=r"baresip://HOST:PORT"):
        parse_softphone_url(url)


# -- the client against fake servers ----------------------------------------------------------
class Collected:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Control] = asyncio.Queue()

    async def __call__(self, ctl: Control) -> None:
        await self.queue.put(ctl)

    async def next(self, timeout: float = 10.0) -> Control:
        return await asyncio.wait_for(self.queue.get(), timeout)


def probe_answer(request: bytes) -> bytes:
    token = json.loads(NetstringDecoder().feed(request)[0])["token"]
    return netstring(json.dumps({"response": True, "ok": True, "data": "", "token": token}).encode())


def test_client_replays_a_recorded_stream_in_small_chunks():
    n = AGENT_STREAM.split(b":", 1)[0]
    stream = AGENT_STREAM[len(n) + 1 + int(n) + 1:]  # without the recorded answer to `listcalls`

    async def go():
        async def serve(reader, writer):
            writer.write(probe_answer(await reader.read(1000)))
            for i in range(0, len(stream), 7):
                writer.write(stream[i:i + 7])
                await writer.drain()
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        got = Collected()
        client = BaresipEvents("127.0.0.1", port, got, backoff=(0.05, 0.1))
        await client.connect_first()
        task = asyncio.create_task(client.run())
        out = [await got.next() for _ in range(6)]
        await client.close()
        await task
        server.close()
        return out

    out = asyncio.run(go())
    assert [(c.action, c.by) for c in out] == [("start", None), ("end", "caller"), ("start", None),
                                                ("end", "agent"), ("start", None), ("end", "caller")]


def test_client_ends_the_open_call_when_baresip_goes_away_and_reconnects():
    est = next(m for m in messages(AGENT_STREAM) if m.get("type") == "CALL_ESTABLISHED")
    closed_early = {**est, "type": "CALL_CLOSED", "id": "never-up", "param": "486 Busy Here"}
    sdp = {**est, "type": "CALL_REMOTE_SDP", "class": "other", "id": "never-up", "param": "offer"}
    connections = []

    async def go():
        async def serve(reader, writer):
            connections.append(writer)
            if len(connections) == 1:
                writer.write(probe_answer(await reader.read(1000)))
                # a call that fails before pick-up is not ended; the established one is,
                # when the connection drops (baresip died, and the call with it)
                for m in (sdp, closed_early, est):
                    writer.write(netstring(json.dumps(m).encode()))
                await writer.drain()
                await asyncio.sleep(0.2)
                writer.close()
            else:
                writer.write(netstring(json.dumps({**est, "id": "second"}).encode()))
                await writer.drain()
                await asyncio.sleep(5)

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        got = Collected()
        client = BaresipEvents("127.0.0.1", port, got, backoff=(0.05, 0.1))
        await client.connect_first()
        task = asyncio.create_task(client.run())
        out = [await got.next() for _ in range(3)]
        assert client.connected and client.connects == 2 and client.open_calls == ["second"]
        await client.close()
        await asyncio.wait_for(task, 5)
        server.close()
        return out

    out = asyncio.run(go())
    assert [(c.action, c.call_id, c.by, c.reason) for c in out] == [
        ("start", est["id"], None, est["peeruri"]),
        ("end", est["id"], None, "lost the connection to baresip"),
        ("start", "second", None, est["peeruri"]),
    ]


def test_a_port_that_answers_something_else_is_a_clear_error():
    async def go(answer: bytes | None):
        async def serve(reader, writer):
            await reader.read(1000)
            if answer is not None:
                writer.write(answer)
                await writer.drain()
            await asyncio.sleep(2)
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            with pytest.raises(SoftphoneError) as err:
                await BaresipEvents("127.0.0.1", port, Collected(), probe_timeout=0.5).connect_first()
            return str(err.value)
        finally:
            server.close()

    http = asyncio.run(go(b"HTTP/1.1 400 Bad Request\r\n\r\n"))
    assert "does not speak ctrl_tcp" in http and "ctrl_tcp_listen port?" in http and "\n" not in http
    silent = asyncio.run(go(None))
    assert "connected, but no ctrl_tcp answer within 0.5 s" in silent


def test_nothing_listening_is_a_clear_error():
    port = free_port()

    async def go():
        with pytest.raises(SoftphoneError) as err:
            await BaresipEvents("127.0.0.1", port, Collected()).connect_first()
        return str(err.value)

    assert asyncio.run(go()) == (f"baresip ctrl_tcp at 127.0.0.1:{port}: connection refused (is baresip running "
                                 f"with ctrl_tcp_listen 127.0.0.1:{port} and module ctrl_tcp.so?)")


# -- real baresip -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def phones(tmp_path_factory, samples_dir):
    """Agent and caller baresip on loopback, audio through a private PulseAudio server.

    The caller says the caller's side of a labelled call (its first 24 s, anew in each call).
    """
    tmp = tmp_path_factory.mktemp("baresip")
    (tmp / "pa").mkdir()
    with pulse_null_sinks(tmp / "pa", sinks=("agentmic", "agentspk"), channels=1) as env, \
            sip_call_pair(tmp / "phones", env, "agentmic", "agentspk", samples_dir / "jingyi-rude.flac",
                          caller_channel=1) as pair:
        yield pair


async def desk_client(pair, **kw) -> tuple[BaresipEvents, Collected, asyncio.Task]:
    got = Collected()
    client = BaresipEvents("127.0.0.1", pair.agent_ctrl_port, got, backoff=(0.1, 0.5), **kw)
    await client.connect_first()
    return client, got, asyncio.create_task(client.run())


def test_real_calls_start_and_end_with_who_hung_up(phones):
    async def go():
        client, got, task = await desk_client(phones)
        try:
            first = await asyncio.to_thread(phones.dial)
            start1 = await got.next()
            await asyncio.sleep(0.5)
            caller_saw = await asyncio.to_thread(phones.hangup_caller)
            end1 = await got.next()
            second = await asyncio.to_thread(phones.dial)
            start2 = await got.next()
            await asyncio.sleep(0.5)
            caller_saw2 = await asyncio.to_thread(phones.hangup_agent)
            end2 = await got.next()
        finally:
            await client.close()
            await task
        return first, start1, caller_saw, end1, second, start2, caller_saw2, end2

    first, start1, caller_saw, end1, second, start2, caller_saw2, end2 = asyncio.run(go())
    caller_uri = phones.caller.uri
    assert first != second
    assert start1 == Control("start", call_id=first, peer=caller_uri, source="baresip", reason=caller_uri)
    assert end1 == Control("end", by="caller", call_id=first, peer=caller_uri, source="baresip",
                           reason="Connection reset by peer")
    assert caller_saw == "Connection reset by user"
    assert start2 == Control("start", call_id=second, peer=caller_uri, source="baresip", reason=caller_uri)
    assert end2 == Control("end", by="agent", call_id=second, peer=caller_uri, source="baresip",
                           reason="Connection reset by user")
    assert caller_saw2 == "Connection reset by peer"


def test_the_callers_speech_reaches_the_agents_headset(phones):
    """What a desk captures as the caller's side: the caller's WAV, in the agent phone's speaker sink."""
    import soxr

    rec = subprocess.Popen(["pacat", "--record", "--raw", "-d", "agentspk.monitor", "--rate=16000",
                            "--channels=1", "--format=s16le", "--latency-msec=20"],
                           env=phones.agent.env, stdout=subprocess.PIPE)
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: rec.stdout.read(640), b"")), daemon=True)
    reader.start()
    try:
        # A PulseAudio client takes a while before its audio flows (seconds on a loaded machine):
        # dial only once the recorder delivers, so the whole call is captured.
        deadline = time.monotonic() + 15
        while sum(map(len, chunks)) < 16000 and time.monotonic() < deadline:  # 0.5 s of s16le
            time.sleep(0.05)
        assert sum(map(len, chunks)) >= 16000, "pacat delivered no audio from the agent's speaker sink in 15 s"
        phones.dial()
        time.sleep(5)  # the caller speaks from 1.84 s to 4.5 s
        phones.hangup_caller()
        time.sleep(0.5)
    finally:
        rec.terminate()
        reader.join(5)
    raw = b"".join(chunks)
    heard = np.frombuffer(raw[:len(raw) // 2 * 2], dtype="<i2").astype(np.float32) / 32768
    said, rate = sf.read(phones.caller_wav, dtype="float32")
    assert rate == 8000 and said.ndim == 1  # what aufile needs for PCMU
    # compared at the sink's rate: at 8 kHz the path's half-sample delays blur the match
    speech = soxr.resample(said, rate, 16000)[2 * 16000:4 * 16000]  # "你好，我们的执法记录仪开不了机了。"
    lag, corr = best_match(heard, speech)
    assert corr > 0.9, corr
    assert len(heard) - lag < 8.5 * 16000  # heard in this call, not before it


def best_match(x: np.ndarray, w: np.ndarray) -> tuple[int, float]:
    """Where `w` best matches within `x` (normalised cross-correlation): (offset, correlation)."""
    n = len(x) + len(w)
    size = 1 << (n - 1).bit_length()
    dots = np.fft.irfft(np.fft.rfft(x, size) * np.conj(np.fft.rfft(w, size)), size)[:len(x) - len(w) + 1]
    energy = np.convolve(x ** 2, np.ones(len(w)), mode="valid")
    corr = dots / (np.linalg.norm(w) * np.sqrt(np.maximum(energy, 1e-12)))
    i = int(np.argmax(corr))
    return i, float(corr[i])


def test_wrong_ports_of_a_real_baresip_are_clear_errors(phones):
    async def connect(port):
        with pytest.raises(SoftphoneError) as err:
            await BaresipEvents("127.0.0.1", port, Collected(), probe_timeout=1).connect_first()
        return str(err.value)

    refused = asyncio.run(connect(free_port()))
    assert "connection refused (is baresip running with ctrl_tcp_listen" in refused
    for port in (phones.agent.http_port, phones.agent.sip_port):  # its httpd, its SIP over TCP
        msg = asyncio.run(connect(port))
        assert f"baresip ctrl_tcp at 127.0.0.1:{port}: " in msg and "ctrl_tcp_listen port?" in msg, msg


def test_the_client_follows_baresip_through_restarts(phones, caplog):
    caplog.set_level("INFO", logger="monitor.live")

    async def go():
        client, got, task = await desk_client(phones)
        out = []
        try:
            for crash in (False, True):
                call = await asyncio.to_thread(phones.dial)
                out.append((call, await got.next()))
                await asyncio.to_thread(phones.restart_agent, crash)
                out.append((call, await got.next()))  # the call died with baresip
                await until(lambda: client.connected)  # events are only sent to a connected client
            call = await asyncio.to_thread(phones.dial)
            out.append((call, await got.next()))
            await asyncio.to_thread(phones.hangup_caller)
            out.append((call, await got.next()))
            connects = client.connects
        finally:
            await client.close()
            await task
        return out, connects

    out, connects = asyncio.run(go())
    assert [(c.action, c.call_id == call, c.by, c.reason if c.action == "end" else "") for call, c in out] == [
        ("start", True, None, ""), ("end", True, None, "baresip exited"),
        ("start", True, None, ""), ("end", True, None, "lost the connection to baresip"),
        ("start", True, None, ""), ("end", True, "caller", "Connection reset by peer"),
    ]
    assert connects == 3
    warnings = [r.getMessage() for r in caplog.records
                if r.levelname == "WARNING" and "connected again" not in r.getMessage()]
    assert len(warnings) == 2, warnings  # one per outage, however many attempts it took
    assert "baresip exited; reconnecting" in warnings[0] and "reconnecting" in warnings[1], warnings
    assert sum("connected again after" in r.getMessage() for r in caplog.records) == 2


async def until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_a_softphone_that_stays_away_is_reported_again_and_when_it_is_back():
    problems, back = [], []

    async def go():
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        client = BaresipEvents("127.0.0.1", port, Collected(), backoff=(0.02, 0.05), report_every=0.3,
                               on_problem=problems.append, on_recovered=back.append)
        task = asyncio.create_task(client.run())
        await asyncio.sleep(0.8)  # nothing listens: reported at once, then again every 0.3 s

        async def serve(reader, writer):
            await reader.read(100)

        server = await asyncio.start_server(serve, "127.0.0.1", port)
        for _ in range(50):
            if back:
                break
            await asyncio.sleep(0.05)
        await client.close()
        await task
        server.close()

    asyncio.run(go())
    assert 2 <= len(problems) <= 4 and "connection refused" in problems[0], problems
    assert "still away" in problems[-1] and "no calls are followed" in problems[-1]
    assert len(back) == 1 and "connected again" in back[0]
