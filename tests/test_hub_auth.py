"""Who may connect: tokens per role, desk binding, Origin, hello deadline."""
from __future__ import annotations

from pathlib import Path

import pytest
from test_hub_support import (
    CONSOLE_TOKEN,
    DESK_TOKEN,
    close_of,
    console_ws,
    desk_ws,
    options,
    raw,
    recv_json,
    run,
)
from websockets.exceptions import InvalidStatus

from monitor.hub.server import Hub

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("hello,code,reason", [
    ({"type": "hello", "role": "console", "token": "wrong-token"}, 4401, "invalid token"),
    ({"type": "hello", "role": "console"}, 4401, "missing token"),
    ({"type": "hello", "role": "console", "token": ""}, 4401, "missing token"),
    # Same answer as a wrong token: a guesser must not learn a token is valid elsewhere.
    ({"type": "hello", "role": "console", "token": DESK_TOKEN}, 4401, "invalid token"),
    ({"type": "hello", "role": "desk", "token": CONSOLE_TOKEN, "desk": "d1"}, 4401,
     "invalid token"),
    ({"type": "hello", "role": "desk", "token": "nope", "desk": "d1"}, 4401, "invalid token"),
    ({"type": "ack_alert", "seq": 1}, 4400, "the first message must be a hello"),
    ({"type": "hello", "role": "desk", "token": DESK_TOKEN, "desk": "bad desk!"}, 4400, None),
])
def test_refused_hello_closes_with_clear_code(tmp_path: Path, hello: dict, code: int,
                                              reason: str | None) -> None:
    async def scenario() -> None:
        async with Hub(options(tmp_path)) as hub:
            ws = await raw(hub.url, hello)
            got_code, got_reason = await close_of(ws)
            assert got_code == code
            if reason:
                assert got_reason == reason
            # The hub still serves everyone else.
            c = await console_ws(hub.url)
            assert (await recv_json(c))["type"] == "caught_up"
            await c.close()
    run(scenario())


def test_desk_token_bound_to_one_desk(tmp_path: Path) -> None:
    async def scenario() -> None:
        opts = options(tmp_path, desk_tokens={"only-desk-7-token": "desk-7"})
        async with Hub(opts) as hub:
            ws = await raw(hub.url, {"type": "hello", "role": "desk",
                                     "token": "only-desk-7-token", "desk": "desk-8"})
            assert await close_of(ws) == (4401, "invalid token")
            ws = await raw(hub.url, {"type": "hello", "role": "desk",
                                     "token": "only-desk-7-token", "desk": "desk-7"})
            assert (await recv_json(ws))["type"] == "welcome"
            await ws.close()
    run(scenario())


def test_one_token_serves_both_roles(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Hub(options(tmp_path, token="shared-token-123", console_token=None)) as hub:
            for hello in ({"type": "hello", "role": "desk", "token": "shared-token-123",
                           "desk": "d"},
                          {"type": "hello", "role": "console", "token": "shared-token-123"}):
                ws = await raw(hub.url, hello)
                assert (await recv_json(ws))["type"] == "welcome"
                await ws.close()
    run(scenario())


def test_the_desks_shared_token_is_no_console_token_once_supervisors_have_their_own(tmp_path: Path) -> None:
    """The README's setup: --token-file desk.token --console-token-file supervisors.tokens (NAME=TOKEN
    lines only). An agent PC holding the desk token may not watch the board, read transcripts or
    acknowledge alerts, over the websocket or the HTTP API."""
    from test_hub_http import afetch

    async def scenario() -> None:
        named = {"token-of-wang-000001": "王芳"}
        async with Hub(options(tmp_path, token="shared-desk-token-1", console_token=None,
                               console_names=named)) as hub:
            ws = await raw(hub.url, {"type": "hello", "role": "console", "token": "shared-desk-token-1"})
            assert await close_of(ws) == (4401, "invalid token")
            for path, method in (("/api/transcript?desk=d", "GET"), ("/api/alerts", "GET"),
                                 ("/api/ack?seq=1", "POST")):
                status, _, _ = await afetch(hub.http_url + path, "shared-desk-token-1", method)
                assert status == 401, path
            ws = await raw(hub.url, {"type": "hello", "role": "desk", "token": "shared-desk-token-1", "desk": "d"})
            assert (await recv_json(ws))["type"] == "welcome"
            await ws.close()
            c = await raw(hub.url, {"type": "hello", "role": "console", "token": "token-of-wang-000001"})
            assert (await recv_json(c))["type"] == "welcome"
            await c.close()
    run(scenario())


def test_hello_deadline(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Hub(options(tmp_path, hello_timeout=0.3)) as hub:
            ws = await raw(hub.url)
            assert (await close_of(ws))[0] == 4408
    run(scenario())


def test_browser_origin_check(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Hub(options(tmp_path, allowed_origins=("http://wall.example",))) as hub:
            with pytest.raises(InvalidStatus) as exc:
                await raw(hub.url, origin="http://evil.example")
            assert exc.value.response.status_code == 403
            # same origin as the hub's own page, and an explicitly allowed one, are fine
            for origin in (hub.http_url, "http://wall.example"):
                ws = await raw(hub.url, {"type": "hello", "role": "console",
                                         "token": CONSOLE_TOKEN}, origin=origin)
                assert (await recv_json(ws))["type"] == "welcome"
                await ws.close()
            # no Origin (not a browser): token decides
            d = await desk_ws(hub.url)
            await d.close()
    run(scenario())
