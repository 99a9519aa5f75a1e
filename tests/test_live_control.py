"""The desk's control endpoint: only a local program holding the desk's token may start or end calls."""
import asyncio
import http.client
import json
import os
import stat

import pytest

from monitor.events import Control
from monitor.live.control import (
    ControlError,
    make_token_file,
    post_control,
    read_token_file,
    serve_control,
)

TOKEN = "a-desk-token-for-these-tests-000"


def exchange(requests):
    """Serve the endpoint in-process, send raw requests from a thread; (status, reply) per request and the controls."""
    got = []

    async def on_control(ctl):
        got.append(ctl)

    async def go():
        server = await serve_control(on_control, TOKEN, port=0)
        port = server.sockets[0].getsockname()[1]

        def send_all():
            out = []
            for method, path, headers, body in requests:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request(method, path, body=body, headers=headers)
                r = conn.getresponse()
                out.append((r.status, json.loads(r.read())["message"]))
            return out

        try:
            return await asyncio.to_thread(send_all)
        finally:
            server.close()

    return asyncio.run(go()), got


def good(**extra):
    return {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json", **extra}


def test_a_hook_with_the_token_ends_the_call_and_says_who_hung_up():
    replies, got = exchange([("POST", "/call/start", good(), b'{"id": "sip-1", "peer": "sip:1001@pbx"}'),
                             ("POST", "/call/end", good(), b'{"by": "caller"}')])
    assert [s for s, _ in replies] == [200, 200]
    assert got == [Control("start", call_id="sip-1", peer="sip:1001@pbx"), Control("end", by="caller")]


@pytest.mark.parametrize("why, request_, status", [
    ("no token", ("POST", "/call/end", {"Content-Type": "application/json"}, b"{}"), 401),
    ("wrong token", ("POST", "/call/end", good(Authorization="Bearer nope"), b"{}"), 401),
    ("a web page (cross-site fetch carries Origin)",
     ("POST", "/call/end", good(Origin="http://evil.example"), b'{"by":"agent"}'), 403),
    ("a form post: not JSON", ("POST", "/call/end", good(**{"Content-Type": "text/plain"}), b'{"by":"agent"}'), 415),
    ("no content type", ("POST", "/call/end", {"Authorization": f"Bearer {TOKEN}"}, b"{}"), 415),
    ("DNS rebinding", ("POST", "/call/end", good(Host="evil.example:8766"), b"{}"), 403),
    ("a GET", ("GET", "/call/end", good(), None), 405),
    ("the old query-string form", ("POST", "/call/end?by=agent", good(), b"{}"), 400),
    ("who hung up is not a role", ("POST", "/call/end", good(), b'{"by": "nobody"}'), 400),
    ("an unknown field", ("POST", "/call/end", good(), b'{"by": "agent", "x": 1}'), 400),
    ("a bad call id", ("POST", "/call/start", good(), b'{"id": "../../etc"}'), 400),
    ("not JSON", ("POST", "/call/start", good(), b"by=agent"), 400),
    ("another path", ("POST", "/call/transfer", good(), b"{}"), 404),
])
def test_what_is_refused(why, request_, status):
    replies, got = exchange([request_])
    assert replies[0][0] == status, (why, replies)
    assert got == []


def test_the_token_file_is_readable_by_this_user_only_and_monitor_call_uses_it(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    token, path = make_token_file(8799)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert read_token_file(8799) == token
    os.chmod(path, 0o644)
    with pytest.raises(ControlError, match="readable by others"):
        read_token_file(8799)
    with pytest.raises(ControlError, match="no control token"):
        read_token_file(8798)


def test_monitor_call_reads_the_desk_token_file(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    got = []

    async def on_control(ctl):
        got.append(ctl)

    async def go():
        server = await serve_control(on_control, "placeholder-token-00000000", port=0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        token, _ = make_token_file(port)
        server = await serve_control(on_control, token, port=port)
        try:
            return await asyncio.to_thread(post_control, "end", port, None, "agent")
        finally:
            server.close()

    assert asyncio.run(go()) == "ok"
    assert got == [Control("end", by="agent")]


def test_no_desk_listening_is_one_clear_error():
    with pytest.raises(ControlError, match="no live desk on port 9"):
        post_control("start", 9, token="x" * 20)


def raw_request(data: bytes) -> int:
    """Send raw bytes to the endpoint; the HTTP status it answers."""
    import socket

    async def on_control(ctl):
        raise AssertionError(f"no command should get through: {ctl}")

    async def go():
        server = await serve_control(on_control, TOKEN, port=0)
        port = server.sockets[0].getsockname()[1]

        def send():
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(data.replace(b"PORT", str(port).encode()))
                return s.recv(4096)
        try:
            return await asyncio.to_thread(send)
        finally:
            server.close()

    reply = asyncio.run(go())
    return int(reply.split(b" ")[1])


def test_a_body_both_chunked_and_with_a_length_is_refused():
    body = b'{"by": "agent"}'
    head = (f"POST /call/end HTTP/1.1\r\nHost: 127.0.0.1:PORT\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert raw_request(head.encode() + body) == 400


def test_a_deeply_nested_body_is_a_bad_request_not_a_crash():
    body = b"[" * 2000 + b"]" * 2000
    head = (f"POST /call/end HTTP/1.1\r\nHost: 127.0.0.1:PORT\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    assert raw_request(head.encode() + body) in (400, 413)
    body = b"[" * 1000 + b"]" * 1000
    head = head.replace(str(4000), str(len(body)))
    assert raw_request(head.encode() + body) == 400


def test_a_desk_removes_only_its_own_token_file_at_exit(tmp_path, monkeypatch):
    from monitor.live.control import remove_token_file

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    first, path = make_token_file(8797)
    remove_token_file(8797, "the token of a desk that failed to start")
    assert path.exists() and read_token_file(8797) == first
    remove_token_file(8797, first)
    assert not path.exists()
