"""HTTP on the hub's port: /api/alerts, /api/ack, the console page; and TLS (wss/https)."""
from __future__ import annotations

import asyncio
import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from test_hub_support import (
    CONSOLE_TOKEN,
    DESK_TOKEN,
    body,
    console_ws,
    desk_ws,
    make_cert,
    options,
    push,
    raw,
    recv_json,
    recv_type,
    run,
)
from websockets.exceptions import InvalidMessage, InvalidStatus

from monitor.hub.console_client import ConsoleClient
from monitor.hub.desk_client import DeskClient
from monitor.hub.server import Hub, HubConfigError

pytestmark = pytest.mark.timeout(60)


def fetch(url: str, token: str | None = None, method: str = "GET",
          context: ssl.SSLContext | None = None, headers: dict | None = None
          ) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, method=method, headers=headers or {})
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    if method == "POST":
        req.add_header("Content-Length", "0")
    try:
        with urllib.request.urlopen(req, timeout=5, context=context) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


async def afetch(*args: object, **kw: object) -> tuple[int, dict, bytes]:
    return await asyncio.to_thread(fetch, *args, **kw)  # type: ignore[arg-type]


def test_api_alerts_needs_a_console_bearer_token(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Hub(options(tmp_path)) as hub:
            d = await desk_ws(hub.url)
            for i in range(5):
                await push(d, f"d:{i}", body(i))
            api = f"{hub.http_url}/api/alerts"
            status, headers, data = await afetch(api)
            assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
            assert json.loads(data) == {"error": "missing token"}
            assert (await afetch(api, "wrong"))[0] == 401
            assert (await afetch(api, DESK_TOKEN))[0] == 401  # same as a wrong token
            status, headers, data = await afetch(api + "?since=2&limit=2", CONSOLE_TOKEN)
            assert status == 200 and headers["Content-Type"].startswith("application/json")
            page = json.loads(data)
            assert [a["seq"] for a in page["alerts"]] == [3, 4]
            assert page["more"] is True and page["last_seq"] == 4
            assert page["alerts"][0]["text"] == body(2)["text"]
            assert (await afetch(api + "?since=-1", CONSOLE_TOKEN))[0] == 400
            assert (await afetch(api + "?since=abc", CONSOLE_TOKEN))[0] == 400
            for odd in ("%C2%B2", "%D9%A3", "%EF%BC%91"):  # ², Arabic-Indic 3, full-width 1: digits to isdigit()
                assert (await afetch(api + "?since=" + odd, CONSOLE_TOKEN))[0] == 400
                assert (await afetch(api + "?limit=" + odd, CONSOLE_TOKEN))[0] == 400
            # Browsers on other sites may not read it even with a token.
            assert (await afetch(api, CONSOLE_TOKEN,
                                 headers={"Origin": "http://evil.example"}))[0] == 403
    run(scenario())


def test_api_ack_marks_the_alert_and_tells_consoles(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Hub(options(tmp_path)) as hub:
            d = await desk_ws(hub.url)
            await push(d, "d:1", body(1))
            c = await console_ws(hub.url)
            await recv_type(c, "caught_up")
            ack = f"{hub.http_url}/api/ack?seq=1"
            assert (await afetch(ack, method="POST"))[0] == 401
            assert (await afetch(ack, DESK_TOKEN, method="POST"))[0] == 401
            assert (await afetch(ack, CONSOLE_TOKEN))[0] == 405  # GET may not change state
            status, _, data = await afetch(ack, CONSOLE_TOKEN, method="POST")
            assert status == 200 and json.loads(data)["new"] is True
            acked = await recv_type(c, "acked")
            assert acked["seq"] == 1 and acked["by"] == "http"
            status, _, data = await afetch(ack, CONSOLE_TOKEN, method="POST")
            assert status == 200 and json.loads(data)["new"] is False
            assert (await afetch(f"{hub.http_url}/api/ack?seq=9", CONSOLE_TOKEN,
                                 method="POST"))[0] == 404
            _, _, data = await afetch(f"{hub.http_url}/api/alerts", CONSOLE_TOKEN)
            assert json.loads(data)["alerts"][0]["acked_by"] == "http"
    run(scenario())


def test_console_page_and_unknown_paths(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Hub(options(tmp_path)) as hub:
            status, headers, page = await afetch(hub.http_url + "/")
            assert status == 200 and headers["Content-Type"].startswith("text/html")
            assert "script-src 'self'" in headers["Content-Security-Policy"]
            assert b"/static/console.js" in page
            status, headers, js = await afetch(hub.http_url + "/static/console.js")
            assert status == 200 and b"WebSocket" in js
            assert (await afetch(hub.http_url + "/static/../store.py"))[0] == 404
            assert (await afetch(hub.http_url + "/nope"))[0] == 404
            assert (await afetch(hub.http_url + "/api/health"))[0] == 200
            with pytest.raises(InvalidStatus) as exc:
                await raw(hub.http_url.replace("http", "ws") + "/elsewhere")
            assert exc.value.response.status_code == 404
    run(scenario())


def test_tls_wss_and_https(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    trust = ssl.create_default_context(cafile=str(cert))

    async def scenario() -> None:
        async with Hub(options(tmp_path, certfile=cert, keyfile=key)) as hub:
            assert hub.url.startswith("wss://") and hub.http_url.startswith("https://")
            desk = DeskClient(hub.url, DESK_TOKEN, "desk-tls", tmp_path / "tls.spool",
                              ssl_context=trust)
            await desk.start()
            await desk.send(body(1))
            assert await desk.flush(10)
            await desk.close()
            console = ConsoleClient(hub.url, CONSOLE_TOKEN, ssl_context=trust)
            async for f in console.frames():
                if f["type"] == "alert":
                    assert f["desk"] == "desk-tls"
                    break
            await console.close()
            status, _, data = await afetch(hub.http_url + "/api/alerts", CONSOLE_TOKEN,
                                           context=trust)
            assert status == 200 and len(json.loads(data)["alerts"]) == 1
            # An untrusting client fails the handshake; plain ws:// to a TLS port fails too.
            with pytest.raises(ssl.SSLCertVerificationError):
                await raw(hub.url, ssl=ssl.create_default_context())
            with pytest.raises((InvalidMessage, ConnectionError, EOFError)):
                await raw(hub.url.replace("wss://", "ws://"))
            ws = await raw(hub.url, {"type": "hello", "role": "console", "token": CONSOLE_TOKEN},
                           ssl=trust)
            assert (await recv_json(ws))["type"] == "welcome"
            await ws.close()
    run(scenario())


def test_bad_certificate_is_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("not a certificate\n")

    async def scenario() -> None:
        with pytest.raises(HubConfigError, match="missing.pem: No such file"):
            await Hub(options(tmp_path, certfile=tmp_path / "missing.pem")).start()
        with pytest.raises(HubConfigError, match="cannot load TLS certificate"):
            await Hub(options(tmp_path, certfile=bogus)).start()
    run(scenario())
